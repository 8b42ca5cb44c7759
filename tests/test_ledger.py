"""The results ledger: validation, atomic round trip, loud failures, labels and sample images."""

from __future__ import annotations

import copy
import datetime as dt
import json

import numpy as np
import pytest
import torch
from PIL import Image

from docrestore import config as C
from docrestore.evaluation import ledger as L


def _summary(mean: float, n: int = 3) -> dict:
    return {"mean": mean, "lo": mean - 0.1, "hi": mean + 0.1, "n": n}


def _metrics() -> dict:
    return {m: _summary(0.5) for m in L.REQUIRED_METRICS}


def _entry(**changes) -> dict:
    entry = {
        "experiment": "erb_s1", "method": "ERB S1", "group": "baselines", "profile": "quick",
        "metrics": _metrics(),
        "per_line": {m: [0.4, 0.5, 0.6] for m in L.REQUIRED_METRICS},
        "references": {r: _metrics() for r in L.REFERENCE_METHODS},
        "samples": [{"id": "test-000001", "text": "Anno 1654",
                     "lines": {"restored": {"pred": "Anno 1664", "cer": 1 / 9,
                                            "image": "quick/samples/erb_s1/test-000001_restored.png"}}}],
        "history": [{"step": 0, "train/loss_g": 2.5}, {"step": 10, "train/loss_g": 1.5}],
        "config": {"profile": "quick"}, "git_commit": "abc123", "git_dirty": False,
        "mlflow_run_id": None, "run_dir": "runs/20250101-000000-train-quick", "device": "cpu (2 threads)",
        "date": "2025-01-01T12:00:00", "data_hash": "deadbeef",
    }
    entry.update(changes)
    return entry


def test_valid_entry_passes():
    entry = _entry()
    assert L.validate_entry(entry) is entry


def test_missing_fields_are_named():
    entry = _entry()
    del entry["data_hash"], entry["git_commit"]
    with pytest.raises(L.LedgerError, match="missing required field") as exc:
        L.validate_entry(entry)
    assert "data_hash" in str(exc.value) and "git_commit" in str(exc.value)


def test_metric_summaries_and_profile_are_checked():
    entry = _entry(profile="medium")
    del entry["metrics"]["cer"]["lo"]
    del entry["references"]["otsu"]["wer"]
    with pytest.raises(L.LedgerError) as exc:
        L.validate_entry(entry)
    msg = str(exc.value)
    assert "'metrics.cer' lacks ['lo']" in msg
    assert "'references.otsu' lacks metric(s) ['wer']" in msg
    assert "'profile' must be one of" in msg


def test_per_line_must_match_the_summaries_and_nonfinite_values_are_named():
    entry = _entry()
    entry["per_line"]["psnr"] = [30.0, 31.0]          # 2 values, but metrics.psnr.n is 3
    entry["history"][1]["train/loss_g"] = float("nan")
    with pytest.raises(L.LedgerError) as exc:
        L.validate_entry(entry)
    msg = str(exc.value)
    assert "'per_line.psnr' has 2 values but 'metrics.psnr.n' is 3" in msg
    assert "history[1].train/loss_g" in msg


def test_round_trip(tmp_path):
    entry = _entry()
    entry["metrics"]["psnr"]["mean"] = np.float32(0.5)   # NumPy numbers are written as plain ones
    path = L.write_entry(entry, tmp_path)
    assert path == tmp_path / "quick" / "erb_s1.json"
    text = path.read_text(encoding="utf-8")
    assert text.startswith('{\n  "config": {')           # sorted keys, indent 2
    assert [p.name for p in path.parent.iterdir()] == ["erb_s1.json"]  # no temporary file left
    assert L.read_ledger(tmp_path) == [_entry()]
    assert L.read_ledger(tmp_path, profile="quick") == [_entry()]
    assert L.read_ledger(tmp_path, profile="full") == []


def test_write_rejects_an_invalid_entry_and_leaves_no_file(tmp_path):
    entry = _entry()
    del entry["samples"]
    with pytest.raises(L.LedgerError, match="samples"):
        L.write_entry(entry, tmp_path)
    assert not (tmp_path / "quick").exists()


