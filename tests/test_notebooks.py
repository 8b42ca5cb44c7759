"""Notebooks 01-03 run headlessly in the smoke profile (papermill), as a user would run them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

# each test runs a notebook end to end (kernel, training, evaluation): not in `make test-fast`
pytestmark = pytest.mark.e2e

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


@pytest.fixture
def recognizers(smoke_recognizer, smoke_reader) -> list[str]:
    """The run's shared smoke recognizers: pretraining them (conftest) is not what a notebook
    test checks, and each kernel would otherwise pretrain both again."""
    return [f"recognizer.checkpoint={smoke_recognizer}", f"eval.reader={smoke_reader}"]


def execute(name: str, tmp_path: Path, smoke_dataset: Path, recognizers: list[str], **params) -> dict:
    import papermill as pm  # only here: the module is collected by `make test-fast` too

    runs, ledger = tmp_path / "runs", tmp_path / "ledger"
    params.setdefault("profile", "smoke")
    params["data_root"] = str(smoke_dataset.parent)
    params["overrides"] = [f"runs_dir={runs}", f"eval.ledger_dir={ledger}", "tracking.enabled=false", *recognizers]
    out = tmp_path / f"{name}.out.ipynb"
    pm.execute_notebook(str(NOTEBOOKS / f"{name}.ipynb"), str(out), parameters=params,
                        cwd=str(NOTEBOOKS), progress_bar=False, kernel_name="python3")
    entries = {p.stem: json.loads(p.read_text()) for p in (ledger / "smoke").glob("*.json")}
    outputs = [o for c in json.loads(out.read_text())["cells"] for o in c.get("outputs", [])]
    images = sum("image/png" in o.get("data", {}) for o in outputs)
    streams = ["".join(o.get("text", "")) for o in outputs if o.get("output_type") == "stream"]
    # progress bars refresh slowly in a kernel (tests/test_reuse.py checks the mechanism)
    assert sum(map(len, streams)) < 60_000, sum(map(len, streams))
    assert not any("collapsed (all-white) — the failure" in t for t in streams), "no false collapse warning"
    first = next(t for t in streams if "profile:" in t)
    return {"entries": entries, "out": out, "images": images, "plan": first}


def test_notebook_01_baseline_smoke(tmp_path, smoke_dataset, recognizers):
    res = execute("01_baseline_souibgui", tmp_path, smoke_dataset, recognizers)
    assert set(res["entries"]) == {"baseline_cgan", "baseline_s1", "baseline_s2"}
    s1 = res["entries"]["baseline_s1"]
    assert s1["profile"] == "smoke" and s1["mlflow_run_id"] == ""  # tracking off in tests
    assert s1["metrics"]["psnr"]["n"] == len(s1["per_line"]["psnr"]) > 0
    assert res["images"] == 2  # training curves and the qualitative grid, drawn as pictures
    # the first output says what the notebook chose and will do
    assert "profile: smoke (given)" in res["plan"]
    assert "train  baseline_cgan: no ledger entry yet" in res["plan"] and "estimate:" in res["plan"]


def test_notebook_02_annealing_smoke(tmp_path, smoke_dataset, recognizers):
    res = execute("02_ctc_annealing", tmp_path, smoke_dataset, recognizers, schedule="linear", warmup=2, ramp=2)
    entry = res["entries"]["anneal_linear"]
    weights = [r["train/ctc_weight"] for r in entry["history"] if "train/ctc_weight" in r]
    assert weights and weights[0] == 0.0  # still in warm-up at the first recorded step
    assert res["images"] == 2


def test_notebook_03_feature_loss_accepts_weight(tmp_path, smoke_dataset, recognizers):
    res = execute("03_feature_loss", tmp_path, smoke_dataset, recognizers, weight=5, sweep_weights=[0.0, 5.0],
                  sweep_taps=["cnn1"])
    entries = res["entries"]
    assert {"feature_w5_cnn_last", "feature_w0_cnn_last", "feature_w5_cnn1", "baseline_s1"} <= set(entries)
    assert entries["feature_w5_cnn_last"]["config"]["train"]["feature_loss"]["weight"] == 5.0
    assert entries["feature_w5_cnn_last"]["config"]["train"]["ctc"]["weight"] == 0.0
    assert res["images"] == 3  # weight sweep, tap sweep, samples next to the baseline
