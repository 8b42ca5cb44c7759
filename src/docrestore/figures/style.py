"""One figure style for the whole paper, and the traceability footer every figure carries.

Sizes follow a two-column journal page: a single column is 3.5 in wide, the full text width
7.16 in. Fonts are never smaller than 7 pt. :func:`savefig` writes a vector PDF and a 300 dpi
PNG, and refuses a figure without the footer added by :func:`add_footer`, so no figure leaves
this module without saying which profile, commit(s) and run(s) it was drawn from.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterable, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # figures are written to files; never needs a display

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

SINGLE_COLUMN_IN = 3.5   # width of one column of a two-column journal page, inches
DOUBLE_COLUMN_IN = 7.16  # full text width, inches
MAX_HEIGHT_IN = 9.0      # a full page less the caption
FONT_PT = 8              # body text of figures
SMALL_FONT_PT = 7        # the smallest text on any figure (ticks, legends, footer)
DPI = 300

# Profiles that are not the paper's result; their figures say so in the footer.
PROFILE_LABELS = {
    "smoke": "smoke profile (CPU smoke test)",
    "quick": "quick profile (CPU)",
    "full": "full profile",
}
NOT_PAPER_NOTE = "not the paper's full-profile result"

_FOOTER_ATTR = "_docrestore_provenance"


def apply_style() -> None:
    """Set the one seaborn/matplotlib style used by every figure of the paper."""
    import seaborn as sns  # with pandas, about a second at import: only when a figure is drawn

    sns.set_theme(context="paper", style="whitegrid", palette="colorblind")
    plt.rcParams.update({
        "font.family": "DejaVu Sans",
        "font.size": FONT_PT,
        "axes.titlesize": FONT_PT,
        "axes.labelsize": FONT_PT,
        "xtick.labelsize": SMALL_FONT_PT,
        "ytick.labelsize": SMALL_FONT_PT,
        "legend.fontsize": SMALL_FONT_PT,
        "legend.title_fontsize": SMALL_FONT_PT,
        "figure.titlesize": FONT_PT,
        "lines.linewidth": 1.2,
        "lines.markersize": 4,
        "axes.linewidth": 0.6,
        "grid.linewidth": 0.4,
        "figure.dpi": 100,
        "savefig.dpi": DPI,
        "pdf.fonttype": 42,  # embed TrueType: text stays text in the PDF
        "ps.fonttype": 42,
    })


def new_figure(width: float = SINGLE_COLUMN_IN, height: float = 2.4, **subplots_kw):
    """``plt.subplots`` at a journal width (inches) in the paper style; returns (fig, axes)."""
    if width > DOUBLE_COLUMN_IN + 1e-6:
        raise ValueError(f"figure width {width} in exceeds the page's text width {DOUBLE_COLUMN_IN} in")
    apply_style()
    return plt.subplots(figsize=(width, min(height, MAX_HEIGHT_IN)), layout="constrained", **subplots_kw)


def method_colors(methods: Sequence[str]) -> dict[str, tuple]:
    """A stable colour per method name (same method, same colour in every figure of a call)."""
    import seaborn as sns

    palette = sns.color_palette("colorblind", n_colors=max(len(methods), 1))
    if len(methods) > len(sns.color_palette("colorblind")):
        palette = sns.color_palette("husl", n_colors=len(methods))
    return {m: palette[i] for i, m in enumerate(methods)}


def profile_label(profiles: Iterable[str]) -> str:
    """Words for the profile(s) behind a figure or table.

    Any smoke or quick profile adds that the numbers are not the paper's full-profile result.
    """
    found = sorted(set(profiles))
    if not found:
        raise ValueError("no profile given: every figure and table must say which profile it shows")
    words = " + ".join(PROFILE_LABELS.get(p, f"{p} profile") for p in found)
    if any(p != "full" for p in found):
        words += f" \N{EM DASH} {NOT_PAPER_NOTE}"
    return words


def short_commit(entry: dict) -> str:
    """The short git commit of a ledger entry, with '+dirty' when the tree had local changes."""
    commit = str(entry.get("git_commit") or "unknown")
    short = commit[:7] if commit != "unknown" else commit
    return short + ("+dirty" if entry.get("git_dirty") else "")


def short_run_id(entry: dict) -> str:
    """The first 8 characters of the entry's MLflow run id ('no-run-id' when absent)."""
    rid = str(entry.get("mlflow_run_id") or "")
    return rid[:8] if rid else "no-run-id"


