"""The paper's text holds no number typed by hand: every constant and result is a macro the ledger
generates (docrestore.figures.tables.macros), and the scanner finds a typed one."""

from __future__ import annotations

from docrestore import config as C
from docrestore.figures import tables
from docrestore.figures.typed_numbers import typed_numbers

from test_stats_family import _seeded


def test_main_tex_has_no_number_outside_a_macro():
    found = typed_numbers((C.PROJECT_ROOT / "paper" / "main.tex").read_text(encoding="utf-8"))
    assert found == [], "\n".join(f"line {n}: {line}" for n, line in found)


def test_the_scanner_finds_typed_constants_and_leaves_names_and_macros():
    body = "\\documentclass{article}\n\\usepackage[utf8]{inputenc}\n\\begin{document}\n"
    assert typed_numbers(body + "with $\\lambda=\\res{baseline_s1}{ctc-weight}$ in S1, an L2 norm~\\cite{dibco2017}\n"
                                "% a comment with 10\n\\papertable{main_comparison}\n") == []
    got = typed_numbers(body + "fine\nwith $\\beta=10$ as in ERB\nat 95\\% confidence\n")
    assert [n for n, _ in got] == [5, 6]


def test_the_method_constants_come_from_the_runs_config():
    base = _seeded("baseline_s1", [0.50, 0.52, 0.55])
    base["config"].update({"generator": {"name": "unet", "width": 0.125}, "eval": {"ssim_sigma": 1.5},
                           "train": {**base["config"]["train"], "pixel_weight": 10.0}})
    text = tables.macros([base])
    assert r"res@baseline_s1@generator-filters\endcsname{8--16--32--32--64}" in text
    assert r"res@baseline_s1@pixel-weight\endcsname{10}" in text
    assert r"res@baseline_s1@ctc-weight\endcsname{1}" in text
    assert r"res@all@ssim-sigma\endcsname{1.5}" in text and r"res@all@confidence\endcsname{95}" in text


def test_every_macro_main_tex_uses_for_constants_is_generated():
    """The constants' keys main.tex names exist in what macros() writes (else the paper prints ??)."""
    import re

    tex = (C.PROJECT_ROOT / "paper" / "main.tex").read_text(encoding="utf-8")
    keys = {k for k in re.findall(r"\\res\{[^}]*\}\{([^}]*)\}", tex)}
    for k in ("generator-filters", "pixel-weight", "ctc-weight", "ssim-sigma", "confidence", "seeds"):
        assert k in keys
