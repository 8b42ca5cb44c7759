"""The DIBCO page benchmark: page-level scores, classical references, the page ledger, the
LaTeX table and the page-crops figure.

Protocol (docs/metrics.md, "Pages"):
- the generator restores the whole test page with the tiled restorer (tiles = the training patch
  size, overlap ``restore.overlap``); the restored page is binarised with ``pages.binarize``:
  ``fixed`` = ink where the restoration is below 0.5 (the generator is trained towards 0/1 with a
  pixel loss), ``otsu`` = Otsu's threshold of the restored page;
- F-measure, pseudo-F (the DIBCO 2010 variant: recall on the ground truth's skeleton, plain
  precision), PSNR of the binary images and DRD (NUBN counted as doxapy does) against the ground
  truth, per page; means with bootstrap 95 % intervals over the test pages;
- references: classical binarisers from doxapy (Doxa) with its default parameters, on the same pages.

Page entries live beside the line ledger, in ``<ledger_dir>/<profile>/pages/<experiment>.json``,
with the same provenance fields (profile, run id, commit, device, date, data hash) plus which
sets trained, validated and tested.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from .. import config as C
from . import metrics as M

PAGE_METRICS = ("fmeasure", "pfmeasure", "psnr", "drd")
METRIC_LABELS = {"fmeasure": "FM", "pfmeasure": "p-FM", "psnr": "PSNR", "drd": "DRD"}
HIGHER_IS_BETTER = {"fmeasure": True, "pfmeasure": True, "psnr": True, "drd": False}
PAGE_FIELDS = ("experiment", "method", "group", "profile", "metrics", "per_page", "pages", "references",
               "train_sets", "test_sets", "val_pages", "binarize", "history", "config", "git_commit",
               "git_dirty", "mlflow_run_id", "run_dir", "device", "date", "data_hash", "samples")
REFERENCE_LABELS = {"otsu": "Otsu", "sauvola": "Sauvola", "wolf": "Wolf", "nick": "NICK",
                    "isauvola": "ISauvola", "su": "Su", "niblack": "Niblack", "bernsen": "Bernsen",
                    "gatos": "Gatos", "wan": "WAN", "bataineh": "Bataineh", "trsingh": "TR Singh"}

# Cited from the papers (as their authors report them; protocols differ). Never measured here.
PUBLISHED = (
    {"method": "DIBCO 2017 contest winner", "test": "DIBCO 2017", "fmeasure": 91.04, "psnr": 18.28,
     "source": "Pratikakis et al., ICDAR 2017"},
    {"method": "DocEnTr", "test": "DIBCO 2017", "fmeasure": None, "psnr": 19.11,
     "source": "Souibgui et al. 2022"},
    {"method": "ColDBin (cold diffusion)", "test": "DIBCO 2017", "fmeasure": 93.04, "psnr": 19.32,
     "source": "Saifullah et al. 2023"},
    {"method": "H-DIBCO 2018 contest winner", "test": "H-DIBCO 2018", "fmeasure": 88.34, "psnr": 19.11,
     "source": "Pratikakis et al., ICFHR 2018"},
    {"method": "DE-GAN", "test": "H-DIBCO 2018", "fmeasure": 77.59, "psnr": 16.16,
     "source": "Souibgui and Kessentini 2020"},
    {"method": "ERB, fine-tuned", "test": "H-DIBCO 2018", "fmeasure": 92.41, "psnr": 20.18,
     "source": "Souibgui et al. 2022"},
)


class PageLedgerError(ValueError):
    """A page ledger entry that lacks a field or holds a non-finite number."""


# ------------------------------------------------------------------------------------ scores
def binarize_restored(restored: np.ndarray, how: str = "fixed") -> np.ndarray:
    """Ink mask of a restored page: ``fixed`` = below 0.5, ``otsu`` = below Otsu's threshold."""
    if how == "fixed":
        return M.binarize(restored, 0.5)
    if how == "otsu":
        from .references import otsu

        return otsu(np.clip(restored, 0.0, 1.0)) < 0.5
    raise ValueError(f"pages.binarize must be fixed or otsu, got {how!r}")


