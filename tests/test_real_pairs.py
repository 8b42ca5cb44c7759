"""data.source=real: real line crops (as `docrestore ingest` writes them) -> flattened clean +
damaged degraded pairs, splits kept, test lines damaged by other seeds, too-long lines left out."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image, ImageDraw

from docrestore import config as C
from docrestore.data import manifest as M
from docrestore.data import real_pairs as RP
from docrestore.data.synth import ensure_dataset


def shaded_line(w=300, h=40, seed=0):
    """A real-looking crop: paper shading from 200 (left) to 240 (right), dark strokes."""
    rng = np.random.default_rng(seed)
    paper = np.linspace(200, 240, w)[None, :].repeat(h, 0) + rng.normal(0, 3, (h, w))
    img = Image.fromarray(np.clip(paper, 0, 255).astype(np.uint8))
    d = ImageDraw.Draw(img)
    for x in range(10, w - 20, 25):
        d.line([(x, 10), (x + 8, 30)], fill=40, width=3)
    return img


def ingested(tmp_path, n_per_split=(4, 2, 2), long_text=True):
    root = tmp_path / "ingested"
    (root / "lines").mkdir(parents=True)
    records = []
    for split, n in zip(M.SPLITS, n_per_split):
        for i in range(n):
            rid = f"{split}p/l{i}"
            shaded_line(seed=len(records)).save(root / "lines" / f"{split}{i}.png")
            records.append({"id": rid, "split": split, "degraded": f"lines/{split}{i}.png", "clean": None,
                            "text": f"ligne {i} de {split}", "page": f"{split}p", "set": "s",
                            "height": 40, "width": 300})
    if long_text:
        shaded_line().save(root / "lines" / "long.png")
        records.append({"id": "trainp/long", "split": "train", "degraded": "lines/long.png", "clean": None,
                        "text": "x" * 80, "page": "trainp", "set": "s", "height": 40, "width": 300})
    M.write_manifest(root / "manifest.jsonl", records)
    return root / "manifest.jsonl"


def real_cfg(tmp_path, src, **extra):
    over = [f"data.real_lines={src}", "data.source=real", f"data.root={tmp_path / 'pairs'}",
            "data.height=32", "data.width=256"] + [f"{k}={v}" for k, v in extra.items()]
    return C.load_config(overrides=over, profile="smoke")


def test_flatten_background_removes_shading_and_keeps_ink():
    line = np.asarray(shaded_line(), dtype=np.float32) / 255.0
    flat = RP.flatten_background(line)
    paper = flat[:5, 30:280]  # above the strokes
    assert paper.mean() > 0.97 and paper.std() < 0.05  # even white, though the scan went 0.78-0.94
    assert flat[15:25, 10:280].min() < 0.1  # ink black
    assert RP.flatten_background(np.full((32, 64), 0.8, np.float32)).min() == 1.0  # a blank crop: white
    # Ingest leaves pure white outside a line's polygon: it is not paper, so the scan's darker
    # paper just inside the cut becomes white too (no grey fringe along the polygon).
    cut = line.copy()
    cut[:4] = 1.0
    cut[-3:, :100] = 1.0
    flat = RP.flatten_background(cut)
    assert flat[4:7, 30:280].mean() > 0.97 and flat[-6:-3, 30:90].mean() > 0.97


def test_real_pairs_keep_splits_flatten_clean_damage_degraded_and_leave_out_too_long(tmp_path):
    src = ingested(tmp_path)
    cfg = real_cfg(tmp_path, src)
    manifest = ensure_dataset(cfg)
    records = M.validate_manifest(manifest)
    assert M.split_counts(records) == {"train": 4, "val": 2, "test": 2}  # the 80-character line is out
    meta = json.loads((manifest.parent / "dataset.json").read_text())
    assert meta["too_long"] == 1 and meta["too_long_ids"] == ["trainp/long"] and meta["ctc_frames"] == 64
    assert {r["id"]: r["split"] for r in records} == {r["id"]: r["split"] for r in M.read_manifest(src)
                                                       if r["id"] != "trainp/long"}
    for r in records:
        clean = np.asarray(Image.open(manifest.parent / r["clean"]), dtype=np.float32) / 255
        degraded = np.asarray(Image.open(manifest.parent / r["degraded"]), dtype=np.float32) / 255
        assert clean.shape == degraded.shape == (32, 256)
        assert np.median(clean) == 1.0  # flattened paper
        assert np.abs(clean - degraded).mean() > 0.02 and r["degradations"]
    # Made once: a second call reuses the folder.
    stamp = (manifest.parent / "dataset.json").stat().st_mtime_ns
    assert ensure_dataset(cfg) == manifest and (manifest.parent / "dataset.json").stat().st_mtime_ns == stamp


def test_test_lines_are_damaged_by_other_streams_than_training_lines(tmp_path):
    """Line i of test and line i of train get different damage from the same seed."""
    src = ingested(tmp_path, (2, 1, 2), long_text=False)
    records = M.read_manifest(src)
    train0 = next(r for r in records if r["id"] == "trainp/l0")
    test0 = dict(next(r for r in records if r["id"] == "testp/l0"), degraded=train0["degraded"])
    a, _, da = RP.make_pair(src, train0, 0, 0, 32, 256, (0.5, 0.5))
    b, _, db = RP.make_pair(src, test0, 0, 0, 32, 256, (0.5, 0.5))
    assert not np.array_equal(da, db)  # same crop, same index and seed, other split: other damage
    c, _, dc = RP.make_pair(src, train0, 0, 0, 32, 256, (0.5, 0.5))
    assert np.array_equal(da, dc) and a["degradations"] == c["degradations"]


def test_source_real_needs_real_lines_and_not_manifest(tmp_path):
    with pytest.raises(C.ConfigError, match="data.real_lines"):
        C.load_config(overrides=["data.source=real"], profile="smoke")
    with pytest.raises(C.ConfigError, match="set only one"):
        C.load_config(overrides=["data.source=real", "data.real_lines=x.jsonl", "data.manifest=y.jsonl"], profile="smoke")
