"""The paper's figures, each a function ``(entries) -> Figure`` drawn from ledger entries only.

Every figure carries the traceability footer (profile, commits, run ids; see
:mod:`docrestore.figures.style`). A figure whose group is missing from the ledger raises
:class:`~docrestore.figures.entries.MissingResults` naming the group to run.

Line images are about 8 times wider than tall, so the qualitative grid puts the methods in rows
(degraded, ERB, each method, clean) and the chosen test lines in columns: line images side by
side at a column width of about an inch would be too small to read.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure
from PIL import Image

from . import entries as E
from . import style as S

HISTORY_PANELS = [
    ("train/loss_g", "generator loss"),
    ("train/loss_d", "discriminator loss"),
    ("train/ctc_monitor", "CTC of the restored line"),
    ("val/psnr", "validation PSNR (dB)"),
    ("val/cer", "validation CER (%), loss recognizer"),  # validation reads with the frozen loss recognizer
]
SWEEP_METRICS = ("psnr", "ssim", "cer")
BAR_METRICS = ("psnr", "ssim", "cer", "wer")


# ------------------------------------------------------------------------------ helpers
def _series(entry: dict, key: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of a history key; steps where the key is missing or not finite are dropped."""
    pts = [(float(h["step"]), float(h[key])) for h in entry.get("history") or []
           if "step" in h and isinstance(h.get(key), (int, float)) and not isinstance(h.get(key), bool)
           and math.isfinite(h[key])]
    pts.sort()
    if not pts:
        return np.empty(0), np.empty(0)
    s, v = zip(*pts)
    scale = 100.0 if key.endswith("/cer") or key.endswith("/wer") else 1.0
    return np.asarray(s), np.asarray(v) * scale


def _display_name(entry: dict) -> str:
    return E.display_name(entry)


def _unique_names(entries: Sequence[dict]) -> list[str]:
    """Display names, with the experiment added where two entries share a method name."""
    names = [_display_name(e) for e in entries]
    return [f"{n} ({e.get('experiment')})" if names.count(n) > 1 else n for n, e in zip(names, entries)]


def _ci(stats: tuple | None) -> tuple[float, float, float]:
    if stats is None:
        return math.nan, math.nan, math.nan
    return stats[0], stats[1], stats[2]


def interval_note(arms: Sequence[dict], metrics: Sequence[str] = SWEEP_METRICS) -> str:
    """What the error bars cover, from the entries' own counts (n of the first metric found)."""
    ns = {int(st[3]) for e in arms for m in metrics
          if (st := E.metric(e.get("metrics"), m)) is not None and len(st) > 3 and _finite_num(st[3])}
    lines = f"{min(ns)}" if len(ns) == 1 else (f"{min(ns)}\u2013{max(ns)}" if ns else "the")
    return f"mean over {lines} test lines, {E.interval_description(arms)}"


