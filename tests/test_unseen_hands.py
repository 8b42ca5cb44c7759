"""Held-out hands: fonts that write only test lines, and the main table's seen/unseen rows."""

from __future__ import annotations

import pytest

from docrestore import config as C
from docrestore.study import lines as P
from docrestore.data import manifest as M
from docrestore.evaluation import ledger as L
from docrestore.figures import tables as T


def test_quick_and_full_hold_hands_out():
    for profile in ("quick", "full"):
        cfg = C.load_config(profile=profile)
        assert cfg.data.heldout_fonts and set(cfg.data.heldout_fonts) <= set(cfg.data.fonts)
        assert set(cfg.data.fonts) - set(cfg.data.heldout_fonts)  # hands left to train on


@pytest.mark.e2e
def test_heldout_fonts_only_in_test_and_unseen_rows_in_the_main_table(tmp_path):
    """A smoke run with DejaVu Serif held out: never in train/val, and the main table shows the
    baseline on seen and on unseen hands."""
    overrides = [f"runs_dir={tmp_path}/runs", f"eval.ledger_dir={tmp_path}/ledger", f"data.root={tmp_path}/data",
                 "tracking.enabled=false", "train.max_steps=2", "train.val_every=2",
                 "data.heldout_fonts=[DejaVu Serif]", "data.n_test=16", "data.n_train=16", "data.n_val=4"]
    entry = P.run_experiment(P.baseline("S1"), profile="smoke", overrides=overrides)
    records = M.read_manifest(tmp_path / "data" / "manifest.jsonl")
    assert {r["font"] for r in records if r["split"] in ("train", "val")} == {"DejaVu Sans"}
    test_fonts = [r["font"] for r in records if r["split"] == "test"]
    assert "DejaVu Serif" in test_fonts and "DejaVu Sans" in test_fonts
    assert entry["line_hands"] == ["unseen" if f == "DejaVu Serif" else "seen" for f in test_fonts]
    entries = L.read_ledger(tmp_path / "ledger", profile="smoke")
    table = T.main_table(entries)
    n_unseen = test_fonts.count("DejaVu Serif")
    assert "ERB S1" in table and ", seen hands &" in table and ", unseen hands &" in table
    assert f"unseen hands: {n_unseen} test lines" in table
    unseen_row = next(line for line in table.splitlines() if line.startswith("ERB S1") and ", unseen hands &" in line)
    assert unseen_row.count("[") == 4 and r"\textbf" not in unseen_row  # four metrics, never bold
