"""The DIBCO page benchmark's table and crops figure, drawn from the page ledger only
(:mod:`docrestore.evaluation.dibco` measures the pages and keeps that ledger).

``write_outputs(ledger_dir, profile)`` writes ``paper/tables/<profile>/dibco.tex`` and
``paper/figures/<profile>/dibco_crops.*``.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from .. import config as C
from ..evaluation.dibco import (PAGE_METRICS, REFERENCE_LABELS, cut, pages_dir, read_page_entries,
                                reference_ink, threshold_label)
from ..evaluation.ledger import entry_label
from . import style
from .paper import profile_dirs
from .tables import entry_comment, latex_escape, write_table

METRIC_LABELS = {"fmeasure": "FM", "pfmeasure": "p-FM", "psnr": "PSNR", "drd": "DRD"}
HIGHER_IS_BETTER = {"fmeasure": True, "pfmeasure": True, "psnr": True, "drd": False}

# Cited from the papers (as their authors report them; protocols differ), grouped in the table by
# their own test set. p-FM / DRD only where the paper gives them (None: not reported). Never
# measured here. Source: ../shared/REAL_DATA.md and ../shared/RESEARCH.md.
PUBLISHED = (
    {"method": "H-DIBCO 2016 contest winner", "test": "H-DIBCO 2016", "fmeasure": 87.61, "psnr": 18.11,
     "source": "Pratikakis et al., ICFHR 2016"},
    {"method": "ERB, fine-tuned", "test": "H-DIBCO 2016", "fmeasure": 94.95, "pfmeasure": 94.55, "psnr": 21.85,
     "drd": 1.56, "source": "Souibgui et al. 2022"},
    {"method": "ColDBin (cold diffusion)", "test": "H-DIBCO 2016", "fmeasure": 89.50, "psnr": 18.71,
     "source": "Saifullah et al. 2023"},
    {"method": "DIBCO 2017 contest winner", "test": "DIBCO 2017", "fmeasure": 91.04, "psnr": 18.28,
     "source": "Pratikakis et al., ICDAR 2017"},
    {"method": "DocEnTr", "test": "DIBCO 2017", "psnr": 19.11, "source": "Souibgui et al. 2022"},
    {"method": "ColDBin (cold diffusion)", "test": "DIBCO 2017", "fmeasure": 93.04, "psnr": 19.32,
     "source": "Saifullah et al. 2023"},
    {"method": "H-DIBCO 2018 contest winner", "test": "H-DIBCO 2018", "fmeasure": 88.34, "psnr": 19.11,
     "source": "Pratikakis et al., ICFHR 2018"},
    {"method": "DE-GAN", "test": "H-DIBCO 2018", "fmeasure": 77.59, "pfmeasure": 85.74, "psnr": 16.16,
     "drd": 7.93, "source": "Souibgui and Kessentini 2020"},
    {"method": "ERB, fine-tuned", "test": "H-DIBCO 2018", "fmeasure": 92.41, "pfmeasure": 94.35, "psnr": 20.18,
     "drd": 2.60, "source": "Souibgui et al. 2022"},
    {"method": "DocEnTr", "test": "H-DIBCO 2018", "psnr": 19.47, "source": "Souibgui et al. 2022"},
    {"method": "ColDBin (cold diffusion)", "test": "H-DIBCO 2018", "fmeasure": 89.71, "psnr": 19.53,
     "source": "Saifullah et al. 2023"},
)


def set_label(name: str) -> str:
    """A page set's name as the papers write it: ``DIBCO2017`` -> ``DIBCO 2017``."""
    import re

    m = re.fullmatch(r"(H-)?(DIBCO)[ _-]?(\d{4})", name, flags=re.IGNORECASE)
    return f"{(m[1] or '').upper()}DIBCO {m[3]}" if m else name


def published_groups(measured: Sequence[str] = ()) -> list[tuple[str, list[Mapping]]]:
    """:data:`PUBLISHED` grouped by test set: the sets measured here first, then by year."""
    tests = sorted({p["test"] for p in PUBLISHED}, key=lambda t: (t not in measured, t[-4:], t))
    return [(t, [p for p in PUBLISHED if p["test"] == t]) for t in tests]


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
    return latex_escape(", ".join(sets))


