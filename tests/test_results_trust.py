"""Results a reviewer can trust: recipes that load without idle settings, the notes' schedules,
seeds averaged with a test over seeds, dirty paper entries refused, per-profile output folders."""

from __future__ import annotations

import collections
import copy

import pytest

from docrestore import config as C
from docrestore.study import lines as P
from docrestore.evaluation import ledger as L
from docrestore.figures import entries as E
from docrestore.figures import paper, tables
from docrestore.losses import CTCWeightSchedule


@pytest.mark.parametrize("profile", ["smoke", "quick", "full"])
def test_every_paper_recipe_loads_with_no_idle_setting(profile):
    for exp, seed in P.paper_experiments(profile, seeds=True):
        cfg = P.make_config(exp, profile, seed)  # an idle explicit setting would raise ConfigError
        assert cfg.train.ctc.reduction == "sum"  # the paper's lambda is ERB's lambda
        set_by_recipe = {o.split("=", 1)[0] for o in exp.overrides}
        assert not [k for k, _ in C.no_effect(cfg) if k in set_by_recipe], exp.name


def test_quick_plan_seeds_every_arm_as_the_paper_needs():
    # The plan is the one place seeds are set: `make paper-figures` counts as missing what it would make.
    pairs = P.paper_experiments("quick", seeds=True)
    names = [P.entry_name(e, s) for e, s in pairs]
    assert len(names) == len(set(names))
    seeds = collections.Counter(e.name for e, _ in pairs)
    main = ("baseline_cgan", "baseline_s1", "baseline_s2", "feature_w5_cnn_last", "dual_modal_w0", "dual_modal_w5")
    assert all(seeds[a] >= 5 for a in main), seeds
    # every ablation arm with 3 or more, but the w=0 control: the cGAN's config, one seed
    assert {a: n for a, n in seeds.items() if n < 3} == {"feature_w0_cnn_last": 1}
    w0, cgan = (C.to_dict(P.make_config(e, "quick")) for e in (P.feature_loss(0.0), P.baseline("cgan")))
    assert {**w0, "desc": ""} == {**cgan, "desc": ""}  # the same settings under another name


@pytest.mark.parametrize("profile", ["quick", "full"])
def test_the_paper_plan_makes_exactly_the_papers_arms(profile):
    made = {e.name for e, _ in P.plan_experiments(C.CONFIG_DIR / "experiments" / f"paper_{profile}.yaml")}
    assert made == {e.name for e in P.paper_arms(profile)}


def test_a_jobs_experiments_are_what_its_notebook_trains(monkeypatch):
    # job_experiments reads the arms off the same lists the run_* calls build: record them.
    seen: list[str] = []
    monkeypatch.setattr(P, "announce_plan", lambda exps, *a, **k: seen.extend(e.name for e in exps))
    monkeypatch.setattr(P, "run_or_reuse", lambda e, *a, **k: {"experiment": e.name})
    P.run_feature_loss("quick", 5.0, "cnn_last", sweep_weights=[1.0], sweep_taps=["cnn2"],
                       overrides=["train.pixel_loss=l1"])
    params = {"weight": 5.0, "tap": "cnn_last", "distance": "mse", "discriminator": "patch",
              "sweep_weights": [1.0], "sweep_taps": ["cnn2"], "overrides": ["train.pixel_loss=l1"]}
    assert [e.name for e in P.job_experiments("notebooks/03_feature_loss.ipynb", params)][:-1] == seen
    seen.clear()
    P.run_annealing("quick", ["linear", "notes_switch_clamp"])
    params = {"profile": "quick", "schedule": "linear", "target_weight": 5.0, "warmup": None, "ramp": None}
    assert [e.name for e in P.job_experiments("02_ctc_annealing.ipynb", params)] == seen[:1]


