"""The deployable page model: `docrestore restore` without --checkpoint uses restore.page_model
(or says in one line how to make it), a page checkpoint restores in its benchmark tile, and
`docrestore page-model` trains on every page pair and installs last.pt there. Pages and
checkpoints are made by the tests (no shared data)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from docrestore import cli
from docrestore import config as C
from docrestore.restore import cli as restore_cli

from test_pages import write_dibco


def _page_checkpoint(path, tile: int = 64):
    """An untrained page-mode generator checkpoint (train.mode=pages, pages.tile=``tile``)."""
    from docrestore import checkpoint as CK
    from docrestore.models import build_generator
    from docrestore.training.pages import apply_page_budget

    cfg = apply_page_budget(C.load_config(profile="smoke", overrides=["device=cpu", "generator.width=0.03",
                                                                      f"pages.tile={tile}"]))
    torch.manual_seed(0)
    CK.save_checkpoint(path, {"kind": "gan", "config": C.to_dict(cfg), "charset": [], "step": 0, "epoch": 0,
                              "models": {"generator": build_generator(cfg.generator).state_dict()},
                              "optimizers": {}, "scaler": None, "rng": CK.capture_rng(), "best": {}, "history": []})
    return path


def _page(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    img = np.random.default_rng(0).integers(0, 256, (70, 90), dtype=np.uint8)
    Image.fromarray(img).save(src / "page.png")
    return src / "page.png"


def test_restore_without_a_model_says_in_one_line_how_to_make_it(tmp_path, capsys):
    page = _page(tmp_path)
    missing = tmp_path / "models" / "page_model.pt"
    rc = cli.main(["restore", str(page), "--out", str(tmp_path / "out"), "device=cpu",
                   f"restore.page_model={missing}"])
    err = [line for line in capsys.readouterr().err.splitlines() if " INFO " not in line]  # config notes aside
    assert rc == 2 and len(err) == 1
    assert str(missing) in err[0] and "make page-model" in err[0] and "--checkpoint" in err[0]
    assert not (tmp_path / "out").exists()


def test_restore_without_checkpoint_uses_the_page_model_in_its_page_tile(tmp_path, capsys):
    page = _page(tmp_path)
    model = _page_checkpoint(tmp_path / "models" / "page_model.pt", tile=64)
    out = tmp_path / "out"
    rc = cli.main(["restore", str(page), "--out", str(out), "device=cpu", "restore.runtime=torch",
                   f"restore.page_model={model}"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert f"using the page model {model}" in captured.err
    assert "tile 64 x 64 (checkpoint pages.tile, checkpoint pages.tile)" in captured.err
    sidecar = json.loads((out / "page.png.json").read_text())
    assert sidecar["checkpoint"]["path"] == str(model.resolve()) and sidecar["checkpoint"]["trained_on_pages"]
    assert (sidecar["settings"]["tile_height"], sidecar["settings"]["tile_width"]) == (64, 64)
    with Image.open(out / "page.png.png") as img:
        assert img.size == (90, 70)


def test_a_given_checkpoint_wins_over_the_page_model(tmp_path, capsys):
    page = _page(tmp_path)
    model = _page_checkpoint(tmp_path / "models" / "page_model.pt", tile=64)
    other = _page_checkpoint(tmp_path / "other.pt", tile=32)
    rc = cli.main(["restore", str(page), "--out", str(tmp_path / "out"), "--checkpoint", str(other), "device=cpu",
                   "restore.runtime=torch", f"restore.page_model={model}"])
    err = capsys.readouterr().err
    assert rc == 0 and "using the page model" not in err and "tile 32 x 32" in err


def test_page_tile_is_the_benchmark_tile_and_a_user_tile_still_wins():
    from docrestore.training.pages import apply_page_budget

    page_cfg = C.to_dict(apply_page_budget(C.load_config(profile="quick")))  # pages.tile 256, lines 32 x 256
    r, why = restore_cli.resolve_restore_config(C.load_config(profile="quick"), page_cfg)
    assert (r.tile_height, r.tile_width) == (256, 256) and "pages.tile" in why
    user = C.load_config(profile="quick", overrides=["restore.tile_height=128"])
    r, why = restore_cli.resolve_restore_config(user, page_cfg)
    assert (r.tile_height, r.tile_width) == (128, 256) and "restore.tile_height" in why
    patch = C.to_dict(apply_page_budget(C.load_config(profile="quick", overrides=[
        "pages.tile=0", "pages.patch_height=64", "pages.patch_width=128"])))
    assert restore_cli.page_tile(patch) == (64, 128)
    assert restore_cli.page_tile(C.to_dict(C.load_config(profile="quick"))) is None  # a line model


def test_page_model_trains_on_every_pair_monitors_some_and_refuses_too_many(tmp_path):
    from docrestore.training.page_model import all_sets_splits

    root = write_dibco(tmp_path / "pages", sets=("A", "B", "C"), per_set=2, size=(48, 120))
    cfg = C.load_config(profile="smoke", overrides=[f"pages.root={root}", "pages.val_pages=2"])
    splits = all_sets_splits(cfg)
    assert [p.name for p in splits.train] == ["A_H01", "A_H02", "B_H01", "B_H02", "C_H01", "C_H02"]
    assert [p.name for p in splits.val] == ["A_H02", "B_H02"] and splits.test == []
    assert cfg.pages.train_sets == ["A", "B", "C"] and cfg.pages.test_sets == []
    with pytest.raises(C.ConfigError, match="pages.val_pages"):
        all_sets_splits(C.load_config(profile="smoke", overrides=[f"pages.root={root}", "pages.val_pages=6"]))


@pytest.mark.e2e
def test_page_model_command_installs_a_model_that_restore_then_uses(tmp_path, capsys):
    root = write_dibco(tmp_path / "pages", sets=("A", "B"), per_set=2, size=(64, 160))
    model = tmp_path / "models" / "page_model.pt"
    over = [f"runs_dir={tmp_path}/runs", "tracking.enabled=false", f"pages.root={root}", "pages.tile=64",
            "pages.max_steps=3", "pages.val_every=3", "device=cpu", f"restore.page_model={model}"]
    rc = cli.main(["page-model", "--config", "configs/page_model.yaml", "profile=smoke", *over])
    assert rc == 0
    record = json.loads(model.with_suffix(".json").read_text())
    assert record["steps"] == 3 and record["sets"] == ["A", "B"] and len(record["train_pages"]) == 4
    assert record["git_commit"] and record["train_seconds"] > 0 and "monitor" in record["note"]
    from docrestore import checkpoint as CK

    ckpt = CK.load_checkpoint(model)
    assert ckpt["config"]["train"]["mode"] == "pages" and ckpt["config"]["pages"]["train_sets"] == ["A", "B"]
    assert ckpt["step"] == 3
    capsys.readouterr()
    page = root / "A_H01_source.png"
    rc = cli.main(["restore", str(page), "--out", str(tmp_path / "out"), "restore.runtime=torch",
                   "device=cpu", f"restore.page_model={model}"])
    assert rc == 0 and f"using the page model {model}" in capsys.readouterr().err
    assert (tmp_path / "out" / "A_H01_source.png.png").exists()
