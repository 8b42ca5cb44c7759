"""Families of comparisons declared in the plan before it runs: the plan's `comparisons` key is
checked strictly, every declared name is an experiment the plan makes, and the paper's tables
apply Holm over exactly the declared family (not over the rows they happen to show)."""

from __future__ import annotations

import pytest
import yaml

from docrestore.evaluation import stats
from docrestore.figures import entries as E
from docrestore.figures import tables
from docrestore.scheduler import plan as P
from docrestore.study.lines import paper_experiments, study_arms

from test_stats_family import _entry, _seeded

NOTEBOOK = "notebooks/01_baseline_souibgui.ipynb"


def _plan(tmp_path, comparisons) -> P.Plan:
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump({"name": "p", "notebooks": [{"notebook": NOTEBOOK}],
                                    "comparisons": comparisons}))
    return P.load_plan(path)


def test_a_plan_declares_its_families_with_best_of_members(tmp_path):
    plan = _plan(tmp_path, {"main_comparison": {"reference": "base", "metric": "wer",
                                                "arms": ["a", {"best_of": ["b1", "b2"]}]}})
    fam = plan.comparisons["main_comparison"]
    assert fam.reference == "base" and fam.metric == "wer" and fam.plan == "plan.yaml"
    assert fam.arms == ("a", P.BestOf(("b1", "b2")))


@pytest.mark.parametrize("comparisons, message", [
    ({"m": {"arms": ["a"]}}, "'reference'"),
    ({"m": {"reference": "base", "arms": []}}, "non-empty list"),
    ({"m": {"reference": "base", "arms": ["a"], "metrc": "cer"}}, "Did you mean 'metric'"),
    ({"m": {"reference": "base", "arms": ["a"], "metric": "bleu"}}, "'metric' must be one of"),
    ({"m": {"reference": "base", "arms": ["a", {"best_of": ["a", "b"]}]}}, "a appear"),
    ({"m": {"reference": "base", "arms": ["base"]}}, "compared with itself"),
    ({"m": {"reference": "base", "arms": [{"best_of": ["a"]}]}}, "two or more names"),
    (["m"], "must be a mapping"),
])
def test_a_bad_declaration_is_refused_naming_it(tmp_path, comparisons, message):
    with pytest.raises(P.PlanError, match=message):
        _plan(tmp_path, comparisons)


def _names(member) -> list[str]:
    return list(member.candidates) if isinstance(member, P.BestOf) else [member]


@pytest.mark.parametrize("plan_name, made", [
    ("paper_quick", lambda: {e.name for e in paper_experiments("quick")}),
    ("paper_full", lambda: {e.name for e in paper_experiments("full")}),
    ("ctc_study", lambda: {e.name for e in study_arms()}),
    ("real_lines_quick", lambda: {e.name for e in paper_experiments("quick")}),
])
def test_every_declared_name_is_an_experiment_the_plan_makes(plan_name, made):
    plan = P.load_plan(plan_name)
    assert plan.comparisons, f"{plan_name} declares no family of comparisons"
    names = made()
    for fam in plan.comparisons.values():
        declared = [fam.reference] + [n for a in fam.arms for n in _names(a)]
        assert set(declared) <= names, (fam.name, sorted(set(declared) - names))
    if plan_name != "ctc_study":
        assert set(plan.comparisons) <= set(tables.TABLES)  # each family is one table's


