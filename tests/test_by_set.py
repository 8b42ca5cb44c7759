"""The main line table on real hands: per-set rows of each main arm over its seeds, and ERB's
published degraded-IAM row cited beside them."""

from __future__ import annotations

import pytest

from docrestore.evaluation import by_set as B


def _entry(name, cer):
    ids = ["a1", "a2", "b1"]
    return {"experiment": name, "line_ids": ids,
            "per_line": {"psnr": [10.0, 12.0, 20.0], "ssim": [0.5, 0.5, 0.9], "cer": cer, "wer": [1.0, 1.0, 0.0]}}


def test_rows_average_each_sets_lines_then_the_seeds():
    sets = {"a1": "cremma-mss-17", "a2": "cremma-mss-17", "b1": "iforal"}
    entries = [_entry("baseline_s1", [0.2, 0.4, 0.1]), _entry("baseline_s1_seed1", [0.4, 0.6, 0.1]),
               _entry("baseline_s2", [0.9, 0.9, 0.9])]
    rows = B.set_rows(entries, sets)
    assert [(r["set"], r["arm"], r["lines"], r["seeds"]) for r in rows] == [
        ("cremma-mss-17", "baseline_s1", 2, 2), ("iforal", "baseline_s1", 1, 2), ("all", "baseline_s1", 3, 2)]
    assert rows[0]["cer"] == pytest.approx(0.4) and rows[0]["cer_sd"] == pytest.approx(0.1414, abs=1e-3)
    assert rows[0]["psnr"] == pytest.approx(11.0) and rows[1]["cer_sd"] == 0.0
    assert rows[2]["cer"] == pytest.approx((0.7 / 3 + 1.1 / 3) / 2)
    table = B.set_table(rows)
    assert table.iloc[-1]["set"] == "IAM (published)" and "26.05" in table.iloc[-1]["CER (%)"]
    assert "Souibgui" in table.iloc[-1]["arm"] and table.iloc[0]["CER (%)"] == "40.00 ± 14.14"


def test_the_real_lines_plan_expands_to_the_main_arms_with_three_seeds_and_a_valid_config():
    from docrestore import config as C
    from docrestore.scheduler import plan as P

    plan = P.load_plan(P.PLAN_DIR / "real_lines_quick.yaml")
    jobs = P.expand(plan)
    P.validate_jobs(jobs)  # every parameter exists in its notebook's parameters cell
    assert len(jobs) == 9 and {j.parameters["seed"] for j in jobs} == {0, 1, 2}
    for job in jobs:
        over = job.parameters["overrides"]
        assert "data.source=real" in over and "eval.ledger_dir=paper/results/real_lines" in over
        cfg = C.load_config(profile="quick", overrides=list(over))  # every key exists and type-checks
        assert cfg.data.source == "real" and cfg.data.width == 512


def test_every_line_table_says_which_lines_it_shows():
    from docrestore.study import lines as P

    real = {"config": {"data": {"source": "real", "real_lines": "runs/real/htr/manifest.jsonl", "manifest": ""}}}
    font = {"config": {"data": {"source": "synthetic", "real_lines": "", "manifest": ""}}}
    assert P.line_source(real) == "real hands (htr; clean flattened)"
    assert P.line_source(font) == "font lines"


def test_the_clean_and_degraded_rows_come_from_an_entrys_summaries():
    s = lambda v: {"mean": v, "lo": v, "hi": v, "n": 3}  # noqa: E731
    e = {**_entry("baseline_s1", [0.2, 0.4, 0.1]),
         "references": {"degraded": {"psnr": s(13.0), "ssim": s(0.6), "cer": s(0.65), "wer": s(1.0)}},
         "reader_clean": {"cer": s(0.27), "wer": s(0.64)}}
    rows = B.reference_rows([e])
    assert [(r["arm"], r["set"], r["lines"]) for r in rows] == [("clean", "all", 3), ("degraded", "all", 3)]
    table = B.set_table(rows, reference=None)
    assert list(table["CER (%)"]) == ["27.00", "65.00"] and table.iloc[0]["PSNR (dB)"] == "—"
    assert B.reference_rows([_entry("x", [0, 0, 0])]) == []


def test_the_reference_rows_split_by_set_where_the_entry_keeps_per_line_values():
    s = lambda v: {"mean": v, "lo": v, "hi": v, "n": 3}  # noqa: E731
    e = {**_entry("baseline_s1", [0.2, 0.4, 0.1]),
         "references": {"degraded": {"psnr": s(13.0), "ssim": s(0.6), "cer": s(0.65), "wer": s(1.0)}},
         "reader_clean": {"cer": s(0.27), "wer": s(0.64)},
         "reader_clean_per_line": {"cer": [0.1, 0.3, 0.2], "wer": [0.5, 0.5, 1.0]},
         "degraded_per_line": {"psnr": [12.0, 14.0, 13.0], "ssim": [0.6, 0.6, 0.6], "cer": [0.6, 0.8, 0.55],
                               "wer": [1.0, 1.0, 1.0]}}
    sets = {"a1": "cremma-mss-17", "a2": "cremma-mss-17", "b1": "iforal"}
    rows = B.reference_rows([e], sets)
    got = {(r["arm"], r["set"]): r for r in rows}
    assert set(got) == {(k, s_) for k in ("clean", "degraded") for s_ in ("cremma-mss-17", "iforal", "all")}
    assert got[("clean", "cremma-mss-17")]["cer"] == pytest.approx(0.2) and got[("clean", "iforal")]["psnr"] is None
    assert got[("degraded", "cremma-mss-17")]["psnr"] == pytest.approx(13.0)
    assert got[("degraded", "all")]["cer"] == pytest.approx(0.65)


def test_the_qualitative_grid_says_when_its_lines_are_real_hands():
    from docrestore.figures import plots

    assert plots._pair_labels({"config": {"data": {"source": "real"}}}) == (
        "degraded (our damage, real hand)", "clean (real line, flattened)")
    assert plots._pair_labels({}) == ("degraded input", "clean (ground truth)")
