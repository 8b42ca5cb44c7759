"""Torch datasets over manifests (synthetic and real lines), manifest validation, statistics."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from PIL import Image

from docrestore import config as C
from docrestore.data import manifest as M
from docrestore.data import stats
from docrestore.data.charset import Charset, CharsetError
from docrestore.data.dataset import LineDataset, collate_lines
from docrestore.data.paths import DataError
from docrestore.data.synth import ensure_dataset


def test_line_dataset_and_collate_shapes(smoke_dataset):
    cfg = C.load_config(profile="smoke")
    h, w = cfg.data.height, cfg.data.width
    charset = Charset.from_file(smoke_dataset.parent / "charset.txt")
    ds = LineDataset(smoke_dataset, "train", h, w, charset)
    assert len(ds) == cfg.data.n_train
    item = ds[0]
    assert item["degraded"].shape == (1, h, w) and item["clean"].shape == (1, h, w)
    assert item["degraded"].dtype == torch.float32 and 0 <= item["degraded"].min() and item["degraded"].max() <= 1
    assert item["has_clean"] is True and item["clean"].min() < 0.3 and item["clean"].max() == 1.0
    assert charset.decode(item["target"].tolist()) == item["text"] and item["id"] == "train_000000"
    batch = collate_lines([ds[i] for i in range(3)])
    assert batch["degraded"].shape == (3, 1, h, w) and batch["clean"].shape == (3, 1, h, w)
    assert batch["has_clean"].dtype == torch.bool and batch["has_clean"].all()
    assert batch["target_lengths"].tolist() == [len(t) for t in batch["texts"]]
    assert batch["targets"].dtype == torch.long and batch["targets"].ndim == 1
    assert batch["targets"].numel() == int(batch["target_lengths"].sum())
    assert batch["ids"] == ["train_000000", "train_000001", "train_000002"]
    loader = torch.utils.data.DataLoader(ds, batch_size=4, collate_fn=collate_lines)
    assert next(iter(loader))["degraded"].shape == (4, 1, h, w)


def test_empty_split_and_bad_split_are_errors(smoke_dataset):
    charset = Charset.from_file(smoke_dataset.parent / "charset.txt")
    with pytest.raises(DataError, match="split"):
        LineDataset(smoke_dataset, "dev", 32, 256, charset)


def write_real(tmp_path, texts_sizes, charset_chars=None) -> tuple:
    """A folder of real lines: images of free sizes, clean null."""
    root = tmp_path / "real"
    (root / "lines").mkdir(parents=True)
    records = []
    for i, (split, text, (w, h)) in enumerate(texts_sizes):
        arr = np.full((h, w), 230, np.uint8)
        arr[h // 3: 2 * h // 3, 5: w - 5] = 20  # a solid bar of "ink"
        Image.fromarray(arr).save(root / "lines" / f"l{i}.png")
        records.append({"id": f"real{i}", "split": split, "degraded": f"lines/l{i}.png", "clean": None, "text": text})
    manifest = M.write_manifest(root / "manifest.jsonl", records)
    if charset_chars is not None:
        Charset(charset_chars).to_file(root / "charset.txt")
    return manifest, records


def test_real_manifest_with_clean_null_loads(tmp_path):
    manifest, _ = write_real(tmp_path, [("test", "Mr. Jansz.", (300, 60)), ("test", "fl. 25", (90, 20)),
                                        ("train", "d'Ed.", (1000, 40))])
    cfg = C.load_config(profile="smoke", overrides=[f"data.manifest={manifest}", f"runs_dir={tmp_path}/runs",
                                                    "tracking.enabled=false"])
    assert ensure_dataset(cfg) == manifest
    charset = Charset.from_file(manifest.parent / "charset.txt")  # derived and written next to it
    assert charset.chars == sorted(set("Mr. Jansz.fl. 25d'Ed."))
    ds = LineDataset(manifest, "test", 32, 256, charset)
    wide, narrow = ds[0], ds[1]
    assert wide["degraded"].shape == (1, 32, 256) and wide["has_clean"] is False
    assert torch.isnan(wide["clean"]).all()  # no clean image: NaN, never a black target
    # 300 x 60 -> 160 x 32, padded with white paper to 256
    assert torch.all(wide["degraded"][0, :, 165:] == 1.0) and wide["degraded"][0, :, :150].min() < 0.2
    assert narrow["degraded"][0, :, :140].min() < 0.2  # 90 x 20 -> 144 x 32
    train_set = LineDataset(manifest, "train", 32, 256, charset)  # 1000 x 40 -> 800 x 32, squeezed to 256
    train = train_set[0]
    assert train["degraded"].shape == (1, 32, 256) and train["degraded"][0, :, 240:250].min() < 0.2
    assert train_set.fit_counts == {"fits": 0, "squeezed": 1}
    batch = collate_lines([wide, narrow])
    assert not batch["has_clean"].any()


def test_real_manifest_missing_image_is_named(tmp_path):
    manifest, records = write_real(tmp_path, [("test", "abc", (100, 30))])
    records.append({"id": "gone", "split": "test", "degraded": "lines/gone.png", "clean": None, "text": "ab"})
    M.write_manifest(manifest, records)
    cfg = C.load_config(profile="smoke", overrides=[f"data.manifest={manifest}"])
    with pytest.raises(M.ManifestError, match="gone.png"):
        ensure_dataset(cfg)


def test_real_manifest_character_outside_charset_is_named(tmp_path):
    manifest, _ = write_real(tmp_path, [("test", "abc", (100, 30)), ("test", "abç", (100, 30))], charset_chars="abc")
    cfg = C.load_config(profile="smoke", overrides=[f"data.manifest={manifest}"])
    with pytest.raises(CharsetError, match="'ç'") as err:
        ensure_dataset(cfg)
    assert "real1" in str(err.value)


def test_manifest_errors_name_the_line(tmp_path):
    path = tmp_path / "manifest.jsonl"
    path.write_text('{"id": "a", "split": "test", "degraded": "x.png", "text": "a"}\nnot json\n', encoding="utf-8")
    with pytest.raises(M.ManifestError, match="line 2"):
        M.read_manifest(path)
    path.write_text(json.dumps({"id": "a", "split": "dev", "degraded": "x.png", "text": "a"}) + "\n")
    with pytest.raises(M.ManifestError, match="'dev'"):
        M.validate_manifest(path, check_files=False)
    path.write_text(json.dumps({"id": "a", "split": "test", "text": "a"}) + "\n")
    with pytest.raises(M.ManifestError, match="lacks degraded"):
        M.validate_manifest(path)


def test_statistics_and_figures(smoke_dataset):
    cfg = C.load_config(profile="smoke")
    n = cfg.data.n_train + cfg.data.n_val + cfg.data.n_test
    lengths = stats.line_lengths(smoke_dataset)
    assert len(lengths["chars"]) == n and max(lengths["chars"]) <= cfg.data.max_chars
    counts, edges = stats.severity_histogram(smoke_dataset)
    assert counts.sum() == n and edges[0] == 0.0 and edges[-1] == 1.0
    chars = stats.char_counts(smoke_dataset)
    assert set(chars) == set(Charset.from_file(smoke_dataset.parent / "charset.txt").chars)
    psnr = stats.psnr_per_line(smoke_dataset, split="val")
    assert len(psnr) == cfg.data.n_val and all(3 < v < 40 for v in psnr.values())
    assert stats.degradation_counts(smoke_dataset)["paper"] == n
    assert sum(stats.font_counts(smoke_dataset).values()) == n
    grid = stats.plot_sample_grid(smoke_dataset, n=3)
    assert isinstance(grid, Figure) and len(grid.axes) == 6
    assert isinstance(stats.plot_dataset_stats(smoke_dataset, psnr_lines=10), Figure)
