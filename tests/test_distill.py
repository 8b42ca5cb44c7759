"""`docrestore distill` (a light student copying a trained generator) and `docrestore export`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from docrestore import checkpoint as CK
from docrestore import cli
from docrestore import config as C
from docrestore.config import GeneratorConfig
from docrestore.models import build_generator


def write_teacher(path, smoke_dataset, **gen):
    """A tiny untrained U-Net saved as a GAN checkpoint of the smoke data (the teacher)."""
    cfg = C.load_config(profile="smoke", overrides=["device=cpu", "generator.width=0.03",
                                                    f"data.root={smoke_dataset.parent}", "tracking.enabled=false"])
    torch.manual_seed(0)
    CK.save_checkpoint(path, {
        "kind": "gan", "config": C.to_dict(cfg), "charset": list("abc"), "step": 0, "epoch": 0,
        "models": {"generator": build_generator(cfg.generator).state_dict()}, "optimizers": {},
        "scaler": None, "rng": CK.capture_rng(), "best": {}, "history": []})
    return path


def test_light_generator_keeps_the_contract_and_is_cheaper():
    light = build_generator(GeneratorConfig(name="light", width=0.125, levels=3)).eval()
    unet = build_generator(GeneratorConfig(name="unet", width=0.125)).eval()
    x = torch.rand(2, 1, 32, 64)
    with torch.no_grad():
        y = light(x)
    assert y.shape == x.shape and float(y.min()) >= 0 and float(y.max()) <= 1
    assert sum(p.numel() for p in light.parameters()) < sum(p.numel() for p in unet.parameters()) / 4
    with pytest.raises(ValueError, match="multiples of 8"):
        light(torch.rand(1, 1, 30, 64))


@pytest.mark.e2e
def test_distill_writes_a_generator_checkpoint_that_restore_takes(tmp_path, smoke_dataset):
    teacher = write_teacher(tmp_path / "teacher.pt", smoke_dataset)
    runs = tmp_path / "runs"
    rc = cli.main(["distill", "--teacher", str(teacher), "profile=smoke", "device=cpu", f"runs_dir={runs}",
                   "tracking.enabled=false", "distill.steps=4", "distill.batch_size=2", "distill.val_every=2",
                   "distill.val_lines=2", "distill.width=0.06", "distill.levels=2"])
    assert rc == 0
    (run,) = [d for d in runs.iterdir() if "distill" in d.name]
    result = json.loads((run / "result.json").read_text())
    assert result["parameters"]["student"] < result["parameters"]["teacher"]
    assert np.isfinite(result["val_psnr"]["student_best"])
    # The student rebuilds from its checkpoint alone, as restore and evaluate load it.
    student, scfg = CK.load_generator(run / "best_val_psnr.pt", torch.device("cpu"))
    assert (scfg.generator.name, scfg.generator.width, scfg.generator.levels) == ("light", 0.06, 2)
    tcfg = C.from_dict(CK.load_checkpoint(teacher)["config"])
    assert (scfg.data.height, scfg.data.width) == (tcfg.data.height, tcfg.data.width)  # the teacher's lines
    page = tmp_path / "page.png"
    Image.fromarray((np.random.default_rng(0).random((70, 150)) * 255).astype(np.uint8)).save(page)
    out = tmp_path / "restored"
    assert cli.main(["restore", str(page), "--checkpoint", str(run / "best_val_psnr.pt"), "--out", str(out),
                     "profile=smoke", "device=cpu", "restore.runtime=torch"]) == 0
    restored = np.asarray(Image.open(out / "page.png.png"))
    assert restored.shape == (70, 150)
    # Continuing it (more steps) makes a new folder, never overwriting the first one's.
    args = ["distill", "--teacher", str(teacher), "profile=smoke", "device=cpu", f"runs_dir={runs}",
            "tracking.enabled=false", "distill.batch_size=2", "distill.val_every=2", "distill.val_lines=2",
            "distill.width=0.06", "distill.levels=2"]
    assert cli.main(args + ["distill.steps=6", f"distill.resume={run / 'last.pt'}"]) == 0
    (second,) = [d for d in runs.iterdir() if "distill" in d.name and d != run]
    steps = [h["step"] for h in CK.load_checkpoint(second / "last.pt")["history"]]
    assert steps == [2, 4, 6] and (run / "last.pt").is_file()
    # Another student design cannot continue it.
    assert cli.main(args + ["distill.steps=6", "distill.levels=3", f"distill.resume={run / 'last.pt'}"]) == 2


def test_a_teacher_that_is_no_generator_checkpoint_is_refused(tmp_path, capsys):
    bad = tmp_path / "notes.pt"
    bad.write_bytes(b"not a checkpoint")
    runs = tmp_path / "runs"
    rc = cli.main(["distill", "--teacher", str(bad), "profile=smoke", f"runs_dir={runs}"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "not a usable generator checkpoint" in err and "corrupt" in err
    assert not runs.exists()  # refused before any run folder was made
    recognizer = tmp_path / "rec.pt"
    CK.save_checkpoint(recognizer, {"kind": "recognizer", "config": C.to_dict(C.Config()),
                                    "models": {"recognizer": {}}})
    assert cli.main(["distill", "--teacher", str(recognizer), "profile=smoke", f"runs_dir={runs}"]) == 2
    assert "holds no generator" in capsys.readouterr().err
    assert cli.main(["distill", "profile=smoke", f"runs_dir={runs}"]) == 2
    assert "no teacher" in capsys.readouterr().err


def test_export_writes_onnx_checked_against_pytorch(tmp_path, smoke_dataset, capsys):
    from docrestore.restore.runtime import OnnxGenerator, max_difference

    teacher = write_teacher(tmp_path / "g.pt", smoke_dataset)
    page = tmp_path / "page.png"  # a page made here: dark strokes on stained paper
    img = np.full((90, 300), 200, np.uint8)
    img[20:60:4, 30:270] = 40
    Image.fromarray(img).save(page)
    out = tmp_path / "g.onnx"
    assert cli.main(["export", "--checkpoint", str(teacher), "--out", str(out), "--check-page", str(page)]) == 0
    assert "max |ONNX - PyTorch|" in capsys.readouterr().out
    gen, _ = CK.load_generator(teacher, torch.device("cpu"))
    assert max_difference(gen, OnnxGenerator(out), torch.rand(2, 1, 32, 128)) < 1e-3
    # An existing file is kept unless --overwrite; a bad checkpoint is named.
    assert cli.main(["export", "--checkpoint", str(teacher), "--out", str(out)]) == 2
    assert "exists" in capsys.readouterr().err
    assert cli.main(["export", "--checkpoint", str(teacher), "--out", str(out), "--overwrite"]) == 0
    assert cli.main(["export", "--checkpoint", str(tmp_path / "none.pt"), "--out", str(tmp_path / "x.onnx")]) == 2
    assert "not found" in capsys.readouterr().err
