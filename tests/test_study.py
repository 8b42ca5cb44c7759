"""The study's one benchmark abstraction (lines and pages) and the helpers each concept has once."""

from __future__ import annotations

import json

from docrestore import config as C
from docrestore import files as F
from docrestore.study import benchmark as B
from docrestore.study import lines as L
from docrestore.study import pages as P


def _summary(v: float) -> dict:
    return {"mean": v, "lo": v, "hi": v, "n": 3}


def test_project_relative_is_the_inverse_of_resolve_path(tmp_path):
    inside = C.PROJECT_ROOT / "runs" / "x" / "best.pt"
    assert C.project_relative(inside) == "runs/x/best.pt"
    assert C.resolve_path(C.project_relative(inside)) == inside
    assert C.project_relative(tmp_path / "a.pt") == (tmp_path / "a.pt").as_posix()  # outside: unchanged
    assert C.project_relative("runs/x") == "runs/x"  # already relative: unchanged
    assert C.project_relative("") == "" and C.project_relative(None) == ""


def test_total_steps_one_rule_for_the_trainer_and_the_estimates():
    cfg = C.load_config(profile="smoke", overrides=["train.max_steps=0", "train.epochs=3", "train.batch_size=4",
                                                      "data.n_train=10"])
    assert C.total_steps(cfg) == 3 * (10 // 4)
    assert C.total_steps(cfg, n_train=2) == 3  # at least one step an epoch
    cfg.train.max_steps = 7
    assert C.total_steps(cfg) == 7 == C.total_steps(cfg, n_train=1000)


def test_json_state_written_atomically_and_read_back(tmp_path):
    path = tmp_path / "deep" / "status.json"
    F.write_json_atomic(path, {"b": 1, "a": "é"}, sort_keys=True)
    assert json.loads(path.read_text(encoding="utf-8")) == {"a": "é", "b": 1}
    assert list(path.parent.iterdir()) == [path]  # no temporary file left beside it
    assert F.read_json_state(path) == {"a": "é", "b": 1}
    assert F.read_json_state(tmp_path / "missing.json") == {}
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "half.json").write_text('{"a": ')
    assert F.read_json_state(tmp_path / "list.json") == {} == F.read_json_state(tmp_path / "half.json")


def test_parameter_overrides_skip_what_the_profile_decides():
    assert B.parameter_overrides({"train.max_steps": 0, "data.root": None, "pages.test_sets": ("A", "B"),
                                  "pages.train_sets": [], "pages.root": ""}, "x.y=1") == [
        "train.max_steps=0", "pages.test_sets=[A,B]", "x.y=1"]


def test_lines_and_pages_are_two_instances_of_one_benchmark(tmp_path):
    over = [f"eval.ledger_dir={tmp_path}"]
    line_arm, page_arm = L.baseline("S1"), P.page_experiment("cgan", ["TE"])
    for bench, arm, folder in ((L.LINES, line_arm, tmp_path / "smoke"),
                               (P.PAGES, page_arm, tmp_path / "smoke" / "pages")):
        assert bench.folder(tmp_path, "smoke") == folder
        d = bench.decide(arm, "smoke", 1, over, True, {"commit": "abc", "dirty": False})
        assert (d.name, d.train, d.reason) == (f"{arm.name}_seed1", True, "no ledger entry yet")
        # an entry at the benchmark's own path is read (here: other settings, so it trains)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{arm.name}_seed1.json").write_text(json.dumps({"config": {"seed": 5}}))
        d = bench.decide(arm, "smoke", 1, over, True, {"commit": "abc", "dirty": False})
        assert d.train and "other settings" in d.reason
    # the page arm's config carries the page budget
    assert P.make_page_config(page_arm, "smoke", 0, ["pages.max_steps=3"]).train.max_steps == 3


def test_one_table_for_both_benchmarks():
    line = {"method": "ERB S1", "mlflow_run_id": "0123456789", "profile": "smoke",
            "metrics": {k: _summary(0.123456) for k in ("psnr", "ssim", "cer", "wer")},
            "references": {"degraded": {k: _summary(0.5) for k in ("psnr", "ssim", "cer", "wer")}}}
    rows = L.results_table([line]).to_dict("records")
    assert rows[0]["method"] == "degraded (reference)" and rows[1]["cer"] == 0.1235
    assert rows[1]["run"] == "01234567" and rows[1]["profile"] == "smoke"
    page = {"method": "ERB cGAN, page mode", "mlflow_run_id": None, "steps": 9, "train_seconds": 1.5,
            "metrics": {k: _summary(12.3456) for k in P.PAGES.columns},
            "references": {"otsu": {k: _summary(1.0) for k in P.PAGES.columns}}}
    rows = P.results_table([page]).to_dict("records")
    assert rows[0]["method"] == "Otsu (reference)" and rows[1]["fmeasure"] == 12.35
    assert (rows[1]["steps"], rows[1]["train_s"], rows[1]["run"]) == (9, 1.5, "")