def row_binarisation(entry: Mapping) -> str:
    """How a method's restored pages became binary (0.5, Otsu or the threshold chosen on the
    validation pages), and whether the flip vote was used: stated on its row."""
    pages = entry.get("config", {}).get("pages", {})
    label = threshold_label(entry.get("binarize", "fixed"), entry.get("threshold"))
    return label + (", flip vote" if entry.get("flip_vote", pages.get("flip_vote")) else "")


def dibco_table(entries: Sequence[Mapping]) -> str:
    """paper/tables/<profile>/dibco.tex: measured rows (classical references, then the trained
    methods, each with its binarisation, all on the same test pages) and, below a rule, published
    rows cited from their papers, grouped by their own test set (the measured one first), with
    p-FM and DRD where the paper gives them."""
    if not entries:
        raise ValueError("the DIBCO table needs at least one page ledger entry")
    tests = {tuple(e["test_sets"]) for e in entries}
    pages = {tuple(e["pages"]) for e in entries}
    if len(tests) != 1 or len(pages) != 1:
        raise ValueError(f"page entries measured on different test pages ({sorted(tests)}); one table per test set")
    test_sets = list(tests.pop())
    first = entries[0]
    order = [k for k in first["config"]["pages"]["references"] if k in first["references"]]
    rows = [(f"{REFERENCE_LABELS.get(k, k)} (reference)", "own rule", first["references"][k]) for k in order]
    rows += [(entry_label(e), row_binarisation(e), e["metrics"]) for e in entries]
    best = {m: (max if HIGHER_IS_BETTER[m] else min)(r[2][m]["mean"] for r in rows) for m in PAGE_METRICS}
    n = len(first["pages"])
    measured = [set_label(s) for s in test_sets]
    lines = [entry_comment({**e, "_ledger_file": str(pages_dir(e["config"]["eval"]["ledger_dir"], e["profile"])
                                                     / f"{e['experiment']}.json")}) for e in entries]
    lines += [
        "\\begin{table}[t]", "\\centering", "\\small",
        f"\\caption{{DIBCO benchmark: trained on {_sets(first['train_sets'])}, tested on "
        f"{_sets(test_sets)} ({n} pages; mean over pages). \\emph{{Binarised}}: how a restored page became "
        "binary (ink below 0.5, below Otsu's threshold, or below one threshold chosen on the validation pages); "
        "a classical binariser applies its own rule. Pseudo-F is the DIBCO 2010 variant; DRD as doxapy. "
        "Rows marked \\emph{published} are cited from their papers (own protocols), grouped by their own "
        "test set; -- where a paper does not report the measure. They are not measured here.}",
        "\\label{tab:dibco}",
        "\\begin{tabular}{lllrrrr}", "\\toprule",
        "Method & Binarised & Test set & FM $\\uparrow$ & p-FM $\\uparrow$ & PSNR $\\uparrow$ & DRD $\\downarrow$ \\\\",
        "\\midrule",
    ]
    for label, how, metrics in rows:
        cells = " & ".join(_fmt(metrics.get(m), m, best[m]) for m in PAGE_METRICS)
        lines.append(f"{latex_escape(label)} & {latex_escape(how)} & {_sets(test_sets)} & {cells} \\\\")
    for test, published in published_groups(measured):
        lines += ["\\midrule", f"\\multicolumn{{7}}{{l}}{{\\emph{{Published, tested on {latex_escape(test)}}}}} \\\\"]
        for p in published:
            cells = " & ".join(f"{p[m]:.2f}" if p.get(m) is not None else "--" for m in PAGE_METRICS)
            lines.append(f"{latex_escape(p['method'])} (published) & -- & {latex_escape(p['test'])} & {cells} "
                         f"\\\\ % published: {latex_escape(p['source'])}")
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

    entries = [e for e in entries if e["samples"]]
    if not entries:
        raise ValueError("no page entry holds crops")
    from ..data.pages import find_pairs, resolve_root  # the page images are cut, never copied

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
        return np.round(cut(img, box) * 255)
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
    # like every figure and table: a profile's outputs never replace another's (smoke: under runs/)
    figures_dir, tables_dir = profile_dirs(figures_dir, tables_dir, profile)
    entries = [e for e in read_page_entries(ledger_dir, profile)
               if test_sets is None or list(e["test_sets"]) == list(test_sets)]
    if not entries:
        raise ValueError(f"no page ledger entries in {pages_dir(ledger_dir, profile)}; run notebook 05 first")
    out = [write_table(dibco_table(entries), tables_dir, "dibco")]
    out += crops_figure(entries, ledger_dir, figures_dir)
    return out
