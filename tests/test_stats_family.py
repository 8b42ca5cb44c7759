"""Seed-level statistics: t intervals over training seeds, Holm over a declared family of
comparisons, and arms that are one result counted twice (same settings, or a setting with no
effect), as the paper's tables use them."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from docrestore.evaluation import stats
from docrestore.figures import entries as E
from docrestore.figures import tables


def _entry(name, seed, cer, group="baseline", config=None, per_line=None):
    metrics = {m: {"mean": v, "lo": v, "hi": v, "n": 3} for m, v in
               {"psnr": 20.0 - cer, "ssim": 0.8, "cer": cer, "wer": 0.5, "cer_loss_reader": cer,
                "wer_loss_reader": 0.5}.items()}
    cfg = {"seed": seed, "desc": name, "train": {"ctc": {"schedule": "constant", "weight": 1.0}}}
    for k, v in (config or {}).items():
        cfg["train"]["ctc"][k] = v
    lines = per_line or [cer - 0.01, cer, cer + 0.01]
    return {"experiment": name + (f"_seed{seed}" if seed else ""), "seed": seed, "group": group,
            "method": name, "metrics": metrics, "line_ids": ["a", "b", "c"], "data_hash": "h",
            "per_line": {m: list(lines) for m in metrics}, "val_reader": {"cer": cer}, "config": cfg}


# --------------------------------------------------------------------------- intervals
def test_seed_interval_is_the_student_t_interval_of_the_seed_means():
    vals = [0.30, 0.34, 0.32, 0.35, 0.29]
    got = stats.seed_interval(vals)
    half = sps.t.ppf(0.975, 4) * np.std(vals, ddof=1) / math.sqrt(5)
    assert got["mean"] == pytest.approx(np.mean(vals))
    assert (got["lo"], got["hi"]) == pytest.approx((np.mean(vals) - half, np.mean(vals) + half))
    assert got["n_seeds"] == 5 and got["interval"] == "t over seeds"
    one = stats.seed_interval([0.3])
    assert one["mean"] == 0.3 and math.isnan(one["lo"]) and math.isnan(one["half_width"])
    with pytest.raises(ValueError, match="confidence"):
        stats.seed_interval(vals, confidence=95)


def test_seed_interval_covers_the_true_mean_about_95_percent_of_the_time():
    rng = np.random.default_rng(0)
    hits = 0
    for _ in range(2000):
        v = stats.seed_interval(rng.normal(1.0, 0.2, size=3))
        hits += v["lo"] <= 1.0 <= v["hi"]
    assert 0.93 <= hits / 2000 <= 0.97


def test_merged_seeds_carry_the_t_interval_and_tables_and_figures_say_so():
    es = [_entry("arm", s, c) for s, c in ((0, 0.30), (1, 0.34), (2, 0.32))]
    arm = E.merge_seeds(es)[0]
    t = stats.seed_interval([0.30, 0.34, 0.32])
    assert (arm["metrics"]["cer"]["lo"], arm["metrics"]["cer"]["hi"]) == pytest.approx((t["lo"], t["hi"]))
    assert arm["metrics"]["cer"]["sd"] == pytest.approx(0.02)
    assert "t interval over 3 training seeds" in E.interval_description([arm])
    single = _entry("single", 0, 0.4)
    both = E.interval_description([arm, single])
    assert "t interval over 3 training seeds" in both and "bootstrap interval over test lines" in both


# -------------------------------------------------------------------------------- Holm
def test_holm_adjusts_step_down_and_stays_monotone():
    adj = stats.holm({"a": 0.01, "b": 0.04, "c": 0.03, "d": 0.005})
    assert adj == pytest.approx({"a": 0.03, "b": 0.06, "c": 0.06, "d": 0.02})
    assert stats.holm({"a": 0.5, "b": 0.9}) == {"a": 1.0, "b": 1.0}


def test_an_untestable_comparison_still_counts_in_the_family():
    adj = stats.holm({"a": 0.01, "b": None})
    assert adj == {"a": pytest.approx(0.02), "b": None}  # m = 2, not 1
    with pytest.raises(ValueError, match="lies in"):
        stats.holm({"a": 1.5})


def test_welch_over_seeds_needs_two_seeds_per_arm():
    r = stats.welch_over_seeds([0.30, 0.34, 0.32], [0.50, 0.52, 0.55])
    assert r["p_value"] == pytest.approx(sps.ttest_ind([0.30, 0.34, 0.32], [0.50, 0.52, 0.55],
                                                       equal_var=False).pvalue)
    assert stats.welch_over_seeds([1, 1], [1, 1])["p_value"] == 1.0
    with pytest.raises(ValueError, match="two seeds"):
        stats.welch_over_seeds([0.3], [0.5, 0.6])


# ----------------------------------------------------------------------- identical arms
def test_identical_results_under_different_settings_are_flagged_as_no_effect():
    a = _entry("notes_switch", 0, 0.2, group="annealing", config={"schedule": "switch", "warmup": 22})
    b = _entry("notes_constant", 0, 0.2, group="annealing")
    c = _entry("notes_ramp", 0, 0.25, group="annealing", config={"schedule": "linear"})
    found = E.identical_arms([a, b, c])
    assert found == [{"kind": "no effect", "experiments": ["notes_constant", "notes_switch"],
                      "differences": ["train.ctc.schedule", "train.ctc.warmup"], "seeds": [0]}]
    note = E.identical_note([a, b, c])
    assert "notes_constant" in note and "train.ctc.schedule" in note and "no effect" in note


def test_identical_settings_are_one_arm_even_across_a_seeded_merge():
    seeded = E.merge_seeds([_entry("baseline_cgan", s, c) for s, c in ((0, 0.3), (1, 0.32), (2, 0.31))])[0]
    twin = _entry("feature_w0", 0, 0.3)
    twin["config"]["desc"] = "feature_w0"  # names and run folders are not settings
    found = E.identical_arms([seeded, twin])
    assert [(c["kind"], c["experiments"]) for c in found] == [("same settings", ["baseline_cgan", "feature_w0"])]
    other = _entry("other", 0, 0.3, config={"weight": 2.0}, per_line=[0.1, 0.3, 0.5])
    assert E.identical_arms([seeded, other]) == []  # equal mean, different lines: a real result


# ----------------------------------------------------------------------- tables, family
def _seeded(name, cers, group="baseline", **cfg):
    return E.merge_seeds([_entry(name, s, c, group=group, config=cfg) for s, c in enumerate(cers)])[0]


def test_family_is_holm_adjusted_and_counts_untestable_and_twin_arms_rightly():
    base = _seeded("base", [0.50, 0.52, 0.55])
    strong = _seeded("strong", [0.30, 0.34, 0.32], group="feature_weight", weight=2.0)
    weak = _seeded("weak", [0.49, 0.53, 0.51], group="feature_weight", weight=3.0)
    single = _entry("single", 0, 0.45, group="annealing", config={"weight": 4.0})
    twin = {**_entry("twin", 0, 0.45, group="annealing", config={"weight": 5.0}), "experiment": "twin"}
    res = tables.family_tests(tables.Family("main", base, [base, strong, weak, single, twin]))
    raw = {n: tables.seed_test(a, base) for n, a in (("strong", strong), ("weak", weak))}
    # the family: strong, weak, single (untested over seeds: counts as p = 1); the twin once
    expected = stats.holm({**raw, "single": None})
    assert res["strong"]["p_holm"] == pytest.approx(expected["strong"])
    assert res["weak"]["p_holm"] == pytest.approx(expected["weak"])
    assert res["strong"]["p_holm"] == pytest.approx(min(1.0, 3 * raw["strong"]))
    assert res["single"]["test"] == "wilcoxon-within-seed" and res["single"]["p_holm"] is None
    assert res["twin"]["test"] is None and "single" in res["twin"]["why"]
    assert res["base"]["why"] == "reference"
    cells = {n: tables.p_cell(r) for n, r in res.items()}
    assert cells["strong"].endswith("$^{t}$") and cells["single"].endswith("$^{w}$")
    assert cells["twin"] == r"$\equiv$" and cells["base"] == "(ref.)"


def test_tables_name_the_interval_the_family_and_the_identical_arms():
    base = _seeded("base", [0.50, 0.52, 0.55])
    a = _entry("anneal_switch", 0, 0.45, group="annealing", config={"schedule": "switch", "warmup": 3, "weight": 5.0})
    b = _entry("anneal_constant", 0, 0.45, group="annealing", config={"weight": 5.0})
    text = tables.annealing_table([base, a, b])
    assert "Student-$t$ interval over seeds" in text
    assert "Holm-adjusted over the family of the 1 comparison in" in text  # the twin counted once
    assert "anneal\\_constant = anneal\\_switch" in text and "no effect" in text
    assert r"$\equiv$" in text
    macros = tables.macros([base, a, b])
    assert r"res@all@distinct\endcsname{2}" in macros and r"res@all@identical\endcsname{1}" in macros