def provenance(entries: Sequence[dict]) -> dict:
    """What a figure was drawn from: profiles, commits and one record per ledger entry."""
    if not entries:
        raise ValueError("a figure needs at least one ledger entry to be traceable")
    return {
        "profile_label": profile_label(e.get("profile", "unknown") for e in entries),
        "commits": sorted({short_commit(e) for e in entries}),
        "entries": [{
            "experiment": e.get("experiment"),
            "method": e.get("method"),
            "mlflow_run_id": e.get("mlflow_run_id"),
            "git_commit": e.get("git_commit"),
            "git_dirty": e.get("git_dirty"),
            "run_dir": e.get("run_dir"),
            "profile": e.get("profile"),
            "date": e.get("date"),
        } for e in entries],
    }


def footer_text(entries: Sequence[dict], width_in: float) -> str:
    """The footer: profile label, commit(s) and experiment=run-id pairs, wrapped to the width."""
    prov = provenance(entries)
    runs = ", ".join(f"{r['experiment']}={short_run_id(r)}"
                     for r in sorted(prov["entries"], key=lambda r: str(r["experiment"])))
    text = (f"{prov['profile_label']}. commit {', '.join(prov['commits'])}; "
            f"runs (experiment=MLflow run id): {runs}")
    # DejaVu Sans at 7 pt averages about 3.9 pt per character.
    chars = max(30, int(width_in * 72 / (0.56 * SMALL_FONT_PT)))
    return "\n".join(textwrap.wrap(text, chars, break_on_hyphens=False))


def add_footer(fig: Figure, entries: Sequence[dict]) -> Figure:
    """Add the traceability footer under the figure, growing its height to make room.

    The figure keeps its width; the footer is a left-aligned 7 pt grey note naming the
    profile (with the not-the-paper note for smoke/quick), the short commit(s) and the run id of
    every ledger entry drawn. The full provenance is kept on the figure for :func:`savefig`.
    """
    width, height = fig.get_size_inches()
    text = footer_text(entries, width)
    n_lines = text.count("\n") + 1
    extra = n_lines * SMALL_FONT_PT * 1.25 / 72 + 0.06
    fig.set_size_inches(width, height + extra)
    fig.supxlabel(text, x=0.005, ha="left", fontsize=SMALL_FONT_PT, color="0.35",
                  linespacing=1.1)
    setattr(fig, _FOOTER_ATTR, provenance(entries))
    return fig


def figure_provenance(fig: Figure) -> dict | None:
    """The provenance stored by :func:`add_footer`, or None when the figure has no footer."""
    return getattr(fig, _FOOTER_ATTR, None)


def savefig(fig: Figure, out_dir: str | Path, name: str) -> list[Path]:
    """Write ``<name>.pdf``, ``<name>.png`` (300 dpi) and ``<name>.provenance.json`` to out_dir.

    Raises ValueError for a figure without the traceability footer (see :func:`add_footer`) or
    wider than the page. Returns the paths written.
    """
    prov = figure_provenance(fig)
    if prov is None:
        raise ValueError(f"figure '{name}' has no traceability footer: call "
                         "docrestore.figures.style.add_footer(fig, entries) before savefig")
    width = fig.get_size_inches()[0]
    if width > DOUBLE_COLUMN_IN + 1e-6:
        raise ValueError(f"figure '{name}' is {width:.2f} in wide; the page allows {DOUBLE_COLUMN_IN} in")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = f"{prov['profile_label']}; commits {', '.join(prov['commits'])}"
    runs = ", ".join(f"{r['experiment']}={r['mlflow_run_id']}" for r in prov["entries"])
    pdf, png, side = out / f"{name}.pdf", out / f"{name}.png", out / f"{name}.provenance.json"
    # No creation date: redrawing an unchanged ledger gives byte-identical files (clean git diffs).
    fig.savefig(pdf, metadata={"Title": name, "Subject": summary, "Keywords": runs,
                               "Creator": "docrestore.figures", "CreationDate": None})
    fig.savefig(png, dpi=DPI, metadata={"Title": name, "Description": summary, "Comment": runs})
    side.write_text(json.dumps({"figure": name, **prov}, indent=2, default=str), encoding="utf-8")
    return [pdf, png, side]