def page_scores(pred_ink: np.ndarray, gt_ink: np.ndarray) -> dict[str, float]:
    """F-measure, pseudo-F (DIBCO 2010), PSNR and DRD (doxapy's block count) of one page."""
    return {"fmeasure": M.fmeasure(pred_ink, gt_ink), "pfmeasure": M.pseudo_fmeasure(pred_ink, gt_ink),
            "psnr": M.psnr_binary(pred_ink, gt_ink), "drd": M.drd(pred_ink, gt_ink, nubn="doxa")}


def to_uint8(image: np.ndarray) -> np.ndarray:
    return np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)


def reference_ink(name: str, image: np.ndarray) -> np.ndarray:
    """The ink mask of the classical binariser ``name`` (doxapy, default parameters)."""
    import doxapy

    algos = {k.lower(): v for k, v in doxapy.Binarization.Algorithms.__members__.items()}
    if name not in algos:
        raise ValueError(f"unknown reference binariser {name!r} in pages.references; doxapy offers {sorted(algos)}")
    grey = to_uint8(image)
    out = np.empty_like(grey)
    algo = doxapy.Binarization(algos[name])
    algo.initialize(grey)
    algo.to_binary(out, {})
    return out < 128


def check_references(names: Sequence[str]) -> None:
    import doxapy

    algos = {k.lower() for k in doxapy.Binarization.Algorithms.__members__}
    unknown = [n for n in names if n not in algos]
    if unknown:
        raise C.ConfigError(f"'pages.references' names {unknown}; doxapy offers {sorted(algos)}")
    for must in ("otsu", "sauvola"):
        if must not in names:
            raise C.ConfigError(f"'pages.references' must include {must!r} (the benchmark's reference)")


