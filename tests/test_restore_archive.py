"""Restoring an archive's files as they come: multi-page TIFFs, outputs left half-done by an
interrupted run, a user's own files beside the inputs, TIFFs without a resolution, huge pages."""

from __future__ import annotations

import json
import tracemalloc

import numpy as np
import pytest
from PIL import Image
from torch import nn

from docrestore import config as C
from docrestore import device as D
from docrestore.restore import tiling
from docrestore.restore.io import find_inputs, read_image, read_page
from docrestore.restore.tiling import restore_files

CPU = D.pick_device("cpu")


class Identity(nn.Module):
    def forward(self, x):
        return x.clone()


def restore_cfg() -> C.RestoreConfig:
    return C.RestoreConfig(tile_height=16, tile_width=32, overlap=0.25, batch_size=4)


def _multipage(path, n=3):
    frames = [Image.fromarray(np.full((20, 40), 40 + 60 * k, np.uint8)) for k in range(n)]
    frames[0].save(path, save_all=True, append_images=frames[1:], dpi=(300, 300))
    return path


def test_every_page_of_a_multipage_tiff_is_restored_with_its_number_in_the_sidecar(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    _multipage(src / "vol.tif")
    Image.fromarray(np.full((20, 40), 90, np.uint8)).save(src / "single.tif")
    found = find_inputs([src])
    assert [p.output.as_posix() for p in found.pages] == [
        "single.tif.png", "vol.tif.p001.png", "vol.tif.p002.png", "vol.tif.p003.png"]
    out = tmp_path / "out"
    report = restore_files(Identity(), found.pages, out, CPU, restore_cfg(), progress=False)
    assert len(report.ok) == 4 and not report.failed
    for k in range(3):
        restored = read_image(out / f"vol.tif.p{k + 1:03d}.png")
        assert abs(float(restored.mean()) * 255 - (40 + 60 * k)) < 1  # page k, not page 1 again
        side = json.loads((out / f"vol.tif.p{k + 1:03d}.json").read_text())
        assert side["input"]["page"] == k + 1 and side["input"]["pages"] == 3
        assert side["output"]["file"] == f"vol.tif.p{k + 1:03d}.png"
    single = json.loads((out / "single.tif.json").read_text())
    assert single["input"]["page"] == 1 and single["input"]["pages"] == 1


def test_an_output_without_its_sidecar_is_restored_again(tmp_path):
    """The PNG is written before its sidecar: a run stopped between them left a PNG that the next
    run kept for ever, with no record of how it was made."""
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(np.full((20, 40), 200, np.uint8)).save(src / "p.png")
    out = tmp_path / "out"
    restore_files(Identity(), [src / "p.png"], out, CPU, restore_cfg(), progress=False)
    (out / "p.png.json").unlink()
    again = restore_files(Identity(), [src / "p.png"], out, CPU, restore_cfg(), progress=False)
    assert again.ok and not again.kept
    assert json.loads((out / "p.png.json").read_text())["output"]["file"] == "p.png.png"
    complete = restore_files(Identity(), [src / "p.png"], out, CPU, restore_cfg(), progress=False)
    assert complete.kept and not complete.ok  # PNG + sidecar: one output, kept


def test_a_users_own_files_beside_the_inputs_are_not_touched_without_overwrite(tmp_path):
    """`restore scans/*.png --out scans`: a user's own page.png.json (or page.png.png) was
    overwritten, the guard looked at the PNG only."""
    scans = tmp_path / "scans"
    scans.mkdir()
    for name in ("a.png", "b.png"):
        Image.fromarray(np.full((20, 40), 200, np.uint8)).save(scans / name)
    (scans / "a.png.json").write_text('{"note": "my own notes on page a"}')
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(scans / "b.png.png")  # not written by docrestore
    before = {p.name: p.read_bytes() for p in scans.iterdir()}
    report = restore_files(Identity(), [scans / "a.png", scans / "b.png"], scans, CPU, restore_cfg(), progress=False)
    assert not report.ok and {p.name for p, _ in report.failed} == {"a.png", "b.png"}
    why = dict(report.failed)
    assert "a.png.json" in why[scans / "a.png"] and "--overwrite" in why[scans / "a.png"]
    assert "b.png.png" in why[scans / "b.png"] and "--overwrite" in why[scans / "b.png"]
    assert {p.name: p.read_bytes() for p in scans.iterdir()} == before
    forced = restore_files(Identity(), [scans / "a.png", scans / "b.png"], scans, CPU, restore_cfg(),
                           progress=False, overwrite=True)
    assert len(forced.ok) == 2 and json.loads((scans / "a.png.json").read_text())["kind"] == "docrestore restore sidecar"


def test_a_tiff_without_resolution_tags_has_no_dpi_not_one(tmp_path):
    Image.fromarray(np.full((8, 8), 200, np.uint8)).save(tmp_path / "plain.tif")
    Image.fromarray(np.full((8, 8), 200, np.uint8)).save(tmp_path / "scan.tif", dpi=(400, 400))
    assert read_page(tmp_path / "plain.tif")[1].dpi is None  # Pillow says (1, 1)
    assert read_page(tmp_path / "scan.tif")[1].dpi == (400.0, 400.0)


@pytest.mark.parametrize("mode", ["L", "RGB", "I;16"])
def test_reading_a_page_needs_little_more_than_its_float32_result(tmp_path, mode):
    """A 100-megapixel page peaked at 2.8 GB while read (float64 intermediates, 28 bytes a
    pixel); now at most 10 bytes a pixel beyond Pillow's own copy."""
    h, w = 1000, 1500
    gray = np.random.default_rng(0).integers(0, 255, (h, w), dtype=np.uint8)
    img = Image.fromarray(gray) if mode == "L" else Image.fromarray(np.stack([gray] * 3, -1)) if mode == "RGB" \
        else Image.fromarray(gray.astype(np.uint16) * 257)
    img.save(tmp_path / "p.png")
    tracemalloc.start()
    try:
        image, _ = read_page(tmp_path / "p.png")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert image.dtype == np.float32 and np.abs(image * 255 - gray).max() < 0.51
    assert peak / (h * w) < 10


def test_a_page_that_does_not_fit_in_memory_fails_alone(tmp_path, monkeypatch):
    src = tmp_path / "in"
    src.mkdir()
    for name in ("big.png", "small.png"):
        Image.fromarray(np.full((20, 40), 200, np.uint8)).save(src / name)
    real = tiling.restore_scaled

    def no_memory_for_big(model, image, *args, **kwargs):
        if image.mean() > 0 and no_memory_for_big.calls == 0:
            no_memory_for_big.calls += 1
            raise MemoryError
        return real(model, image, *args, **kwargs)
    no_memory_for_big.calls = 0
    monkeypatch.setattr(tiling, "restore_scaled", no_memory_for_big)
    report = restore_files(Identity(), sorted(src.iterdir()), tmp_path / "out", CPU, restore_cfg(), progress=False)
    assert [p.name for p, _ in report.ok] == ["small.png"]
    assert [p.name for p, _ in report.failed] == ["big.png"] and "out of memory" in report.failed[0][1]
