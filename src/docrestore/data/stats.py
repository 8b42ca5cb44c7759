"""Dataset statistics and figures for the data notebook.

The functions return plain Python/numpy data (no pandas); the plotting helpers return
matplotlib Figures built without pyplot, so the library never touches global figure state
(and importing seaborn, hence pandas, is not needed for a few histograms).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from PIL import Image

from . import manifest as M


def _records(manifest: str | Path, split: str | None = None) -> list[dict]:
    records = M.read_manifest(manifest)
    return [r for r in records if split is None or r["split"] == split]


def line_lengths(manifest: str | Path, split: str | None = None) -> dict[str, list[int]]:
    """Characters and words per line: ``{"chars": [...], "words": [...]}``."""
    records = _records(manifest, split)
    return {"chars": [len(r["text"]) for r in records], "words": [len(r["text"].split()) for r in records]}


def severity_histogram(manifest: str | Path, bins: int = 10,
                       split: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(counts, bin edges) of the per-line degradation severity on [0, 1]."""
    values = [r["severity"] for r in _records(manifest, split) if r.get("severity") is not None]
    return np.histogram(values, bins=bins, range=(0.0, 1.0))


def degradation_counts(manifest: str | Path, split: str | None = None) -> dict[str, int]:
    """How many lines had each degradation, most frequent first."""
    counter = Counter(d["name"] for r in _records(manifest, split) for d in r.get("degradations") or [])
    return dict(counter.most_common())


def char_counts(manifest: str | Path, split: str | None = None) -> dict[str, int]:
    """Occurrences of every character of the texts (charset coverage), most frequent first."""
    counter = Counter("".join(r["text"] for r in _records(manifest, split)))
    return dict(counter.most_common())


def font_counts(manifest: str | Path, split: str | None = None) -> dict[str, int]:
    counter = Counter(r.get("font") or "real" for r in _records(manifest, split))
    return dict(counter.most_common())


def width_fit(manifest: str | Path, height: int, width: int, split: str | None = None) -> dict[str, int]:
    """``{"fits": n, "squeezed": n}``: lines that fit ``width`` at ``height`` and lines wider than it,
    which the datasets squeeze to fit (never crop; see data/dataset.py)."""
    from .dataset import fit_counts

    return fit_counts(manifest, _records(manifest, split), height, width)


def _gray(manifest: str | Path, rel: str) -> np.ndarray:
    with Image.open(M.resolve(manifest, rel)) as im:
        return np.asarray(im.convert("L"), dtype=np.float64) / 255.0


def psnr_per_line(manifest: str | Path, split: str | None = None, limit: int | None = None) -> dict[str, float]:
    """PSNR (dB, peak 1) of the degraded line against its clean line, ``{id: psnr}``; lines
    without a clean image are skipped. ``limit`` reads only the first lines."""
    out: dict[str, float] = {}
    for r in _records(manifest, split):
        if r.get("clean") is None:
            continue
        if limit is not None and len(out) >= limit:
            break
        clean, degraded = _gray(manifest, r["clean"]), _gray(manifest, r["degraded"])
        mse = float(np.mean((clean - degraded) ** 2))
        out[r["id"]] = float("inf") if mse == 0 else 10.0 * np.log10(1.0 / mse)
    return out


def plot_sample_grid(manifest: str | Path, n: int = 8, split: str | None = None) -> Figure:
    """The first ``n`` lines: degraded above clean, the transcription (font, severity) as title."""
    records = _records(manifest, split)[:max(1, n)]
    rows = len(records)
    fig = Figure(figsize=(10, 1.45 * rows + 0.3), layout="constrained")
    axes = fig.subplots(rows * 2, 1, squeeze=False)[:, 0]
    for i, r in enumerate(records):
        degraded = _gray(manifest, r["degraded"])
        clean = _gray(manifest, r["clean"]) if r.get("clean") else np.ones_like(degraded)
        axes[2 * i].imshow(degraded, cmap="gray", vmin=0, vmax=1, aspect="auto", interpolation="nearest")
        axes[2 * i + 1].imshow(clean, cmap="gray", vmin=0, vmax=1, aspect="auto", interpolation="nearest")
        sev = f", severity {r['severity']:.2f}" if r.get("severity") is not None else ""
        axes[2 * i].set_title(f"{r['id']}  \u201c{r['text']}\u201d  ({r.get('font') or 'real'}{sev})",
                              fontsize=8, loc="left")
        axes[2 * i].set_ylabel("degraded", fontsize=7)
        axes[2 * i + 1].set_ylabel("clean", fontsize=7)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    return fig


def plot_dataset_stats(manifest: str | Path, psnr_lines: int = 500) -> Figure:
    """Four panels: line lengths, severity, degradations applied, PSNR of degraded vs clean,
    plus the character frequencies (charset coverage)."""
    lengths = line_lengths(manifest)
    counts, edges = severity_histogram(manifest)
    degr = degradation_counts(manifest)
    psnr = [v for v in psnr_per_line(manifest, limit=psnr_lines).values() if np.isfinite(v)]
    chars = char_counts(manifest)

    fig = Figure(figsize=(12, 8), layout="constrained")
    grid = fig.add_gridspec(3, 2)
    ax = fig.add_subplot(grid[0, 0])
    if lengths["chars"]:
        lo, hi = min(lengths["chars"]), max(lengths["chars"])
        ax.hist(lengths["chars"], bins=np.arange(lo - 0.5, hi + 1.5), color="C0", edgecolor="white")
    ax.set(title="characters per line", xlabel="characters", ylabel="lines")
    ax = fig.add_subplot(grid[0, 1])
    ax.bar(edges[:-1], counts, width=np.diff(edges), align="edge", color="C1", edgecolor="white")
    ax.set(title="degradation severity", xlabel="severity", ylabel="lines")
    ax = fig.add_subplot(grid[1, 0])
    ax.barh(list(degr)[::-1], list(degr.values())[::-1], color="C2")
    ax.set(title="degradations applied", xlabel="lines")
    ax.tick_params(axis="y", labelsize=7)
    ax = fig.add_subplot(grid[1, 1])
    if psnr:
        ax.hist(psnr, bins=min(30, max(5, len(psnr) // 5)), color="C3", edgecolor="white")
    ax.set(title=f"PSNR degraded vs clean (first {len(psnr)} lines)", xlabel="dB", ylabel="lines")
    ax = fig.add_subplot(grid[2, :])
    labels = [repr(c)[1:-1] if c != " " else "␣" for c in chars]
    ax.bar(range(len(chars)), list(chars.values()), color="C4")
    ax.set_xticks(range(len(chars)), labels, fontsize=6)
    ax.set(title=f"character frequencies ({len(chars)} characters)", ylabel="count", yscale="log")
    return fig


def compare_sources(manifests: dict[str, str | Path | None], split: str = "test", psnr_lines: int = 200) -> dict:
    """Side by side, per source (e.g. font lines, real hands): lines per split, the median
    characters and words of a ``split`` line, the charset size, and the median PSNR of a degraded
    line against its clean line (the restorer's starting point). A source given as None is left out."""
    out = {}
    for name, manifest in manifests.items():
        if manifest is None:
            continue
        lengths = line_lengths(manifest, split)
        psnr = list(psnr_per_line(manifest, split, limit=psnr_lines).values())
        out[name] = {"lines": M.split_counts(_records(manifest)),
                     "median_chars": float(np.median(lengths["chars"])),
                     "median_words": float(np.median(lengths["words"])),
                     "charset": len(char_counts(manifest)),
                     "median_degraded_psnr": round(float(np.median(psnr)), 2) if psnr else None}
    return out
