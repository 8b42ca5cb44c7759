"""Real lines (no clean image) next to synthetic pairs: losses and metrics apply only where they
can, no fake (black) target anywhere, too-wide lines kept whole, too-long transcriptions named."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from docrestore import config as C
from docrestore import runs as R
from docrestore.data import manifest as M
from docrestore.data.charset import Charset
from docrestore.data.dataset import LineDataset, check_frames, collate_lines, ctc_frames_needed, fit_counts
from docrestore.data.paths import DataError
from docrestore.losses import ctc_loss, pixel_loss
from docrestore.training import common
from docrestore.training.gan import GANTrainer


def mixed_manifest(smoke_dataset, root):
    """The smoke dataset plus copies of some of its lines as real lines (clean: null) in every split."""
    root.mkdir(parents=True, exist_ok=True)
    records = []
    for r in M.read_manifest(smoke_dataset):
        rec = dict(r, degraded=str(M.resolve(smoke_dataset, r["degraded"])),
                   clean=str(M.resolve(smoke_dataset, r["clean"])))
        records.append(rec)
        if int(r["id"].split("_")[1]) % 2 == 1:  # every other line again, as a real line
            records.append({"id": "real-" + r["id"], "split": r["split"], "degraded": rec["degraded"],
                            "clean": None, "text": r["text"]})
    shutil.copy(smoke_dataset.parent / "charset.txt", root / "charset.txt")
    return M.write_manifest(root / "manifest.jsonl", records)


def make_trainer(tmp_path, manifest, recognizer, *overrides) -> GANTrainer:
    cfg = C.load_config(profile="smoke", overrides=[
        f"runs_dir={tmp_path}/runs", f"data.manifest={manifest}", "tracking.enabled=false",
        f"recognizer.checkpoint={recognizer}", *overrides])
    return GANTrainer(cfg, R.start_run(cfg, "train"))


def test_lines_without_clean_get_nan_never_black(tmp_path, smoke_dataset):
    manifest = mixed_manifest(smoke_dataset, tmp_path / "mixed")
    charset = Charset.from_file(manifest.parent / "charset.txt")
    ds = LineDataset(manifest, "train", 32, 256, charset)
    real = [ds[i] for i in range(len(ds)) if not ds[i]["has_clean"]]
    assert real and all(torch.isnan(it["clean"]).all() for it in real)
    batch = collate_lines([ds[0], real[0]])
    assert batch["has_clean"].tolist() == [True, False]


def test_mixed_batch_losses_apply_only_where_they_can(tmp_path, smoke_dataset, smoke_recognizer):
    manifest = mixed_manifest(smoke_dataset, tmp_path / "mixed")
    t = make_trainer(tmp_path, manifest, smoke_recognizer, "train.feature_loss.weight=1")
    items = [t.data.train[i] for i in range(len(t.data.train))]
    paired = [it for it in items if it["has_clean"]][:2]
    real = [it for it in items if not it["has_clean"]][:2]
    batch = collate_lines(paired + real)
    m = batch["has_clean"]
    seen = {"real": [], "fake": []}
    forward = t.discriminator.forward

    def spy(candidate, degraded):
        seen["real" if candidate.requires_grad is False and candidate.grad_fn is None else "fake"].append(candidate)
        return forward(candidate, degraded)

    t.discriminator.forward = spy
    # The expected values: the same generator forward (same dropout draw) outside the step.
    torch.manual_seed(0)
    with torch.no_grad():
        restored = t.g_train(batch["degraded"])
        logits = t.recognizer(restored).logits
    exp_pixel = pixel_loss("bce", restored[m], batch["clean"][m]).item()
    exp_ctc = ctc_loss(logits, batch["targets"], batch["target_lengths"], t.cfg.train.ctc.reduction).item()
    exp_feat = t.feature_loss(restored[m], batch["clean"][m]).item()
    torch.manual_seed(0)
    metrics = t.train_step(batch)
    assert all(np.isfinite(v) for v in metrics.values()), metrics
    assert metrics["train/clean_lines"] == 2
    assert metrics["train/pixel"] == pytest.approx(exp_pixel, rel=1e-4)
    assert metrics["train/feature"] == pytest.approx(exp_feat, rel=1e-4)
    assert metrics["train/ctc_raw"] == pytest.approx(exp_ctc, rel=1e-4)  # CTC over all 4 lines, unclipped
    assert metrics["train/ctc_monitor"] == pytest.approx(min(exp_ctc, t.cfg.train.ctc.clip), rel=1e-4)
    # The discriminator's real examples are exactly the two clean lines, never a placeholder.
    reals = [c for c in seen["real"] if c.shape[0] == 2]
    assert reals and all(torch.equal(c, batch["clean"][m]) for c in reals)
    assert all(torch.isfinite(c).all() and c.max() > 0 for c in seen["real"] + seen["fake"])
    assert t.guard.total == 0


@pytest.mark.e2e
def test_mixed_manifest_trains_and_evaluates_without_a_fake_target(tmp_path, smoke_dataset, smoke_recognizer,
                                                                   monkeypatch):
    """Done-when of issue 10: every image a loss or metric compares against is a real clean line."""
    from docrestore.evaluation import evaluate as EV
    from docrestore.evaluation import metrics as MET
    from docrestore.evaluation import real as REAL
    from docrestore.losses import gan as LG

    compared = []

    def check(name, fn):
        def wrapped(*args, **kw):
            target = args[-1] if name != "pixel" else args[2]
            t = torch.as_tensor(np.asarray(target, dtype=np.float32)) if not torch.is_tensor(target) else target
            compared.append(name)
            assert torch.isfinite(t).all(), f"{name} got a NaN (absent) clean image"
            assert t.numel() == 0 or float(t.max()) > 0.0, f"{name} got an all-black target"
            return fn(*args, **kw)
        return wrapped

    monkeypatch.setattr(MET, "psnr", check("psnr", MET.psnr))
    monkeypatch.setattr(MET, "ssim", check("ssim", MET.ssim))
    import docrestore.losses as L
    monkeypatch.setattr(L, "pixel_loss", check("pixel", LG.pixel_loss))
    manifest = mixed_manifest(smoke_dataset, tmp_path / "mixed")
    # A copy of the loss recognizer stands in for the held-out reader only to keep this test small:
    # it checks where clean images are used, not what a reader reads (config refuses the same file).
    reader = tmp_path / "reader.pt"
    shutil.copyfile(smoke_recognizer, reader)
    t = make_trainer(tmp_path, manifest, smoke_recognizer, "train.max_steps=3", "train.val_every=2",
                     f"eval.reader={reader}")
    res = t.fit()
    assert "pixel" in compared and "psnr" in compared
    assert np.isfinite(res["val"]["val/psnr"]) and t.guard.total == 0
    cfg = t.cfg
    cfg.eval.ledger_dir = str(tmp_path / "ledger")
    cfg.eval.bootstrap = 20
    entry = EV.evaluate_checkpoint(cfg, res["last"], experiment="mixed", method="mixed", group="manual",
                                   train_result=res)
    n_real = sum(1 for r in M.read_manifest(manifest) if r["split"] == "test" and r["clean"] is None)
    n_pairs = sum(1 for r in M.read_manifest(manifest) if r["split"] == "test" and r["clean"] is not None)
    assert entry["metrics"]["psnr"]["n"] == n_pairs and entry["metrics"]["cer"]["n"] == n_pairs
    real = REAL.read_real_entry(cfg, "mixed")
    assert real["kind"] == "real_lines" and real["metrics"]["cer_degraded"]["n"] == n_real
    assert len(real["per_line"]["cer_restored"]) == n_real and "psnr" not in real["metrics"]
    assert 0.0 <= real["paired"]["cer"]["p_value"] <= 1.0


def test_real_lines_without_ctc_are_an_error(tmp_path, smoke_dataset, smoke_recognizer):
    manifest = mixed_manifest(smoke_dataset, tmp_path / "mixed")
    n_real = sum(1 for r in M.read_manifest(manifest) if r["split"] == "train" and r["clean"] is None)
    with pytest.raises(C.ConfigError, match=rf"train split has {n_real} of \d+ lines without a clean image"):
        make_trainer(tmp_path, manifest, smoke_recognizer, "train.ctc.weight=0")


def test_too_wide_line_is_squeezed_whole_and_counted(tmp_path):
    root = tmp_path / "wide"
    root.mkdir()
    arr = np.full((40, 1200), 235, np.uint8)
    arr[10:30, 1100:1190] = 10  # ink at the far right end: cropping would lose it
    Image.fromarray(arr).save(root / "wide.png")
    Image.fromarray(arr[:, :300]).save(root / "narrow.png")
    records = [{"id": "wide", "split": "test", "degraded": "wide.png", "clean": None, "text": "ab"},
               {"id": "narrow", "split": "test", "degraded": "narrow.png", "clean": None, "text": "a"}]
    manifest = M.write_manifest(root / "manifest.jsonl", records)
    ds = LineDataset(manifest, "test", 32, 256, Charset("ab"))
    assert ds.fit_counts == {"fits": 1, "squeezed": 1}
    assert fit_counts(manifest, records, 32, 2048) == {"fits": 2, "squeezed": 0}
    wide = ds[0]["degraded"][0]
    assert wide.shape == (32, 256) and wide[:, 230:].min() < 0.2  # the ink at the end is still there


def test_transcription_longer_than_the_frames_is_named(tmp_path):
    root = tmp_path / "long"
    root.mkdir()
    Image.fromarray(np.full((32, 64), 230, np.uint8)).save(root / "l.png")
    records = [{"id": "long", "split": "train", "degraded": "l.png", "clean": None, "text": "aab" * 4},
               {"id": "ok", "split": "train", "degraded": "l.png", "clean": None, "text": "ab"}]
    manifest = M.write_manifest(root / "manifest.jsonl", records)
    ds = LineDataset(manifest, "train", 32, 64, Charset("ab"))
    assert ctc_frames_needed([1, 1, 2]) == 4
    with pytest.raises(DataError, match=r"1 of 2 lines .*'long'"):
        check_frames(ds, frames=15)
    assert check_frames(ds, frames=15, fatal=False) == ["long"]


def test_pretrain_fine_tunes_a_reader_with_new_characters(tmp_path, smoke_dataset, smoke_recognizer):
    """`docrestore pretrain recognizer_train.init=...` on real lines: the charset grows by the
    lines' new characters (old indices kept) and the change is reported."""
    from docrestore import checkpoint as CK
    from docrestore.training.recognizer import pretrain

    old = Charset.from_file(smoke_dataset.parent / "charset.txt").chars
    root = tmp_path / "real"
    root.mkdir()
    records = []
    for i, split in enumerate(["train"] * 4 + ["val", "test"]):
        arr = np.full((40, 300), 225, np.uint8)
        arr[12:28, 10:40 + 40 * i] = 20
        Image.fromarray(arr).save(root / f"l{i}.png")
        records.append({"id": f"l{i}", "split": split, "degraded": f"l{i}.png", "clean": None,
                        "text": old[i % len(old)] + "ßę"})
    manifest = M.write_manifest(root / "manifest.jsonl", records)
    cfg = C.load_config(profile="smoke", overrides=[
        f"runs_dir={tmp_path}/runs", f"data.manifest={manifest}", "tracking.enabled=false",
        f"recognizer_train.init={smoke_recognizer}", "recognizer_train.max_steps=2", "recognizer_train.val_every=1",
        "recognizer_train.batch_size=2"])
    res = pretrain(cfg, R.start_run(cfg, "pretrain"))
    assert res["charset_added"] == ["ß", "ę"]
    model, chars, _ = CK.load_recognizer(res["checkpoint"], torch.device("cpu"))
    assert chars == list(old) + ["ß", "ę"] and model.classifier.out_features == len(chars) + 1


def test_dataset_stats_count_squeezed_lines(tmp_path):
    from docrestore.data import stats

    root = tmp_path / "s"
    root.mkdir()
    Image.fromarray(np.full((40, 1200), 230, np.uint8)).save(root / "w.png")
    M.write_manifest(root / "manifest.jsonl", [
        {"id": "w", "split": "train", "degraded": "w.png", "clean": None, "text": "a"},
        {"id": "n", "split": "train", "degraded": "w.png", "clean": None, "text": "a", "width": 100, "height": 40}])
    assert stats.width_fit(root / "manifest.jsonl", 32, 256) == {"fits": 1, "squeezed": 1}