def test_holm_runs_over_the_declared_family_not_over_the_rows_shown():
    base = _seeded("baseline_s1", [0.50, 0.52, 0.55])
    strong = _seeded("strong", [0.30, 0.34, 0.32], group="feature_weight", weight=2.0)
    weak = _seeded("weak", [0.49, 0.53, 0.51], group="feature_weight", weight=3.0)
    other = _seeded("other", [0.40, 0.42, 0.41], group="feature_weight", weight=4.0)
    entries = [base, strong, weak, other]
    fam = P.Comparison("ablation_feature_weight", "baseline_s1", ("strong", "weak", "not_run"), plan="x.yaml")
    got = tables.family_tests(tables.declared_family(fam, entries))
    raw = {n: tables.seed_test(a, base) for n, a in (("strong", strong), ("weak", weak))}
    expected = stats.holm({**raw, "not_run": None})  # m = 3: the arm not run still counts
    assert got["strong"]["p_holm"] == pytest.approx(expected["strong"])
    assert got["strong"]["p_holm"] == pytest.approx(min(1.0, 3 * raw["strong"]))
    assert got["not_run"]["test"] is None and "not in the ledger" in got["not_run"]["why"]
    assert tables.family_size(got) == 3 and "other" not in got
    # the table shows every arm of the group; `other` is outside the declared family: not tested
    text = tables.feature_weight_table(entries, families={fam.name: fam})
    assert "family of the 3 comparisons declared in the plan x.yaml" in text
    assert "1 declared arm not in the ledger counts as untested" in text
    other_rows = [l for l in text.splitlines() if l.startswith("% experiment=other ")]
    assert other_rows and "not in the family of comparisons declared in the plan" in other_rows[0]
    # without a declaration the table's own rows are the family (m = 3: strong, weak, other)
    plain = tables.feature_weight_table(entries)
    assert "family of the 3 comparisons in this table (no family declared in the plan" in plain


def test_a_best_of_member_is_chosen_by_validation_cer_not_test_cer():
    base = _seeded("baseline_s1", [0.50, 0.52, 0.55])
    a = _entry("anneal_a", 0, 0.20, group="annealing", config={"schedule": "linear"})
    b = _entry("anneal_b", 0, 0.40, group="annealing", config={"schedule": "cosine"})
    a["val_reader"], b["val_reader"] = {"cer": 0.9}, {"cer": 0.1}  # b is better on validation only
    fam = P.Comparison("main_comparison", "baseline_s1", (P.BestOf(("anneal_a", "anneal_b")),))
    family = tables.declared_family(fam, [base, a, b])
    assert [e["experiment"] for e in family.arms] == ["anneal_b"]
    got = tables.family_tests(family)
    assert "lowest validation CER" in got["anneal_b"]["chosen"]


def test_a_declared_reference_missing_from_the_ledger_skips_the_table_saying_why():
    base = _seeded("baseline_s1", [0.50, 0.52, 0.55])
    arm = _entry("dual", 0, 0.3, group="dual_modal")
    fam = P.Comparison("ablation_dual_modal", "baseline_s9", ("dual",), plan="x.yaml")
    with pytest.raises(E.MissingResults, match="baseline_s9"):
        tables.dual_modal_table([base, arm], families={fam.name: fam})


def test_a_family_no_paper_table_is_named_after_gets_its_own_table(tmp_path):
    from docrestore.figures import paper

    base = _seeded("study_constant", [0.50, 0.52, 0.55], group="annealing")
    arms = [_seeded(n, c, group="annealing", schedule=n) for n, c in
            (("study_linear", [0.30, 0.34, 0.32]), ("study_switch", [0.49, 0.53, 0.51]))]
    fam = P.Comparison("ctc_study", "study_constant", ("study_linear", "study_switch", "study_step"),
                       plan="ctc_study.yaml")
    text = tables.family_table([base, *arms], fam)
    assert "family of the 3 comparisons declared in the plan ctc\\_study.yaml" in text
    raw = tables.seed_test(arms[0], base)
    assert tables.format_p(min(1.0, 3 * raw)) + "$^{t}$" in text  # Holm over 3, the arm not run counted
    plan = tmp_path / "study.yaml"
    plan.write_text(yaml.safe_dump({"name": "s", "notebooks": [{"notebook": NOTEBOOK}], "comparisons": {
        "ctc_study": {"reference": "study_constant", "arms": ["study_linear", "study_switch"]}}}))
    fams, path = paper.declared_comparisons(plan, "quick")
    assert set(fams) == {"ctc_study"} and path.endswith("study.yaml")
    assert paper.declared_comparisons(None, "quick") == ({}, "")


def test_auto_takes_the_paper_plan_only_for_the_profiles_own_ledger(tmp_path):
    from docrestore import config as C
    from docrestore.figures import paper

    own = C.load_config(profile="quick").eval.ledger_dir
    fams, path = paper.declared_comparisons("auto", "quick", own)
    assert "main_comparison" in fams and path.endswith("paper_quick.yaml")
    assert paper.declared_comparisons("auto", "quick", tmp_path / "real_lines") == ({}, "")
    assert paper.declared_comparisons("auto", "smoke", tmp_path) == ({}, "")  # no paper plan for smoke