def test_notes_ramp_is_plus_one_per_epoch_after_ten_epochs():
    total = 400  # the full profile trains 40 epochs: one notes epoch = 10 steps here
    ramp, switch, switch_clamp, const = P.notes_arms(total)
    assert P.make_config(switch, "quick").train.ctc.clip_mode == "rescale"  # the CTC passes its gradient
    clamp = P.make_config(switch_clamp, "quick").train.ctc
    assert clamp.clip_mode == "clamp" and clamp.warmup == P.make_config(switch, "quick").train.ctc.warmup
    sched = CTCWeightSchedule(P.make_config(ramp, "quick").train.ctc)
    e = P.notes_epoch(total)
    assert e == pytest.approx(total / C.load_config(profile="full").train.epochs)
    assert [sched.weight(round(k * e)) for k in (0, 9, 10, 11, 15, 19, 25)] == [0, 0, 1, 2, 6, 10, 10]
    sw = CTCWeightSchedule(P.make_config(switch, "quick").train.ctc)
    assert sw.weight(round(3 * e) - 1) == 0 and sw.weight(round(3 * e)) == 10
    assert CTCWeightSchedule(P.make_config(const, "quick").train.ctc).weight(0) == 10


def _entry(name, seed, cer, psnr=20.0):
    metrics = {m: {"mean": v, "lo": v, "hi": v, "n": 2} for m, v in
               {"psnr": psnr, "ssim": 0.8, "cer": cer, "wer": 0.5, "cer_loss_reader": cer,
                "wer_loss_reader": 0.5}.items()}
    return {"experiment": name + (f"_seed{seed}" if seed else ""), "seed": seed, "group": "baseline",
            "method": name, "metrics": metrics, "line_ids": ["a", "b"],
            "per_line": {m: [metrics[m]["mean"]] * 2 for m in metrics}, "val_reader": {"cer": cer}}


def test_seeds_are_averaged_into_one_row_with_a_test_over_seeds():
    es = [_entry("arm", s, c) for s, c in ((0, 0.30), (1, 0.34), (2, 0.32))]
    es += [_entry("base", s, c) for s, c in ((0, 0.50), (1, 0.52), (2, 0.55))]
    es += [_entry("single", 0, 0.40)]
    merged = {e["experiment"]: e for e in E.merge_seeds(es)}
    assert set(merged) == {"arm", "base", "single"}
    arm = merged["arm"]
    assert arm["metrics"]["cer"]["mean"] == pytest.approx(0.32)
    assert arm["metrics"]["cer"]["sd"] == pytest.approx(0.02)
    assert arm["seeds"] == [0, 1, 2] and E.n_seeds(arm) == 3
    assert arm["val_reader"]["cer"] == pytest.approx(0.32)
    p = tables.seed_test(arm, merged["base"])
    assert p is not None and p < 0.01  # Welch's t over 3 vs 3 seed means
    assert tables.seed_test(merged["single"], merged["base"]) is None
    row = tables._entry_row(arm, tables.MAIN_METRICS, merged["base"])
    assert row.label.endswith("(3 seeds)") and row.interval == "pm" and row.p.endswith("$^{t}$")


def test_a_paper_entry_from_a_dirty_tree_is_refused_unless_allowed(tmp_path):
    dirty = {"commit": "a" * 40, "dirty": True}
    with pytest.raises(L.LedgerError, match="eval.allow_dirty"):
        L.check_clean_tree("quick", "paper/results", False, dirty)
    L.check_clean_tree("quick", "paper/results", True, dirty)  # allowed: marked instead
    L.check_clean_tree("smoke", "paper/results", False, dirty)  # smoke is never the paper
    L.check_clean_tree("quick", tmp_path, False, dirty)  # another ledger folder
    L.check_clean_tree("quick", "paper/results", False, {"commit": "a" * 40, "dirty": False})


def test_a_profile_never_writes_over_another_profiles_figures(tmp_path):
    fig, tab = paper.profile_dirs(paper.FIGURES_DIR, paper.TABLES_DIR, "quick")
    assert fig == C.PROJECT_ROOT / "paper" / "figures" / "quick" and tab.name == "quick"
    full, _ = paper.profile_dirs("paper/figures", "paper/tables", "full")
    assert full.name == "full"
    smoke, smoke_tab = paper.profile_dirs("paper/figures", "paper/tables", "smoke")
    assert C.PROJECT_ROOT / "paper" not in smoke.parents and C.PROJECT_ROOT / "paper" not in smoke_tab.parents
    assert paper.profile_dirs(tmp_path / "f", tmp_path / "t", "smoke") == (tmp_path / "f", tmp_path / "t")