def crop_box(gt_ink: np.ndarray, side: int) -> tuple[int, int, int, int]:
    """(y, x, h, w) of the ``side``-pixel square holding the most ground-truth ink, on a coarse grid:
    the same place for every method, chosen from the ground truth only."""
    h, w = gt_ink.shape
    ch, cw = min(side, h), min(side, w)
    step = max(8, side // 4)
    integral = np.pad(gt_ink.astype(np.int64).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    best, box = -1, (0, 0, ch, cw)
    for y in range(0, h - ch + 1, step):
        for x in range(0, w - cw + 1, step):
            n = integral[y + ch, x + cw] - integral[y, x + cw] - integral[y + ch, x] + integral[y, x]
            if n > best:
                best, box = int(n), (y, x, ch, cw)
    return box


def _cut(img: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    y, x, h, w = box
    return img[y:y + h, x:x + w]


def restore_page(generator, image: np.ndarray, cfg: C.Config, device) -> np.ndarray:
    from ..data.pages import patch_size
    from ..restore.tiling import restore_image

    tile = (cfg.pages.tile, cfg.pages.tile) if cfg.pages.tile else patch_size(cfg)
    return np.clip(restore_image(generator, image, device, tile=tile, overlap=cfg.restore.overlap,
                                 batch_size=cfg.restore.batch_size), 0.0, 1.0)


def evaluate_generator(generator, pages, cfg: C.Config, device, crops: int = 2) -> tuple[dict, list]:
    """Restore and score every page: ({metric: [per page]}, [(page, box, binarised crop)] for
    the first ``crops`` pages)."""
    from tqdm.auto import tqdm

    from .. import runs as R

    per_page: dict[str, list[float]] = {m: [] for m in PAGE_METRICS}
    shown = []
    for i, page in enumerate(tqdm(pages, desc="restore pages", unit="page", disable=R.progress_disabled())):
        page.load()
        pred = binarize_restored(restore_page(generator, page.image, cfg, device), cfg.pages.binarize)
        for k, v in page_scores(pred, page.ink).items():
            per_page[k].append(v)
        if i < crops:
            box = crop_box(page.ink, cfg.pages.crop)
            shown.append((page, box, _cut(pred, box)))
    return per_page, shown


def evaluate_references(pages, names: Sequence[str]) -> dict[str, dict[str, list[float]]]:
    out: dict[str, dict[str, list[float]]] = {}
    for name in names:
        per_page: dict[str, list[float]] = {m: [] for m in PAGE_METRICS}
        for page in pages:
            page.load()
            for k, v in page_scores(reference_ink(name, page.image), page.ink).items():
                per_page[k].append(v)
        out[name] = per_page
    return out


def summarize(per_page: Mapping[str, Sequence[float]], bootstrap: int, seed: int = 0) -> dict:
    from .stats import summarize_metrics

    return summarize_metrics(per_page, n_resamples=bootstrap, seed=seed)


# ------------------------------------------------------------------------------------ ledger
def pages_dir(ledger_dir: str | Path, profile: str) -> Path:
    return C.resolve_path(ledger_dir) / profile / "pages"


def validate_page_entry(entry: Mapping) -> Mapping:
    missing = [f for f in PAGE_FIELDS if f not in entry]
    if missing:
        raise PageLedgerError(f"page ledger entry {entry.get('experiment', '?')!r} lacks field(s): {', '.join(missing)}")
    problems = []
    for where, metrics in [("metrics", entry["metrics"])] + [(f"references.{k}", v)
                                                             for k, v in entry["references"].items()]:
        for m in PAGE_METRICS:
            s = metrics.get(m) if isinstance(metrics, Mapping) else None
            if not isinstance(s, Mapping) or not all(np.isfinite(s.get(k, np.nan)) for k in ("mean", "lo", "hi")):
                problems.append(f"'{where}.{m}' must be a finite {{mean, lo, hi, n}}")
    for m in PAGE_METRICS:
        if len(entry["per_page"].get(m, [])) != len(entry["pages"]):
            problems.append(f"'per_page.{m}' must hold one value per test page ({len(entry['pages'])})")
    for k in ("otsu", "sauvola"):
        if k not in entry["references"]:
            problems.append(f"'references' lacks {k!r}")
    if problems:
        raise PageLedgerError(f"page ledger entry {entry.get('experiment')!r} is invalid: " + "; ".join(problems))
    return entry


def write_page_entry(entry: Mapping, ledger_dir: str | Path) -> Path:
    """Validate and write ``entry`` atomically to <ledger_dir>/<profile>/pages/<experiment>.json."""
    from .ledger import _gaps_as_null, _plain

    entry = _plain(entry)
    entry["history"] = _gaps_as_null(entry["history"])
    validate_page_entry(entry)
    path = pages_dir(ledger_dir, entry["profile"]) / f"{entry['experiment']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(entry, sort_keys=True, indent=2, allow_nan=False, ensure_ascii=False) + "\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_page_entries(ledger_dir: str | Path, profile: str) -> list[dict]:
    out = []
    for path in sorted(pages_dir(ledger_dir, profile).glob("*.json")):
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
            validate_page_entry(entry)
        except (json.JSONDecodeError, PageLedgerError) as exc:
            raise PageLedgerError(f"page ledger file {path}: {exc}; fix or delete it") from exc
        out.append(entry)
    return out


def make_page_entry(*, experiment: str, method: str, cfg: C.Config, splits, per_page: Mapping,
                    references: Mapping, train_result: Mapping, device: str, samples: list,
                    extra: Mapping | None = None) -> dict:
    return {
        "experiment": experiment, "method": method, "group": "pages", "profile": cfg.profile,
        "metrics": summarize(per_page, cfg.eval.bootstrap), "per_page": dict(per_page),
        "pages": [p.name for p in splits.test],
        "references": {k: summarize(v, cfg.eval.bootstrap) for k, v in references.items()},
        "references_per_page": dict(references),
        "train_sets": list(cfg.pages.train_sets), "test_sets": list(cfg.pages.test_sets),
        "val_pages": [p.name for p in splits.val], "train_pages": len(splits.train),
        "binarize": cfg.pages.binarize, "history": train_result.get("history", []),
        "config": C.to_dict(cfg), "git_commit": train_result.get("git_commit", "unknown"),
        "git_dirty": train_result.get("git_dirty"), "mlflow_run_id": train_result.get("mlflow_run_id"),
        "run_dir": _relative(train_result.get("run_dir", "")), "device": device,
        "date": _dt.datetime.now().isoformat(timespec="seconds"), "data_hash": splits.data_hash,
        "samples": samples, **(extra or {}),
    }


def _relative(path) -> str:
    from .ledger import _relative_to_project

    return _relative_to_project(path)


def save_crops(shown, cfg: C.Config, experiment: str) -> list[dict]:
    """Write this method's binarised crops into the ledger's samples folder; returns the entry's
    ``samples`` records (page, box, image). The input, Sauvola and ground-truth crops are cut from
    the page data when the figure is drawn: DIBCO images are never copied into the project."""
    from .ledger import save_sample_images

    samples = []
    for page, box, pred in shown:
        paths = save_sample_images({"restored": (~pred).astype(np.float32)}, cfg.eval.ledger_dir, cfg.profile,
                                   f"pages-{experiment}", page.name)
        samples.append({"page": page.name, "box": list(box), "images": paths})
    return samples


# ------------------------------------------------------------------------------------- table
def _fmt(summary: Mapping | None, metric: str, best: float | None) -> str:
    if summary is None:
        return "--"
    v = summary["mean"]
    text = f"{v:.2f}"
    if best is not None and abs(v - best) < 5e-3:
        text = f"\\textbf{{{text}}}"
    return text


def _sets(sets: Sequence[str]) -> str:
    from ..figures.tables import latex_escape

    return latex_escape(", ".join(sets))


def dibco_table(entries: Sequence[Mapping]) -> str:
    """paper/tables/<profile>/dibco.tex: measured rows (classical references, then the trained methods, all on
    the same test pages) and, below a rule, published rows cited from the papers with their test year."""
    from ..evaluation.ledger import entry_label
    from ..figures.tables import entry_comment, latex_escape

    if not entries:
        raise ValueError("the DIBCO table needs at least one page ledger entry")
    tests = {tuple(e["test_sets"]) for e in entries}
    pages = {tuple(e["pages"]) for e in entries}
    if len(tests) != 1 or len(pages) != 1:
        raise ValueError(f"page entries measured on different test pages ({sorted(tests)}); one table per test set")
    test_sets = list(tests.pop())
    first = entries[0]
    order = [k for k in first["config"]["pages"]["references"] if k in first["references"]]
    rows = [(f"{REFERENCE_LABELS.get(k, k)} (reference)", first["references"][k]) for k in order]
    rows += [(entry_label(e), e["metrics"]) for e in entries]
    best = {m: (max if HIGHER_IS_BETTER[m] else min)(r[1][m]["mean"] for r in rows) for m in PAGE_METRICS}
    n = len(first["pages"])
    lines = [entry_comment({**e, "_ledger_file": str(pages_dir(e["config"]["eval"]["ledger_dir"], e["profile"])
                                                     / f"{e['experiment']}.json")}) for e in entries]
    lines += [
        "\\begin{table}[t]", "\\centering", "\\small",
        f"\\caption{{DIBCO benchmark: trained on {_sets(first['train_sets'])}, tested on "
        f"{_sets(test_sets)} ({n} pages; mean over pages). Restored pages binarised "
        f"{'at 0.5' if first['binarize'] == 'fixed' else 'with Otsu'}; pseudo-F is the DIBCO 2010 variant; "
        "DRD as doxapy. Rows marked \\emph{published} are cited from their papers (own protocols, their "
        "test year), not measured here.}",
        "\\label{tab:dibco}",
        "\\begin{tabular}{llrrrr}", "\\toprule",
        "Method & Test set & FM $\\uparrow$ & p-FM $\\uparrow$ & PSNR $\\uparrow$ & DRD $\\downarrow$ \\\\",
        "\\midrule",
    ]
    for label, metrics in rows:
        cells = " & ".join(_fmt(metrics.get(m), m, best[m]) for m in PAGE_METRICS)
        lines.append(f"{latex_escape(label)} & {_sets(test_sets)} & {cells} \\\\")
    lines.append("\\midrule")
    for p in PUBLISHED:
        fm = f"{p['fmeasure']:.2f}" if p["fmeasure"] is not None else "--"
        lines.append(f"{latex_escape(p['method'])} (published) & {latex_escape(p['test'])} & {fm} & -- & "
                     f"{p['psnr']:.2f} & -- \\\\ % published: {latex_escape(p['source'])}")
    lines += ["\\bottomrule", "\\end{tabular}", "\\end{table}"]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------ figure
def crops_figure(entries: Sequence[Mapping], ledger_dir: str | Path, out_dir: str | Path,
                 name: str = "dibco_crops") -> list[Path]:
    """Page crops: input / Sauvola / each method (binarised) / ground truth, one row per page."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    import textwrap

    from ..figures import style

    entries = [e for e in entries if e["samples"]]
    if not entries:
        raise ValueError("no page entry holds crops")
    from ..data.pages import find_pairs, resolve_root

    root = C.resolve_path(ledger_dir)
    first = entries[0]
    pages = [s["page"] for s in first["samples"]]
    pc = first["config"]["pages"]
    by_name = {p.name: p for p in find_pairs(resolve_root(pc["root"]), pc["layout"]) if p.name in pages}

    def crop(page: str, key: str, box) -> np.ndarray:
        pair = by_name[page].load()
        img = {"input": pair.image, "gt": pair.clean}.get(key)
        if img is None:  # sauvola
            img = (~reference_ink("sauvola", pair.image)).astype(np.float32)
        return np.round(_cut(img, box) * 255)
    columns = [("Input", first, "input"), ("Sauvola", first, "sauvola")]
    # plain method names, wrapped: the footer says which profile and runs they come from
    columns += [(textwrap.fill(str(e["method"]), 22), e, "restored") for e in entries]
    columns += [("Ground truth", first, "gt")]
    style.apply_style()
    width = style.DOUBLE_COLUMN_IN
    cell = width / len(columns)
    fig, axes = plt.subplots(len(pages), len(columns), figsize=(width, cell * len(pages) + 0.3), squeeze=False)
    for r, page in enumerate(pages):
        for c, (title, entry, key) in enumerate(columns):
            ax = axes[r, c]
            sample = next((s for s in entry["samples"] if s["page"] == page), None)
            if sample is not None:
                img = (np.asarray(Image.open(root / sample["images"][key])) if key == "restored"
                       else crop(page, key, sample["box"]))
                ax.imshow(img, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
            if r == 0:
                ax.set_title(title, fontsize=style.SMALL_FONT_PT)
            if c == 0:
                ax.set_ylabel(page, fontsize=style.SMALL_FONT_PT)
    before = fig.get_size_inches()[1]
    style.add_footer(fig, list(entries))
    after = fig.get_size_inches()[1]
    fig.tight_layout(rect=(0, (after - before) / after, 1, 1))  # the footer below the last row, not over it
    paths = style.savefig(fig, out_dir, name)
    plt.close(fig)
    return paths


def write_outputs(ledger_dir: str | Path, profile: str, tables_dir: str | Path = "paper/tables",
                  figures_dir: str | Path = "paper/figures", test_sets: Sequence[str] | None = None) -> list[Path]:
    """The DIBCO table and the crops figure from the page ledger of ``profile`` (only the entries
    tested on ``test_sets`` when given)."""
    from ..figures.paper import profile_dirs
    from ..figures.tables import write_table

    # like every figure and table: a profile's outputs never replace another's (smoke: under runs/)
    figures_dir, tables_dir = profile_dirs(figures_dir, tables_dir, profile)
    entries = [e for e in read_page_entries(ledger_dir, profile)
               if test_sets is None or list(e["test_sets"]) == list(test_sets)]
    if not entries:
        raise ValueError(f"no page ledger entries in {pages_dir(ledger_dir, profile)}; run notebook 05 first")
    out = [write_table(dibco_table(entries), tables_dir, "dibco")]
    out += crops_figure(entries, ledger_dir, figures_dir)
    return out
