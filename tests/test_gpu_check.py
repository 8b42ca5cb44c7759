"""`make gpu-check` runs end to end on the CPU at smoke sizes (the GPU run is the same script)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from docrestore.study import estimate as E
from docrestore.training import throughput as T

ROOT = Path(__file__).resolve().parents[1]


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.e2e
def test_gpu_check_on_the_cpu_writes_a_report(tmp_path, capsys):
    assert load("gpu_check").main(["--device", "cpu", "--out", str(tmp_path / "res"),
                                   "--work", str(tmp_path / "work")]) == 0
    (report_path,) = (tmp_path / "res").glob("gpu-check-cpu-smoke-*.json")
    report = json.loads(report_path.read_text())
    assert report["kind"] == "CPU" and report["profile"] == "smoke"
    assert {r["arm"] for r in report["train"]} == set(T.ARMS)
    assert all(r["lines_per_s"] > 0 for r in report["train"])
    assert report["restore"]["seconds"] > 0
    # the bf16 path (fp32 head) tracks fp32 over three steps
    assert all(v < 0.05 for v in report["bf16_vs_fp32"]["max_rel_diff"].values())
    assert report["ctc"]["applicable"] is False
    hours = report["paper_full_projection"]["hours"]
    assert hours["1"] == pytest.approx(2 * hours["2"]) == pytest.approx(4 * hours["4"])
    assert "not a GPU figure" in report["paper_full_projection"]["rates_from"]
    assert "goals_met" not in report  # goals are judged on a GPU at the full size only
    out = capsys.readouterr().out
    assert "paper_full.yaml on 4 GPU(s)" in out
    # the training rates file a plan's dry run reads
    found = T.newest_results("smoke", tmp_path / "res")
    assert found is not None and set(found[1]) == set(T.ARMS)


def test_plan_estimate_reads_the_newest_benchmark(tmp_path, monkeypatch):
    monkeypatch.setattr(T, "RESULTS_DIR", str(tmp_path))
    assert "no training benchmark" in E.plan_estimate("smoke", 3, 1)[0]
    rates = {a: 100.0 + 10 * i for i, a in enumerate(T.ARMS)}
    T.write_results([{"arm": a, "lines_per_s": r, "kind": "CPU", "profile": "smoke"} for a, r in rates.items()],
                    tag="")
    hours, steps = E.estimate_hours("smoke", 3, rates)
    assert hours > 0 and steps == 4  # the smoke profile's max_steps
    (line,) = E.plan_estimate("smoke", 3, 2)
    assert f"{hours:.1f} h of training steps" in line and f"~{hours / 2:.1f} h with 2 job(s)" in line


def test_arm_of_reads_the_resolved_config():
    from docrestore import config as C
    from docrestore.study import lines as L

    def arm(*overrides):
        return E.arm_of(C.load_config(profile="smoke", overrides=list(overrides)))

    assert arm("discriminator.name=dual_modal", "train.feature_loss.weight=5.0") == "dual_modal"
    assert arm("train.scenario=frozen", "train.ctc.weight=0", "train.feature_loss.weight=5.0") == "feature_loss"
    assert arm("train.feature_loss.weight=0.0", "train.ctc.weight=0") == "baseline_s1"
    assert arm("train.ctc.schedule=balanced") == "balanced"
    assert arm("train.ctc.schedule=cosine") == "annealing"
    assert arm("train.scenario=S2") == "baseline_s2"
    # every paper arm is timed as one of the benchmarked kinds of step
    assert {E.arm_of(L.make_config(e, "smoke")) for e in L.paper_experiments("smoke")} == set(T.ARMS)