def test_entries_chosen_by_the_held_out_readers_validation_cer_only():
    a, b = _entry("a", 0, 0.2), _entry("b", 0, 0.1)
    a["metrics"]["cer"]["mean"], b["metrics"]["cer"]["mean"] = 0.9, 0.05  # test CER must not matter
    a["val_reader"]["cer"], b["val_reader"]["cer"] = 0.1, 0.3
    chosen, how = E.representative([a, b])
    assert chosen is a and "held-out reader" in how
    old = copy.deepcopy(b)
    del old["val_reader"]
    old["history"] = [{"step": 1, "val/cer": 0.0}]  # the loss recognizer's curve is never used
    chosen, how = E.representative([old, b])
    assert chosen is b


def test_every_number_in_main_tex_is_a_ledger_macro_the_pipeline_writes():
    import re

    tex = (C.PROJECT_ROOT / "paper" / "main.tex").read_text(encoding="utf-8")
    body = tex[tex.index(r"\begin{document}"):]
    keys = re.findall(r"\\res\{([^}]*)\}\{([^}]*)\}", body)
    assert keys
    known = {e.name for e in P.paper_experiments("quick")} | {"all", "clean", "main"}
    for exp, key in keys:
        assert exp in known or exp.startswith("ref-"), exp
    # the text's own words hold no measured number (percentages and dB come from \res)
    prose = re.sub(r"\\res\{[^}]*\}\{[^}]*\}", "", body)
    assert not re.search(r"\d+\.\d+\s*(\\,)?(dB|\\%)", prose)


def test_dirty_means_the_code_not_the_ledger(tmp_path):
    """A ledger entry or figure written by a parallel job must not mark the next job's result as
    made from uncommitted code (a whole plan would then be refused after its first job)."""
    import subprocess

    from docrestore import runs as R

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "src").mkdir()
    (tmp_path / "paper").mkdir()
    (tmp_path / "src" / "m.py").write_text("x = 1\n")
    (tmp_path / "paper" / "entry.json").write_text("{}\n")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    assert R.git_info(tmp_path)["dirty"] is False
    (tmp_path / "paper" / "entry.json").write_text('{"psnr": 1}\n')
    assert R.git_info(tmp_path)["dirty"] is False
    (tmp_path / "src" / "m.py").write_text("x = 2\n")
    assert R.git_info(tmp_path)["dirty"] is True


def test_a_group_is_shown_by_its_seeded_arm_when_it_has_one():
    single = _entry("single", 0, 0.2)
    single["val_reader"]["cer"] = 0.05  # better on validation, but one seed: no spread to show
    seeded = E.merge_seeds([_entry("seeded", s, c) for s, c in ((0, 0.30), (1, 0.34), (2, 0.32))])[0]
    chosen, how = E.representative([single, seeded])
    assert chosen is seeded and "held-out reader" in how
    assert "most seeds" in E.SELECTION


def test_with_baseline_keeps_the_feature_arms_pixel_loss_off_erb_s1(monkeypatch):
    seen = []
    monkeypatch.setattr(P, "announce_plan", lambda *a, **k: None)
    monkeypatch.setattr(P, "run_or_reuse", lambda exp, profile, seed, overrides, reuse:
                        seen.append((exp.name, list(overrides))) or {"experiment": exp.name})
    out = P.with_baseline([{"experiment": "feature"}], "quick", 0,
                          overrides=["train.pixel_loss=l1", "train.max_steps=7"])
    assert [e["experiment"] for e in out] == ["baseline_s1", "feature"]
    assert seen == [("baseline_s1", ["train.max_steps=7"])]
    assert P.split_pixel_loss("train.pixel_loss=l1 data.root=x") == ("l1", ["data.root=x"])


def test_study_arms_count_the_schedule_in_epochs():
    """The annealing study's arms: warm-up and ramp in epochs, each mapped to the profile's steps."""
    arms = {e.name: e for e in P.study_arms(warmup_epochs=3, ramp_epochs=10)}
    assert set(arms) == set(P.STUDY) and len(arms) == 7
    per_epoch = 250  # quick: 2000 training lines, batch 8
    step = CTCWeightSchedule(P.make_config(arms["study_step"], "quick").train.ctc, per_epoch)
    assert (step.warmup, step.ramp) == (750, 2500)
    assert [step.weight(750 + k * per_epoch) for k in (0, 1, 9, 10)] == [1, 2, 10, 10]  # +1 per epoch
    assert P.make_config(arms["study_switch_clamp"], "quick").train.ctc.clip_mode == "clamp"
    const = CTCWeightSchedule(P.make_config(arms["study_constant"], "quick").train.ctc, per_epoch)
    assert const.weight(0) == 10
