"""`evaluate_checkpoint` caches the reference rows (degraded input, Otsu, Sauvola) per test set and
readers. An S1/S2 checkpoint brings its own co-trained loss recognizer, whose reading of the
references is their `cer_loss_reader`: the cache must tell two such recognizers apart."""

from __future__ import annotations

import pytest
import torch

from docrestore import checkpoint as CK
from docrestore import config as C
from docrestore import runs as R
from docrestore.evaluation import evaluate as EV
from docrestore.training.gan import GANTrainer


def _cfg(tmp_path, smoke_dataset, smoke_recognizer, smoke_reader, runs, *overrides):
    return C.load_config(profile="smoke", overrides=[
        f"runs_dir={runs}", f"data.root={smoke_dataset.parent}", "tracking.enabled=false",
        f"recognizer.checkpoint={smoke_recognizer}", f"eval.reader={smoke_reader}",
        f"eval.ledger_dir={tmp_path}/ledger", *overrides])


def _reading(ckpt_path, out, charset, char: str | None):
    """A copy of an S1 checkpoint whose co-trained recognizer always reads ``char`` (None: nothing)."""
    ck = CK.load_checkpoint(ckpt_path)
    rec = ck["models"]["recognizer"]
    rec["classifier.weight"] = torch.zeros_like(rec["classifier.weight"])
    bias = torch.full_like(rec["classifier.bias"], -10.0)
    bias[0 if char is None else 1 + list(charset.chars).index(char)] = 10.0  # class 0: the CTC blank
    rec["classifier.bias"] = bias
    CK.save_checkpoint(out, ck)
    return out


@pytest.mark.usefixtures("plain_sample_grids")
def test_cached_references_are_read_by_the_checkpoints_own_co_trained_recognizer(
        tmp_path, smoke_dataset, smoke_recognizer, smoke_reader):
    cfg = _cfg(tmp_path, smoke_dataset, smoke_recognizer, smoke_reader, tmp_path / "runs",
               "train.scenario=S1", "train.max_steps=1")
    t = GANTrainer(cfg, R.start_run(cfg, "train"))
    res = t.fit()
    silent = _reading(res["last"], tmp_path / "silent.pt", t.data.charset, None)
    reads_e = _reading(res["last"], tmp_path / "reads_e.pt", t.data.charset, "e")
    kw = dict(method="m", group="manual", write=False)
    first = EV.evaluate_checkpoint(cfg, silent, experiment="silent", **kw)
    warm = EV.evaluate_checkpoint(cfg, reads_e, experiment="reads_e", **kw)  # the cache holds silent's rows
    cold_cfg = _cfg(tmp_path, smoke_dataset, smoke_recognizer, smoke_reader, tmp_path / "runs-cold",
                    "train.scenario=S1", "train.max_steps=1")
    cold = EV.evaluate_checkpoint(cold_cfg, reads_e, experiment="reads_e", **kw)
    deg = lambda e, m: e["references"]["degraded"][m]["mean"]  # noqa: E731
    assert deg(first, "cer_loss_reader") == pytest.approx(1.0)  # reads nothing: every character lost
    assert deg(cold, "cer_loss_reader") < 1.0  # one "e" per line: some lines hold an e
    assert deg(warm, "cer_loss_reader") == pytest.approx(deg(cold, "cer_loss_reader"))
    # the held-out reader's rows are the same whatever the loss recognizer
    assert deg(warm, "cer") == pytest.approx(deg(first, "cer")) == pytest.approx(deg(cold, "cer"))


@pytest.mark.usefixtures("plain_sample_grids")
def test_the_entry_keeps_the_clean_and_degraded_rows_per_line_cached_or_not(
        tmp_path, smoke_dataset, smoke_recognizer, smoke_reader):
    cfg = _cfg(tmp_path, smoke_dataset, smoke_recognizer, smoke_reader, tmp_path / "runs", "train.max_steps=1")
    res = GANTrainer(cfg, R.start_run(cfg, "train")).fit()
    kw = dict(method="m", group="manual", write=False)
    cold = EV.evaluate_checkpoint(cfg, res["last"], experiment="a", **kw)
    warm = EV.evaluate_checkpoint(cfg, res["last"], experiment="b", **kw)  # the references from the cache
    for e in (cold, warm):
        n = len(e["line_ids"])
        assert {len(v) for v in e["degraded_per_line"].values()} == {n}
        assert {len(v) for v in e["reader_clean_per_line"].values()} == {n}
        assert sum(e["degraded_per_line"]["cer"]) / n == pytest.approx(e["references"]["degraded"]["cer"]["mean"],
                                                                        abs=1e-5)
        assert sum(e["reader_clean_per_line"]["cer"]) / n == pytest.approx(e["reader_clean"]["cer"]["mean"], abs=1e-5)
    assert warm["degraded_per_line"] == cold["degraded_per_line"]