def _finite_num(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def effective_ctc_weight(entry: dict) -> float | None:
    """The CTC weight a run actually applied after its warm-up (median of the recorded
    ``train/ctc_weight`` where > 0): for schedule=balanced it is alpha*std ratio, not the target."""
    _, w = _series(entry, "train/ctc_weight")
    w = w[w > 0]
    return float(np.median(w)) if w.size else None


def annealing_label(entry: dict) -> str:
    """The arm's label with its real setting: the balanced arm names its effective weight."""
    label = E.arm_label(entry)
    if E.cfg_get(entry, "train.ctc.schedule") == "balanced":
        eff = effective_ctc_weight(entry)
        alpha = E.cfg_get(entry, "train.ctc.alpha", 1.0)
        if eff is not None:
            return f"balanced (\u03b1={alpha:g}, eff. \u03bb\u2248{eff:.2g})"
        return f"balanced (\u03b1={alpha:g})"
    return label


def _errbar(means, los, his) -> np.ndarray:
    means, los, his = map(np.asarray, (means, los, his))
    return np.vstack([np.clip(means - los, 0, None), np.clip(his - means, 0, None)])


# --------------------------------------------------------------------- qualitative grid
def _restored_key(entry: dict, lines: dict) -> str | None:
    """Name of the method's own restored line in a sample's ``lines`` mapping."""
    for key in ("restored", entry.get("method"), entry.get("experiment")):
        if key and key in lines:
            return key
    rest = [k for k in lines if k not in ("degraded", "clean")]
    return rest[0] if len(rest) == 1 else None


def _load_gray(path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("L"), dtype=np.float32) / 255.0


def _pick_lines(main: dict, n_lines: int) -> list[tuple[str, str]]:
    """(sample id, why) for the grid: the main method's worst lines (highest CER: failure
    cases) first, then its best, so the figure is not only a showcase."""
    scored = []
    for s in main.get("samples") or []:
        key = _restored_key(main, s.get("lines") or {})
        cer = (s.get("lines") or {}).get(key, {}).get("cer") if key else None
        scored.append((cer if isinstance(cer, (int, float)) else math.nan, str(s.get("id"))))
    if not scored:
        raise E.MissingResults("the qualitative grid", [str(main.get("group"))],
                               f"entry '{main.get('experiment')}' has no samples")
    known = sorted([t for t in scored if not math.isnan(t[0])], key=lambda t: -t[0])
    n = min(n_lines, len(scored))
    n_fail = max(1, (n + 1) // 2)
    picked = [(sid, "highest CER") for _, sid in known[:n_fail]]
    rest = [t for t in reversed(known) if t[1] not in {p[0] for p in picked}]
    rest += [t for t in scored if math.isnan(t[0])]
    picked += [(sid, "lowest CER") for _, sid in rest[: n - len(picked)]]
    return picked


def qualitative_grid(entries: Sequence[dict], n_lines: int = 3, max_methods: int = 4,
                     ledger_dir=None) -> Figure:
    """Restored test lines: rows degraded / ERB baseline / each method / clean, columns test lines.

    Methods: all entries when at most ``max_methods`` besides the baseline, else the main
    comparison's arms (the research arms before the other baseline variants). The lines are the
    main method's (:func:`entries.main_method`) highest-CER lines (failure cases; half the
    columns, rounded up) and its lowest-CER lines. Under each image: the held-out reader's transcription and
    its CER; above each column: the line id and the ground-truth text.
    """
    base = E.baseline_entry(entries)
    main = E.main_method(entries)
    pool = [e for e in E.shown_methods(entries, max_methods + 1)
            if e is not base and e.get("group") != E.READER]
    # The research arms before the other baseline variants when not all of them fit.
    preferred = sorted(pool, key=lambda e: e.get("group") == E.BASELINE)
    if main is base:
        keep = preferred[:max_methods]
    else:
        keep = [main] + [e for e in preferred if e is not main][: max(0, max_methods - 1)]
    methods = [e for e in pool if any(e is k for k in keep)]
    chosen = _pick_lines(main, n_lines)

    samples = {e.get("experiment"): {str(s.get("id")): s for s in e.get("samples") or []}
               for e in [base, *methods]}
    main_samples = samples[main.get("experiment")]
    degraded_label, clean_label = _pair_labels(main)
    rows: list[tuple[str, dict, str]] = [(degraded_label, main, "degraded")]
    for e, name in zip([base, *methods], _unique_names([base, *methods])):
        rows.append((name + (" (baseline)" if e is base else ""), e, "restored"))
    rows.append((clean_label, main, "clean"))

    ncols = len(chosen)
    col_w = (S.DOUBLE_COLUMN_IN - 1.0) / ncols
    aspect = _line_aspect(main, main_samples, chosen, ledger_dir)
    img_h = col_w / aspect
    wrap = max(12, int(col_w * 72 / (0.56 * S.SMALL_FONT_PT)))
    text_h = S.SMALL_FONT_PT * 1.4 / 72  # one line of reading under each image
    height = len(rows) * (img_h + text_h + 0.07) + 0.45
    fig, axes = S.new_figure(S.DOUBLE_COLUMN_IN, height, nrows=len(rows), ncols=ncols, squeeze=False)
    fig.get_layout_engine().set(h_pad=0.01, w_pad=0.02, hspace=0.0, wspace=0.02)

    for c, (sid, why) in enumerate(chosen):
        gt = main_samples[sid].get("text", "")
        title = f"line {sid} ({why})\n\u201c{_shorten(gt, wrap)}\u201d"
        axes[0, c].set_title(title, fontsize=S.SMALL_FONT_PT, loc="left")
        for r, (label, entry, kind) in enumerate(rows):
            ax = axes[r, c]
            ax.set_xticks([]), ax.set_yticks([])
            ax.grid(False)
            if c == 0:
                ax.set_ylabel(textwrap.fill(label, 14), rotation=0, ha="right", va="center",
                              fontsize=S.SMALL_FONT_PT, labelpad=4)
            sample = samples[entry.get("experiment")].get(sid)
            lines = (sample or {}).get("lines") or {}
            key = _restored_key(entry, lines) if kind == "restored" else kind
            line = lines.get(key) if key else None
            path = E.sample_image_path(entry, (line or {}).get("image", ""), ledger_dir)
            if line is None or path is None:
                ax.text(0.5, 0.5, "not in this entry's samples", ha="center", va="center",
                        fontsize=S.SMALL_FONT_PT, color="0.4", transform=ax.transAxes)
                ax.set_xlabel("")
                continue
            ax.imshow(_load_gray(path), cmap="gray", vmin=0, vmax=1, aspect="equal",
                      interpolation="antialiased")
            ax.set_xlabel(_reading(line, wrap), fontsize=S.SMALL_FONT_PT, labelpad=1.5, loc="left")
    return S.add_footer(fig, [base, *methods])


def _pair_labels(entry: dict) -> tuple[str, str]:
    """Row labels of the degraded and clean lines, saying which source the grid shows: font lines,
    or real hands (clean = the background-flattened real crop, degraded = our damage on it)."""
    if ((entry.get("config") or {}).get("data") or {}).get("source") == "real":
        return "degraded (our damage, real hand)", "clean (real line, flattened)"
    return "degraded input", "clean (ground truth)"


def _reading(line: dict, width: int) -> str:
    """'“prediction”  CER x%' under a line image ('' when the line was not read)."""
    pred, cer = line.get("pred"), line.get("cer")
    if pred is None and cer is None:
        return ""
    cer_txt = f"CER {100 * cer:.1f}%" if isinstance(cer, (int, float)) else "CER n/a"
    pred_txt = _shorten(pred, width - len(cer_txt) - 4) if pred is not None else "(no reading)"
    return f"\u201c{pred_txt}\u201d  {cer_txt}"


def _shorten(text: str, n: int) -> str:
    text = str(text)
    return text if len(text) <= n else text[: max(1, n - 1)] + "\u2026"


def _line_aspect(entry, samples, chosen, ledger_dir) -> float:
    """Width/height of the sample line images (8 when none can be read)."""
    for sid, _ in chosen:
        for line in ((samples.get(sid) or {}).get("lines") or {}).values():
            path = E.sample_image_path(entry, line.get("image", ""), ledger_dir)
            if path is not None:
                with Image.open(path) as im:
                    return im.width / im.height
    return 8.0


# ---------------------------------------------------------------------- training curves
def training_curves(entries: Sequence[dict], max_methods: int = 8) -> Figure:
    """Generator and discriminator losses, the CTC monitor, validation PSNR and CER against the
    step, one line per method: every entry when at most ``max_methods``, else the main
    comparison's (baseline variants and one arm per ablation component)."""
    chosen = [e for e in E.shown_methods(entries, max_methods) if e.get("history")]
    if not chosen:
        raise E.MissingResults("the training curves", [E.BASELINE, *E.method_groups(entries)],
                               "no entry has a training history")
    names = _unique_names(chosen)
    colors = S.method_colors(names)
    fig, axes = S.new_figure(S.DOUBLE_COLUMN_IN, 4.2, nrows=2, ncols=3)
    flat = axes.ravel()
    for ax, (key, label) in zip(flat, HISTORY_PANELS):
        drawn = False
        for e, name in zip(chosen, names):
            steps, vals = _series(e, key)
            if steps.size:
                ax.plot(steps, vals, color=colors[name], label=name, lw=1.0,
                        marker="o" if key.startswith("val/") else None, ms=2.5)
                drawn = True
        ax.set_title(label)
        ax.set_xlabel("generator step")
        if not drawn:
            ax.text(0.5, 0.5, f"'{key}' not recorded", ha="center", va="center",
                    transform=ax.transAxes, fontsize=S.SMALL_FONT_PT, color="0.4")
        elif key.startswith("train/loss") and _wide_positive_range(ax):
            ax.set_yscale("log")
    handles, labels = flat[0].get_legend_handles_labels()
    if not handles:
        for ax in flat[:5]:
            handles, labels = ax.get_legend_handles_labels()
            if handles:
                break
    flat[5].axis("off")
    flat[5].legend(handles, labels, loc="center", frameon=False, title="method")
    return S.add_footer(fig, chosen)


def _wide_positive_range(ax) -> bool:
    ys = np.concatenate([ln.get_ydata() for ln in ax.get_lines()] or [np.empty(0)])
    ys = ys[np.isfinite(ys)]
    return ys.size > 0 and ys.min() > 0 and ys.max() / ys.min() > 50


# ------------------------------------------------------------------------ CTC annealing
def ctc_annealing(entries: Sequence[dict]) -> Figure:
    """Per annealing arm: the CTC weight schedule, the generator loss and the CTC before the clip
    against the step (the ERB baseline, constant weight, dashed for reference). Arms whose drawn
    histories are identical are drawn once, under one label naming them all."""
    arms = E.require_group(entries, E.ANNEALING, "the CTC-annealing figure")
    if not any(e.get("history") for e in arms):
        raise E.MissingResults("the CTC-annealing figure", [E.ANNEALING], "its entries have no history")
    # the raw CTC: after a clamp the logged monitor is flat at the clip and hides what happened
    raw = any(_series(e, "train/ctc_raw")[0].size for e in arms)
    ctc_key, ctc_label = (("train/ctc_raw", "CTC of the restored line\n(before the clip)") if raw
                          else ("train/ctc_monitor", "CTC of the restored line"))
    arms, same = _distinct_histories(arms, ("train/ctc_weight", "train/loss_g", ctc_key))
    base = None
    try:
        base = E.baseline_entry(entries)
    except E.MissingResults:
        pass
    shown = arms + ([base] if base is not None else [])
    # the footer names the profile, so the baseline's label states its real setting instead
    base_name = (f"{base.get('method') or base.get('experiment')} (\u03bb={E.cfg_get(base, 'train.ctc.weight', '?'):g})"
                 if base is not None and isinstance(E.cfg_get(base, "train.ctc.weight"), (int, float))
                 else f"{_display_name(base)} (baseline)" if base is not None else None)
    names = [" = ".join(annealing_label(x) for x in same[id(e)]) for e in arms]
    names += [base_name] if base is not None else []
    colors = S.method_colors(names)
    fig, axes = S.new_figure(S.SINGLE_COLUMN_IN, 5.4, nrows=3, ncols=1, sharex=True)
    panels = [("train/ctc_weight", "CTC weight \u03bb(t)"), ("train/loss_g", "generator loss"), (ctc_key, ctc_label)]
    for ax, (key, label) in zip(axes, panels):
        for e, name in zip(shown, names):
            steps, vals = _series(e, key)
            if steps.size:
                ax.plot(steps, vals, color=colors[name], label=name, lw=1.0,
                        ls="--" if e is base else "-")
        ax.set_ylabel(label)
        if key == "train/loss_g" and _wide_positive_range(ax):
            ax.set_yscale("log")
    axes[-1].set_xlabel("generator step")
    handles, labels = axes[0].get_legend_handles_labels()
    if not handles:
        handles, labels = axes[1].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside upper center", ncols=2, frameon=False)
    return S.add_footer(fig, [x for e in arms for x in same[id(e)]] + ([base] if base is not None else []))


def _distinct_histories(arms: Sequence[dict], keys: Sequence[str]) -> tuple[list[dict], dict[int, list[dict]]]:
    """The arms with distinct histories of ``keys`` (the first of each) and, per kept arm (by
    ``id``), every arm whose history equals its own: identical runs drawn on top of each other
    would look like one line under one arm's name."""
    kept: list[dict] = []
    same: dict[int, list[dict]] = {}
    sigs: dict[int, tuple] = {}
    for e in arms:
        sig = tuple(tuple(map(tuple, _series(e, k))) for k in keys)
        recorded = any(len(steps) for steps, _ in sig)
        twin = next((k for k in kept if recorded and sigs[id(k)] == sig), None)
        if twin is None:
            kept.append(e)
            same[id(e)], sigs[id(e)] = [e], sig
        else:
            same[id(twin)].append(e)
    return kept, same


# ------------------------------------------------------------------- feature-loss sweep
def _sweep(entries: Sequence[dict], arms: list[dict], xlabels: list[str], xname: str,
           title: str, connect: bool = True, xvalues: Sequence[float] | None = None) -> Figure:
    """PSNR, SSIM and CER across the arms of a sweep (what the bars cover: :func:`interval_note`);
    the baseline as a dashed line with its interval shaded. ``connect``: join the points (an
    ordered sweep) or not (categories). ``xvalues``: a numeric sweep drawn at its real values."""
    base = None
    try:
        base = E.baseline_entry(entries)
    except E.MissingResults:
        pass
    fig, axes = S.new_figure(S.DOUBLE_COLUMN_IN, 2.5, nrows=1, ncols=len(SWEEP_METRICS))
    numeric = xvalues is not None and all(_finite_num(v) for v in xvalues)
    x = np.asarray(xvalues, dtype=float) if numeric else np.arange(len(arms))
    note = interval_note(arms)
    for ax, m in zip(axes, SWEEP_METRICS):
        stats = [_ci(E.metric(e.get("metrics"), m)) for e in arms]
        means, los, his = (np.array(v) for v in zip(*stats))
        ax.errorbar(x, means, yerr=_errbar(means, los, his), fmt="o-" if connect else "o",
                    capsize=2.5, lw=1.0,
                    color=S.method_colors(["sweep"])["sweep"], label=f"{title} ({note})")
        if base is not None and E.metric(base.get("metrics"), m) is not None:
            bm, blo, bhi, _ = E.metric(base.get("metrics"), m)
            ax.axhline(bm, color="0.3", ls="--", lw=0.9,
                       label=f"{_display_name(base)} (baseline; {interval_note([base])} shaded)")
            ax.axhspan(blo, bhi, color="0.5", alpha=0.15, lw=0)
        if numeric:
            ax.set_xticks(x, xlabels)  # the sweep's own values, at their real spacing
            pad = 0.06 * max(float(np.ptp(x)), 1.0)
            ax.set_xlim(float(x.min()) - pad, float(x.max()) + pad)
        else:
            ax.set_xticks(x, xlabels, rotation=30 if max(map(len, xlabels)) > 6 else 0, ha="right"
                          if max(map(len, xlabels)) > 6 else "center")
        ax.set_xlabel(xname)
        ax.set_ylabel(E.metric_label(m))
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside upper center", ncols=len(labels), frameon=False)
    return S.add_footer(fig, arms + ([base] if base is not None else []))


def feature_weight_sweep(entries: Sequence[dict]) -> Figure:
    """PSNR, SSIM and CER against the recognition feature-loss weight (95% intervals)."""
    arms = E.require_group(entries, E.FEATURE_WEIGHT, "the feature-loss weight sweep")
    arms.sort(key=lambda e: float(E.cfg_get(e, "train.feature_loss.weight", math.inf) or 0.0))
    labels = [f"{E.cfg_get(e, 'train.feature_loss.weight', '?'):g}"
              if isinstance(E.cfg_get(e, "train.feature_loss.weight"), (int, float))
              else str(E.cfg_get(e, "train.feature_loss.weight", "?")) for e in arms]
    values = [E.cfg_get(e, "train.feature_loss.weight") for e in arms]
    return _sweep(entries, arms, labels, "feature-loss weight", "feature loss", xvalues=values)


def feature_tap_sweep(entries: Sequence[dict]) -> Figure:
    """PSNR, SSIM and CER against the recognizer tap(s) the feature loss compares."""
    arms = E.tap_arms(entries)
    labels = [E.arm_label({**e, "group": E.FEATURE_TAP}) for e in arms]
    return _sweep(entries, arms, labels, "recognizer tap(s)", "feature loss", connect=False)


# ----------------------------------------------------------------------- ablation bars
def ablation_arms(entries: Sequence[dict]) -> list[tuple[str, dict, str]]:
    """(arm label, entry, how chosen); see :func:`entries.ablation_arms`."""
    return E.ablation_arms(entries)


def ablation_bars(entries: Sequence[dict]) -> Figure:
    """PSNR, SSIM, CER and WER of each ablation arm against the baseline (what the bars cover:
    :func:`interval_note`)."""
    arms = ablation_arms(entries)
    # The footer states the profile, so the bars name the plain method.
    labels = [_bar_label(lab, e) for lab, e, _ in arms]
    colors = S.method_colors([lab for lab, _, _ in arms])
    fig, axes = S.new_figure(S.DOUBLE_COLUMN_IN, 0.5 * len(arms) + 1.0, nrows=1,
                             ncols=len(BAR_METRICS), sharey=True)
    y = np.arange(len(arms))
    for ax, m in zip(axes, BAR_METRICS):
        stats = [_ci(E.metric(e.get("metrics"), m)) for _, e, _ in arms]
        means, los, his = (np.array(v) for v in zip(*stats))
        ax.barh(y, means, xerr=_errbar(means, los, his), capsize=2,
                color=[colors[lab] for lab, _, _ in arms], error_kw={"lw": 0.8})
        ax.set_xlabel(E.metric_label(m))
        finite = np.concatenate([los[np.isfinite(los)], his[np.isfinite(his)]])
        if m in ("psnr", "ssim") and finite.size:  # start near the data, not at zero
            span = max(finite.max() - finite.min(), 1e-3)
            ax.set_xlim(max(0.0, finite.min() - 0.5 * span), finite.max() + 0.25 * span)
        ax.grid(axis="y", visible=False)
    axes[0].set_yticks(y, labels)
    axes[0].invert_yaxis()
    fig.suptitle(f"bars: {interval_note([e for _, e, _ in arms], BAR_METRICS)}", fontsize=S.SMALL_FONT_PT,
                 color="0.3")
    return S.add_footer(fig, [e for _, e, _ in arms])


def _bar_label(arm: str, entry: dict) -> str:
    """'arm:\nmethod', or the arm alone where the method says the same ('dual-modal D')."""
    method = str(entry.get("method") or entry.get("experiment"))
    if E.cfg_get(entry, "train.ctc.schedule") == "balanced" and entry.get("group") == E.ANNEALING:
        method = f"CTC {annealing_label(entry)}"
    if method.strip().lower() == arm.strip().lower() or method.lower().startswith(arm.lower() + " "):
        return textwrap.fill(method, 26)
    return f"{arm}:\n" + textwrap.fill(method, 26)


# ----------------------------------------------------------------------- gradient norms
GRAD_TERMS = [("adv", "adversarial"), ("pixel", "pixel"), ("ctc", "CTC"), ("feature", "feature")]


def _grad_arms(entries: Sequence[dict]) -> list[tuple[str, dict]]:
    """(panel title, entry): the abrupt switch, the ramp and the feature-loss arm, the research
    notes' own settings first where the ledger has them."""
    by_name = {str(e.get("experiment")): e for e in entries}
    sched = lambda e: E.cfg_get(e, "train.ctc.schedule")  # noqa: E731
    anneal = [e for e in entries if e.get("group") == E.ANNEALING and _has_grad_norms(e)]
    feat = [e for e in entries if e.get("group") in (E.FEATURE_WEIGHT, E.FEATURE_TAP)
            and float(E.cfg_get(e, "train.feature_loss.weight", 0) or 0) > 0 and _has_grad_norms(e)]
    picks = [
        ("abrupt switch", [by_name.get("notes_switch")] + [e for e in anneal if sched(e) == "switch"]),
        ("ramp", [by_name.get("notes_ramp")] + [e for e in anneal if sched(e) in ("step", "linear", "cosine")]),
        ("feature loss", [by_name.get("feature_w5_cnn_last")] + feat),
    ]
    out = []
    for title, cands in picks:
        found = next((e for e in cands if e is not None and _has_grad_norms(e)), None)
        if found is not None:
            out.append((title, found))
    return out


def _has_grad_norms(entry: dict) -> bool:
    return any("train/gradnorm_adv" in h for h in entry.get("history") or [])


def gradient_norms(entries: Sequence[dict]) -> Figure:
    """Per arm (abrupt CTC switch, CTC ramp, feature loss): the L2 norm of each weighted loss
    term's gradient at the generator output against the step (log scale), with the CTC weight
    on a second axis: which term drives the generator, and how abruptly the CTC takes over."""
    arms = _grad_arms(entries)
    if not arms:
        raise E.MissingResults("the gradient-norm figure", [E.ANNEALING, E.FEATURE_WEIGHT],
                               "no switch, ramp or feature-loss entry records train/gradnorm_* in its history")
    names = [label for _, label in GRAD_TERMS]
    colors = S.method_colors(names)
    fig, axes = S.new_figure(S.DOUBLE_COLUMN_IN, 2.4, nrows=1, ncols=len(arms), sharex=False)
    axes = np.atleast_1d(axes)
    for ax, (title, e) in zip(axes, arms):
        for key, label in GRAD_TERMS:
            steps, vals = _series(e, f"train/gradnorm_{key}")
            keep = vals > 0
            if keep.any():
                ax.plot(steps[keep], vals[keep], color=colors[label], label=label, lw=1.0, marker=".", ms=3)
        ax.set_yscale("log")
        ax.set_title(f"{title}: {E.arm_label(e)}", fontsize=S.SMALL_FONT_PT)
        ax.set_xlabel("generator step")
        steps, w = _series(e, "train/ctc_weight")
        if steps.size and w.max() > 0:
            tw = ax.twinx()
            tw.plot(steps, w, color="0.5", ls=":", lw=1.0)
            tw.set_ylabel("CTC weight \u03bb", color="0.5")
    axes[0].set_ylabel("\u2016\u2207 term\u2016 at G's output")
    handles, labels = [], []
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.legend(handles, labels, loc="outside upper center", ncols=4, frameon=False)
    return S.add_footer(fig, [e for _, e in arms])


FIGURES = {
    "qualitative_grid": qualitative_grid,
    "training_curves": training_curves,
    "ctc_annealing": ctc_annealing,
    "feature_weight_sweep": feature_weight_sweep,
    "feature_tap_sweep": feature_tap_sweep,
    "ablation_bars": ablation_bars,
    "gradient_norms": gradient_norms,
}
"""Every paper figure: file stem -> function (entries) -> Figure."""