def test_invalid_files_in_the_ledger_are_named(tmp_path):
    L.write_entry(_entry(), tmp_path)
    bad = tmp_path / "quick" / "broken.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(L.LedgerError, match="broken.json"):
        L.read_ledger(tmp_path)
    incomplete = _entry(experiment="broken")
    del incomplete["metrics"]
    bad.write_text(json.dumps(incomplete), encoding="utf-8")
    with pytest.raises(L.LedgerError, match=r"broken\.json.*metrics"):
        L.read_ledger(tmp_path)
    bad.write_text(json.dumps(_entry(experiment="other")), encoding="utf-8")  # wrong file name
    with pytest.raises(L.LedgerError, match="belongs at"):
        L.read_ledger(tmp_path)


def test_write_turns_nonfinite_history_points_into_gaps(tmp_path):
    entry = _entry()
    entry["history"][1]["train/loss_g"] = float("nan")   # a skipped non-finite step
    path = L.write_entry(entry, tmp_path)
    assert json.loads(path.read_text())["history"][1] == {"step": 10, "train/loss_g": None}
    entry["metrics"]["psnr"]["mean"] = float("inf")       # anywhere else it is an error
    with pytest.raises(L.LedgerError, match=r"metrics\.psnr\.mean"):
        L.write_entry(entry, tmp_path)


def test_sample_lines_need_an_image_but_pred_and_cer_are_optional():
    entry = _entry()
    entry["samples"][0]["lines"]["clean"] = {"image": "quick/samples/erb_s1/test-000001_clean.png"}
    L.validate_entry(entry)
    entry["samples"][0]["lines"]["degraded"] = {"pred": "x"}
    with pytest.raises(L.LedgerError, match=r"samples\[0\]\.lines\.degraded"):
        L.validate_entry(entry)


def test_missing_ledger_folder_holds_no_entries(tmp_path):
    assert L.read_ledger(tmp_path / "nowhere") == []


def test_find_and_labels():
    entries = [_entry(), _entry(experiment="cgan", method="cGAN", group="ablation", profile="full",
                                device="cuda:0 (NVIDIA H100 80GB HBM3)")]
    assert [e["experiment"] for e in L.find(entries, group="ablation")] == ["cgan"]
    assert L.find(entries, experiment="erb_s1", profile="full") == []
    assert L.entry_label(entries[0]) == "ERB S1 (quick, CPU)"
    assert L.entry_label(entries[1]) == "cGAN"
    assert L.entry_label(_entry(profile="smoke", device="cuda:0 (x)")) == "ERB S1 (smoke, GPU)"


def test_make_entry_fills_provenance():
    base = _entry()
    entry = L.make_entry(
        experiment="erb_s1", method="ERB S1", group="baselines", profile="quick",
        metrics=base["metrics"], per_line=base["per_line"], references=base["references"],
        device=torch.device("cpu"), data_hash="deadbeef", config=C.Config(),
        git={"commit": "abc123", "dirty": True}, run_dir=C.PROJECT_ROOT / "runs" / "x")
    assert entry["git_commit"] == "abc123" and entry["git_dirty"] is True
    assert entry["device"].startswith("cpu")
    assert entry["config"]["eval"]["ssim_window"] == 11
    assert entry["run_dir"] == "runs/x"                  # stored relative to the project
    assert entry["samples"] == [] and entry["history"] == [] and entry["mlflow_run_id"] is None
    assert dt.datetime.fromisoformat(entry["date"])
    with_git = L.make_entry(**{k: copy.deepcopy(base[k]) for k in (
        "experiment", "method", "group", "profile", "metrics", "per_line", "references",
        "device", "data_hash", "config")})
    assert isinstance(with_git["git_commit"], str) and with_git["run_dir"] == ""


def test_save_sample_images(tmp_path):
    img = np.array([[0.0, 0.5], [1.0, 1.2]])             # values beyond [0, 1] are clipped
    paths = L.save_sample_images({"restored": img, "clean": torch.ones(1, 2, 2)}, tmp_path,
                                 "quick", "erb_s1", "test/0001")
    assert paths == {"restored": "quick/samples/erb_s1/test-0001_restored.png",
                     "clean": "quick/samples/erb_s1/test-0001_clean.png"}
    with Image.open(tmp_path / paths["restored"]) as im:
        assert im.mode == "L"
        assert np.array(im).tolist() == [[0, 128], [255, 255]]
