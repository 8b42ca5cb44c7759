"""Checkpoints: round trips that rebuild identical models, atomic saves, clear errors, RNG."""

from __future__ import annotations

import random
from collections import OrderedDict

import numpy as np
import pytest
import torch

from docrestore import checkpoint as ckpt_mod
from docrestore.checkpoint import (CheckpointError, capture_rng, load_checkpoint, load_generator,
                                   load_recognizer, restore_rng, save_checkpoint, state_dicts)
from docrestore.config import load_config, to_dict
from docrestore.device import pick_device
from docrestore.models import build_generator, build_recognizer, freeze

CPU = pick_device("cpu")
CHARSET = list("abcde ")


@pytest.fixture(scope="module")
def cfg():
    return load_config(profile="smoke")


def trained_generator(cfg):
    torch.manual_seed(0)
    g = build_generator(cfg.generator)
    opt = torch.optim.Adam(g.parameters(), lr=1e-3)
    x = torch.rand(2, 1, 32, 64)
    g(x).mean().backward()  # one step: weights, BatchNorm statistics and Adam state all move
    opt.step()
    return g, opt


def gan_ckpt(cfg, g, opt, **extra):
    ckpt = {"kind": "gan", "config": to_dict(cfg), "charset": CHARSET, "step": 7, "epoch": 1,
            "models": state_dicts(generator=g), "optimizers": state_dicts(generator=opt),
            "scaler": None, "rng": capture_rng(), "best": {"val/cer": np.float64(0.25)},
            "history": [{"step": 7, "val/psnr": np.float32(12.5)}]}
    ckpt.update(extra)
    return ckpt


def test_generator_round_trip_gives_identical_outputs(cfg, tmp_path):
    g, opt = trained_generator(cfg)
    path = save_checkpoint(tmp_path / "last.pt", gan_ckpt(cfg, g, opt))
    loaded, loaded_cfg = load_generator(path, CPU)
    assert not loaded.training
    assert loaded_cfg == cfg
    x = torch.rand(3, 1, 32, 256)
    with torch.no_grad():
        assert torch.equal(g.eval()(x), loaded(x))

    raw = load_checkpoint(path)
    assert raw["step"] == 7 and raw["charset"] == CHARSET
    assert raw["best"]["val/cer"] == 0.25 and type(raw["best"]["val/cer"]) is float
    resumed = torch.optim.Adam(loaded.parameters(), lr=1e-3)
    resumed.load_state_dict(raw["optimizers"]["generator"])
    assert resumed.state_dict()["state"][0]["step"] == opt.state_dict()["state"][0]["step"]


def test_recognizer_round_trip_and_wrong_kind(cfg, tmp_path):
    torch.manual_seed(0)
    rec = build_recognizer(cfg.recognizer, len(CHARSET) + 1, cfg.data.height).eval()
    ckpt = {"kind": "recognizer", "config": cfg, "charset": CHARSET, "step": 3, "epoch": 0,
            "models": state_dicts(recognizer=freeze(rec))}  # a frozen wrapper saves the plain model
    path = save_checkpoint(tmp_path / "best_val_cer.pt", ckpt)
    loaded, chars, loaded_cfg = load_recognizer(path, CPU)
    assert chars == CHARSET and loaded_cfg.recognizer == cfg.recognizer
    assert loaded.num_classes == len(CHARSET) + 1
    x = torch.rand(2, 1, 32, 256)
    with torch.no_grad():
        # both frozen: CPU RNN kernels differ (~1e-8) between trainable and frozen weights
        assert torch.equal(rec(x).logits, freeze(loaded)(x).logits)
    with pytest.raises(CheckpointError, match="load_recognizer"):
        load_generator(path, CPU)


def test_load_recognizer_rejects_a_gan_without_recognizer(cfg, tmp_path):
    g, opt = trained_generator(cfg)
    path = save_checkpoint(tmp_path / "g.pt", gan_ckpt(cfg, g, opt))
    with pytest.raises(CheckpointError, match="no recognizer"):
        load_recognizer(path, CPU)


