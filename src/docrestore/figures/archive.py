"""An archive's own lines before and after restoration, drawn from a real-lines entry and its
per-line CSV (:mod:`docrestore.evaluation.real`): the spread of CER before and after, and the
lines that improved most or got worse, each degraded and restored with what the reader read.

Every figure carries the traceability footer (profile, commit); it never re-runs anything.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from PIL import Image

from . import style as S

CHANGES = ("improved", "worsened")


def change_counts(rows: Sequence[dict]) -> dict[str, int]:
    """How many lines read better (CER fell), the same, or worse (CER rose) after restoration."""
    change = np.asarray([r["cer_change"] for r in rows], dtype=float)
    return {"improved": int((change < 0).sum()), "unchanged": int((change == 0).sum()),
            "worsened": int((change > 0).sum())}


def cer_distribution(entry: dict | None, rows: Sequence[dict]) -> Figure | None:
    """Left: histograms of per-line CER before and after; right: each line's CER after against
    before (below the diagonal: restoration helped that line). CER in %, capped at 150 % for the
    axes (a reading much longer than the line can exceed 100 %). None without an entry."""
    if entry is None:
        return None
    before = np.asarray([r["cer_degraded"] for r in rows], dtype=float) * 100
    after = np.asarray([r["cer_restored"] for r in rows], dtype=float) * 100
    top = float(min(150.0, max(before.max(initial=0), after.max(initial=0), 1.0) * 1.05))
    fig, (hist, scatter) = S.new_figure(S.DOUBLE_COLUMN_IN, 2.6, ncols=2)
    bins = np.linspace(0, top, 21)
    for values, name in ((before, "degraded"), (after, "restored")):
        hist.hist(np.clip(values, 0, top), bins=bins, alpha=0.55, label=f"{name} (mean {values.mean():.1f} %)")
    hist.set_xlabel("CER per line (%)")
    hist.set_ylabel("lines")
    hist.legend()
    scatter.scatter(np.clip(before, 0, top), np.clip(after, 0, top), s=8, alpha=0.6)
    scatter.plot([0, top], [0, top], color="0.4", linewidth=0.8, linestyle="--")
    scatter.set_xlim(0, top)
    scatter.set_ylim(0, top)
    scatter.set_xlabel("CER degraded (%)")
    scatter.set_ylabel("CER restored (%)")
    counts = change_counts(rows)
    p = (entry.get("paired") or {}).get("cer", {}).get("p_value")
    scatter.set_title(f"{counts['improved']} lines better, {counts['unchanged']} the same, "
                      f"{counts['worsened']} worse" + (f" (paired Wilcoxon p = {p:.3g})" if p is not None else ""))
    return S.add_footer(fig, [entry])


def pick_lines(rows: Sequence[dict], which: str, n: int = 10) -> list[dict]:
    """The ``n`` lines whose CER fell most (``improved``) or rose most (``worsened``), largest
    change first; lines whose CER did not move in that direction are never picked."""
    if which not in CHANGES:
        raise ValueError(f"which must be one of {list(CHANGES)}, got {which!r}")
    if which == "improved":
        picked = sorted((r for r in rows if r["cer_change"] < 0), key=lambda r: r["cer_change"])
    else:
        picked = sorted((r for r in rows if r["cer_change"] > 0), key=lambda r: -r["cer_change"])
    return picked[:n]


def _label(kind: str, reading: str, cer: float, width: int) -> str:
    return textwrap.shorten(f"{kind} (CER {cer * 100:.0f} %) read: \u201c{reading}\u201d", width, placeholder=" ...")


def line_crops(entry: dict | None, rows: Sequence[dict], folder: str | Path | None, which: str = "improved",
               n: int = 10) -> Figure | None:
    """For each of :func:`pick_lines`: the transcription, then the degraded and the restored
    crop (as the generator and the reader saw them), each titled with what the reader read and
    its CER. With no such line, a figure that says so; None without an entry."""
    if entry is None:
        return None
    picked = pick_lines(rows, which, n)
    crops = Path(folder) / "crops"
    if not picked:
        fig, ax = S.new_figure(S.DOUBLE_COLUMN_IN, 0.6)
        ax.axis("off")
        ax.text(0.0, 0.5, f"No line {which}: the reader's CER {'fell' if which == 'improved' else 'rose'} "
                          "on none of them after restoration.", va="center")
        return S.add_footer(fig, [entry])
    fig, axes = S.new_figure(S.DOUBLE_COLUMN_IN, 1.05 * len(picked), nrows=2 * len(picked), squeeze=False)
    chars = 110
    for i, row in enumerate(picked):
        for j, kind in enumerate(("degraded", "restored")):
            ax = axes[2 * i + j, 0]
            ax.imshow(np.asarray(Image.open(crops / row[f"{kind}_image"])), cmap="gray", vmin=0, vmax=255,
                      aspect="auto", interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            title = _label(kind, row[f"read_{kind}"], row[f"cer_{kind}"], chars)
            if j == 0:
                title = textwrap.shorten(f"{row['id']}: \u201c{row['transcription']}\u201d", chars,
                                         placeholder=" ...") + "\n" + title
            ax.set_title(title, loc="left", fontsize=S.SMALL_FONT_PT)
    return S.add_footer(fig, [entry])


def natural_lines(rows: Sequence[dict], entries: Sequence[dict] | Mapping[str, Sequence[dict]]) -> Figure | None:
    """Restoration on lines nobody degraded (:mod:`docrestore.evaluation.natural`): per set, each
    arm's change in mean per-line CER (points; left of 0: the reader reads the restored line
    better than the scanned one) with its 95 % paired bootstrap interval over lines and seeds,
    and the CER as scanned in the panel title. ``entries`` are the real-lines entries drawn (the
    footer names them), as a list or by arm (a report's ``results``). None without rows."""
    if not rows:
        return None
    if isinstance(entries, Mapping):
        entries = [e for by_arm in entries.values() for e in by_arm]
    sets = list(dict.fromkeys(r["set"] for r in rows))
    arms = list(dict.fromkeys(r["method"] for r in rows))
    fig, axes = S.new_figure(S.DOUBLE_COLUMN_IN, 0.35 * len(arms) + 1.1, ncols=len(sets), sharex=True, sharey=True,
                             squeeze=False)
    fig.suptitle("real test lines as scanned (not flattened, not damaged), read before and after restoration; "
                 "95 % interval over lines and seeds", fontsize=S.SMALL_FONT_PT)
    marks = {"helps": "o", "hurts": "s", "neutral": "D"}
    for ax, name in zip(axes[0], sets):
        here = [r for r in rows if r["set"] == name]
        for r in here:
            y = arms.index(r["method"])
            d, lo, hi = (100 * r[k] for k in ("delta", "lo", "hi"))
            ax.errorbar(d, y, xerr=[[d - lo], [hi - d]], fmt=marks[r["verdict"]], color="0.15", markersize=4,
                        capsize=2, linewidth=0.9)
        ax.axvline(0, color="0.5", linewidth=0.8, linestyle="--")
        scanned = np.mean([r["before"] for r in here]) * 100
        ax.set_title(f"{name} ({here[0]['lines']} lines)\nCER as scanned {scanned:.1f} %", fontsize=S.SMALL_FONT_PT)
        ax.set_xlabel("ΔCER (points)")
    axes[0][0].set_yticks(range(len(arms)))
    axes[0][0].set_yticklabels(arms)
    axes[0][0].invert_yaxis()
    return S.add_footer(fig, list(entries))