def test_missing_and_corrupt_files_name_the_path(tmp_path):
    missing = tmp_path / "nope.pt"
    with pytest.raises(CheckpointError, match="nope.pt"):
        load_checkpoint(missing)
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"PK\x03\x04 not really a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt.pt"):
        load_checkpoint(corrupt)


def test_a_failed_write_leaves_the_previous_checkpoint(cfg, tmp_path, monkeypatch):
    g, opt = trained_generator(cfg)
    path = tmp_path / "last.pt"
    save_checkpoint(path, gan_ckpt(cfg, g, opt, step=1))
    before = path.read_bytes()

    def dies_mid_write(obj, f, *args, **kwargs):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", dies_mid_write)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, gan_ckpt(cfg, g, opt, step=2))
    monkeypatch.undo()

    assert path.read_bytes() == before
    assert load_checkpoint(path)["step"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]  # no stray .tmp


def test_two_writers_of_one_checkpoint_do_not_trip_over_one_temporary_name(cfg, tmp_path):
    """Both wrote last.pt.tmp: one's rename took the other's file away (FileNotFoundError, 3-8
    times in 15). Each writer now has its own temporary file."""
    import threading

    g, opt = trained_generator(cfg)
    ckpt = gan_ckpt(cfg, g, opt, step=1)
    path, errors = tmp_path / "last.pt", []

    def write(n):
        for _ in range(n):
            try:
                save_checkpoint(path, ckpt)
            except Exception as exc:  # noqa: BLE001 - what the test counts
                errors.append(exc)
    threads = [threading.Thread(target=write, args=(15,)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and load_checkpoint(path)["step"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


def test_run_json_files_have_one_temporary_name_per_writer(tmp_path, monkeypatch):
    import threading

    from docrestore import runs as R

    run = R.Run(dir=tmp_path, stage="train", cfg=None, git={})
    errors = []

    def write():
        for i in range(200):
            try:
                run.write_json("status.json", {"i": i})
            except Exception as exc:  # noqa: BLE001
                errors.append(exc)
    threads = [threading.Thread(target=write) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and sorted(p.name for p in tmp_path.iterdir()) == ["status.json"]
    assert (tmp_path / "status.json").stat().st_mode & 0o044  # readable by others, as a plain write is


def test_save_rejects_what_a_weights_only_load_cannot_read(cfg, tmp_path):
    g, opt = trained_generator(cfg)
    with pytest.raises(TypeError, match="state_dict"):
        save_checkpoint(tmp_path / "x.pt", gan_ckpt(cfg, g, opt, models={"generator": g}))
    with pytest.raises(TypeError, match="object"):
        save_checkpoint(tmp_path / "x.pt", gan_ckpt(cfg, g, opt, extra=object()))
    with pytest.raises(ValueError, match="models"):
        save_checkpoint(tmp_path / "x.pt", {"kind": "gan", "config": {}})
    assert not (tmp_path / "x.pt").exists()


def test_state_dict_metadata_survives(cfg, tmp_path):
    g, opt = trained_generator(cfg)
    sd = g.state_dict()
    assert isinstance(sd, OrderedDict) and hasattr(sd, "_metadata")
    path = save_checkpoint(tmp_path / "m.pt", gan_ckpt(cfg, g, opt))
    assert load_checkpoint(path)["models"]["generator"]._metadata == sd._metadata


def test_rng_capture_and_restore_through_a_checkpoint(cfg, tmp_path):
    torch.manual_seed(5)
    np.random.seed(5)
    random.seed(5)
    g, opt = trained_generator(cfg)
    path = save_checkpoint(tmp_path / "rng.pt", gan_ckpt(cfg, g, opt, rng=capture_rng()))
    first = (random.random(), np.random.rand(3).tolist(), torch.rand(3).tolist())
    random.random(), np.random.rand(9), torch.rand(9)  # move every stream on
    restore_rng(load_checkpoint(path)["rng"])
    again = (random.random(), np.random.rand(3).tolist(), torch.rand(3).tolist())
    assert again == first


def test_saved_tensors_are_cpu_copies(cfg, tmp_path):
    payload = ckpt_mod._portable({"a": torch.ones(2, requires_grad=True)}, "ckpt")
    assert payload["a"].device.type == CPU.type and not payload["a"].requires_grad
