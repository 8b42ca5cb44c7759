"""Restoring real page images: image reading, tiled restoration, restore_files and the CLI."""

from __future__ import annotations

import argparse
import hashlib
import io as _io
import json
import logging
from pathlib import PurePath

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from docrestore import config as C
from docrestore import device as D
from docrestore.restore import cli as restore_cli
from docrestore.restore.io import (ImageReadError, find_images, find_inputs, output_name, read_image,
                                   read_page, write_image)
from docrestore.restore.tiling import (blend_window, check_tile, count_tiles, restore_files, restore_image,
                                       tile_positions)

CPU = D.pick_device("cpu")


# ------------------------------------------------------------------------------ stand-in models
class Identity(nn.Module):
    def forward(self, x):
        return x.clone()


class AddConstant(nn.Module):
    def __init__(self, c: float):
        super().__init__()
        self.c = c

    def forward(self, x):
        return x + self.c


class RecordsMode(nn.Module):
    """Identity that remembers whether it ran in training mode and how big its batches were."""

    def __init__(self):
        super().__init__()
        self.modes: list[bool] = []
        self.batches: list[int] = []

    def forward(self, x):
        self.modes.append(self.training)
        self.batches.append(x.shape[0])
        return x


def random_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((h, w), dtype=np.float32)


def restore_cfg(h=16, w=32, overlap=0.25, batch_size=4) -> C.RestoreConfig:
    return C.RestoreConfig(tile_height=h, tile_width=w, overlap=overlap, batch_size=batch_size)


# ---------------------------------------------------------------------------------- tiling maths
@pytest.mark.parametrize("length,tile,overlap", [(16, 16, 0.25), (17, 16, 0.25), (100, 16, 0.0),
                                                  (1000, 128, 0.25), (3000, 1024, 0.75)])
def test_tile_positions_cover_the_axis_and_end_at_the_edge(length, tile, overlap):
    starts = tile_positions(length, tile, overlap)
    covered = np.zeros(length, bool)
    for s in starts:
        covered[s:s + tile] = True
    assert covered.all()
    assert starts[0] == 0 and starts[-1] == length - tile
    assert starts == sorted(set(starts))


def test_blend_window_is_positive_and_neighbouring_ramps_sum_to_one():
    n, overlap = 64, 0.25
    w = blend_window(n, overlap)
    assert w.min() > 0 and w.max() == 1.0
    ramp = round(overlap * n)
    # the next tile starts ramp pixels before this one ends: falling + rising ramp == 1 (up to
    # the floor weight of the margins)
    np.testing.assert_allclose(w[n - ramp:] + w[:ramp], 1.0, atol=2e-3)
    # the outermost pixels (zero-padding artefacts of a conv net) get only the floor weight
    assert w[:ramp // 8].max() <= 1e-3 and w[n - ramp // 8:].max() <= 1e-3


def test_a_2000_by_3000_page_at_128_by_1024_is_about_100_tiles():
    assert 80 <= count_tiles((2000, 3000), (128, 1024), 0.25) <= 100


def test_check_tile_rejects_non_multiples_of_16_and_suggests_a_value():
    check_tile((128, 1024))
    with pytest.raises(ValueError, match=r"tile_width=100 .*multiple of 16.*tile_width=96"):
        check_tile((128, 100))


# ------------------------------------------------------------------------------- restore_image
@pytest.mark.parametrize("shape", [(1, 1), (1, 700), (700, 1), (5, 9), (16, 32), (17, 33),
                                   (40, 100), (1500, 800)])
def test_identity_model_returns_the_input_exactly(shape):
    img = random_image(*shape)
    out = restore_image(Identity(), img, CPU, tile=(16, 32), overlap=0.25, batch_size=64)
    assert out.shape == img.shape and out.dtype == np.float32
    np.testing.assert_allclose(out, img, atol=1e-6, rtol=0)


def test_identity_at_the_generator_tile_size_for_a_page_not_a_multiple_of_the_tile():
    img = random_image(1500, 800, seed=1)
    out = restore_image(Identity(), img, CPU, tile=(128, 1024), overlap=0.25, batch_size=8)
    np.testing.assert_allclose(out, img, atol=1e-6, rtol=0)


@pytest.mark.parametrize("overlap", [0.0, 0.25, 0.5, 0.75])
def test_adding_a_constant_gives_input_plus_constant_everywhere(overlap):
    img = random_image(75, 131, seed=2)
    out = restore_image(AddConstant(0.3), img, CPU, tile=(16, 48), overlap=overlap, batch_size=5)
    np.testing.assert_allclose(out, img + 0.3, atol=1e-6, rtol=0)


def test_an_image_smaller_than_a_tile_is_padded_with_white():
    seen = {}

    class Spy(nn.Module):
        def forward(self, x):
            seen["tile"] = x.clone()
            return x

    img = np.zeros((4, 6), np.float32)  # all ink
    restore_image(Spy(), img, CPU, tile=(16, 32))
    tile = seen["tile"][0, 0]
    assert tile.shape == (16, 32)
    assert float(tile.sum()) == pytest.approx(16 * 32 - 4 * 6)  # white everywhere but the image
    assert float(tile[6:10, 13:19].abs().sum()) == 0.0  # centred


def test_blending_is_smooth_across_seams_of_tiles_that_disagree():
    # Each tile's output is offset by its own random constant (a model that is not translation
    # invariant); the blend must move between neighbouring offsets gradually, not in a step.
    class PerTileOffset(nn.Module):
        def __init__(self):
            super().__init__()
            self.rng = torch.Generator().manual_seed(0)

        def forward(self, x):
            return x + torch.rand(x.shape[0], 1, 1, 1, generator=self.rng) * 0.2

    img = np.full((16, 400), 0.5, np.float32)
    out = restore_image(PerTileOffset(), img, CPU, tile=(16, 64), overlap=0.5, batch_size=3)
    steps = np.abs(np.diff(out[8]))
    # offsets differ by up to 0.2; spread over a 32 px ramp no neighbouring pixels jump > 0.02
    assert steps.max() < 0.02


def test_results_do_not_depend_on_the_batch_size():
    torch.manual_seed(0)
    conv = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 1, 3, padding=1))
    img = random_image(50, 90, seed=3)
    a = restore_image(conv, img, CPU, tile=(16, 32), batch_size=1)
    b = restore_image(conv, img, CPU, tile=(16, 32), batch_size=7)
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_model_runs_in_eval_mode_in_batches_and_its_mode_is_restored():
    model = RecordsMode().train()
    calls = []
    restore_image(model, random_image(40, 100), CPU, tile=(16, 32), batch_size=4, progress=calls.append)
    n = count_tiles((40, 100), (16, 32), 0.25)
    assert model.modes and not any(model.modes)
    assert max(model.batches) == 4 and sum(model.batches) == n == sum(calls)
    assert model.training


def test_a_model_that_changes_the_shape_is_a_clear_error():
    class Shrinks(nn.Module):
        def forward(self, x):
            return x[..., :-1]

    with pytest.raises(ValueError, match="must keep the input shape"):
        restore_image(Shrinks(), random_image(16, 32), CPU, tile=(16, 32))


def test_integer_images_are_refused_rather_than_misread():
    with pytest.raises(ValueError, match="floats in \\[0, 1\\]"):
        restore_image(Identity(), np.zeros((4, 4), np.uint8), CPU, tile=(16, 16))


def test_the_real_generator_restores_an_odd_sized_page():
    from docrestore.models import build_generator

    torch.manual_seed(0)
    gen = build_generator(C.GeneratorConfig(width=0.03))
    out = restore_image(gen, random_image(37, 91), CPU, tile=(32, 64), batch_size=4)
    assert out.shape == (37, 91) and np.isfinite(out).all()
    assert 0.0 <= out.min() and out.max() <= 1.0  # sigmoid output, blended


# ----------------------------------------------------------------------------------- read_image
def _save(path, img: Image.Image, **kw):
    img.save(path, **kw)
    return path


def _two_pixels(mode: str) -> Image.Image:
    """A 3 x 4 image: (0, 0) black ink, (0, 1) white paper, the rest mid-grey."""
    if mode in ("L", "P"):
        a = np.full((3, 4), 128, np.uint8)
        a[0, 0], a[0, 1] = 0, 255
        img = Image.fromarray(a)
        return img.convert("P") if mode == "P" else img
    if mode == "1":
        a = np.zeros((3, 4), np.uint8)
        a[0, 1] = 255
        return Image.fromarray(a).convert("1")
    if mode in ("RGB", "RGBA", "LA"):
        a = np.full((3, 4, 3), 128, np.uint8)
        a[0, 0], a[0, 1] = 0, 255
        img = Image.fromarray(a)
        if mode == "LA":
            return img.convert("LA")
        return img.convert("RGBA") if mode == "RGBA" else img
    if mode == "I;16":
        a = np.full((3, 4), 30000, np.uint16)
        a[0, 0], a[0, 1] = 0, 65535
        return Image.fromarray(a)
    raise AssertionError(mode)


@pytest.mark.parametrize("mode,suffix", [("L", ".png"), ("RGB", ".png"), ("RGBA", ".png"), ("P", ".png"),
                                         ("LA", ".png"), ("1", ".png"), ("I;16", ".png"),
                                         ("I;16", ".tif"), ("RGB", ".tif"), ("L", ".bmp")])
def test_read_image_gives_gray_floats_with_black_ink_and_white_paper(tmp_path, mode, suffix):
    img = _two_pixels(mode)
    p = _save(tmp_path / f"x{suffix}", img)
    a = read_image(p)
    assert a.shape == (3, 4) and a.dtype == np.float32
    assert 0.0 <= a.min() and a.max() <= 1.0
    assert a[0, 0] == pytest.approx(0.0, abs=1e-6)
    assert a[0, 1] == pytest.approx(1.0, abs=1e-6)


def test_read_image_16_bit_keeps_the_fine_grey_levels(tmp_path):
    p = _save(tmp_path / "x.png", _two_pixels("I;16"))
    assert read_image(p)[1, 1] == pytest.approx(30000 / 65535, abs=1e-6)


def test_read_image_mode_i_is_read_on_the_16_bit_scale(tmp_path):
    a = np.array([[0, 65535, 32768]], np.int32)
    p = _save(tmp_path / "x.tif", Image.fromarray(a, mode="I"))
    np.testing.assert_allclose(read_image(p), [[0.0, 1.0, 32768 / 65535]], atol=1e-6)


def test_read_image_jpeg(tmp_path):
    a = np.full((16, 32), 255, np.uint8)
    a[:, :16] = 0  # flat blocks survive JPEG almost exactly
    p = _save(tmp_path / "x.jpg", Image.fromarray(a).convert("RGB"), quality=95)
    g = read_image(p)
    assert g.shape == (16, 32)
    assert g[8, 4] == pytest.approx(0.0, abs=0.03) and g[8, 28] == pytest.approx(1.0, abs=0.03)


def test_transparent_pixels_are_white_paper(tmp_path):
    a = np.zeros((2, 2, 4), np.uint8)  # black but fully transparent
    a[0, 0] = (0, 0, 0, 255)  # one opaque black pixel
    a[0, 1] = (0, 0, 0, 128)  # half-transparent black over white -> ~0.5
    g = read_image(_save(tmp_path / "x.png", Image.fromarray(a, mode="RGBA")))
    assert g[0, 0] == pytest.approx(0.0) and g[1, 1] == pytest.approx(1.0)
    assert g[0, 1] == pytest.approx(1 - 128 / 255, abs=1e-6)


def test_palette_with_transparency_is_white_where_transparent(tmp_path):
    img = Image.fromarray(np.array([[0, 1]], np.uint8), mode="P")
    img.putpalette([0, 0, 0, 0, 0, 0] + [0] * 762)
    p = _save(tmp_path / "x.png", img, transparency=1)
    np.testing.assert_allclose(read_image(p), [[0.0, 1.0]], atol=1e-6)


def test_exif_orientation_is_applied(tmp_path):
    img = Image.fromarray(np.zeros((10, 30), np.uint8)).convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: rotate 90 degrees to display
    p = _save(tmp_path / "phone.jpg", img, exif=exif.tobytes())
    assert read_image(p).shape == (30, 10)


def test_multi_page_tiff_reads_the_first_page(tmp_path):
    first = Image.fromarray(np.zeros((5, 6), np.uint8))
    second = Image.fromarray(np.full((7, 8), 255, np.uint8))
    p = tmp_path / "book.tif"
    first.save(p, save_all=True, append_images=[second])
    a = read_image(p)
    assert a.shape == (5, 6) and a.max() == 0.0


@pytest.mark.parametrize("content,reason", [
    (None, "not found"),
    (b"", "empty"),
    (b"\x89PNG\r\n\x1a\n" + bytes(np.random.default_rng(0).integers(0, 256, 500, dtype=np.uint8)), "corrupt|not an image"),
    (b"just some text, not a picture\n", "not an image"),
])
def test_unreadable_files_raise_image_read_error_naming_the_file(tmp_path, content, reason):
    p = tmp_path / "bad.png"
    if content is not None:
        p.write_bytes(content)
    with pytest.raises(ImageReadError, match=reason) as err:
        read_image(p)
    assert err.value.path == p and "bad.png" in str(err.value)


def _png_bytes(h=64, w=64) -> bytes:
    buf = _io.BytesIO()
    Image.fromarray(random_image(h, w).__mul__(255).astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def test_truncated_png_raises_image_read_error(tmp_path):
    p = tmp_path / "cut.png"
    p.write_bytes(_png_bytes()[:-200])
    with pytest.raises(ImageReadError, match="corrupt or truncated"):
        read_image(p)


# ---------------------------------------------------------------------------------- write_image
def test_write_image_round_trips_8_bit_creates_folders_and_leaves_no_temp_file(tmp_path):
    a = np.array([[0.0, 1.0, 0.5, -0.2, 1.3]], np.float32)
    p = write_image(tmp_path / "deep" / "er" / "out.png", a)
    assert p.exists() and sorted(x.name for x in p.parent.iterdir()) == ["out.png"]
    with Image.open(p) as img:
        assert img.mode == "L"
        np.testing.assert_array_equal(np.asarray(img), [[0, 255, 128, 0, 255]])


def test_write_image_refuses_non_png_names_and_nan(tmp_path):
    with pytest.raises(ValueError, match="PNG"):
        write_image(tmp_path / "out.jpg", np.zeros((2, 2)))
    with pytest.raises(ValueError, match="NaN"):
        write_image(tmp_path / "out.png", np.full((2, 2), np.nan))
    assert not (tmp_path / "out.png").exists()


# ---------------------------------------------------------------------------------- find_images
def test_find_images_expands_folders_sorted_case_insensitive_skipping_others(tmp_path):
    for name in ["b.PNG", "a.tif", "c.Jpeg", "notes.txt", ".hidden.png", "d.bmp"]:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "e.png").write_bytes(b"x")
    extra = tmp_path / "sub" / "e.png"
    found = find_images([tmp_path, extra, tmp_path / "a.tif"])
    assert [p.name for p in found] == ["a.tif", "b.PNG", "c.Jpeg", "d.bmp", "e.png"]


def test_find_inputs_names_what_it_skips_and_recurses_only_when_asked(tmp_path):
    for name in ["a.tif", "notes.txt", ".DS_Store"]:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "vol1" / "deep").mkdir(parents=True)
    (tmp_path / "vol1" / "deep" / "f.png").write_bytes(b"x")
    (tmp_path / "vol1" / "readme.md").write_bytes(b"x")
    flat = find_inputs([tmp_path])
    assert [str(p.rel) for p in flat.pages] == ["a.tif"]
    why = {p.name: reason for p, reason in flat.skipped}
    assert set(why) == {"notes.txt", ".DS_Store", "vol1"}
    assert "--recursive" in why["vol1"] and "not an image" in why["notes.txt"]
    deep = find_inputs([tmp_path], recursive=True)
    assert [p.rel.as_posix() for p in deep.pages] == ["a.tif", "vol1/deep/f.png"]
    assert {p.name for p, _ in deep.skipped} == {"notes.txt", ".DS_Store", "readme.md"}


def test_recursive_walk_visits_each_real_folder_once_and_names_the_links_it_skips(tmp_path):
    """Two links to the folder itself made the walk exponential (it never ended); each real folder
    is now visited once, and the skipped links are named."""
    import signal

    (tmp_path / "vol").mkdir()
    Image.new("L", (4, 4)).save(tmp_path / "vol" / "a.png")
    (tmp_path / "vol" / "loop1").symlink_to(tmp_path / "vol", target_is_directory=True)
    (tmp_path / "vol" / "loop2").symlink_to(tmp_path / "vol", target_is_directory=True)
    (tmp_path / "other").mkdir()
    Image.new("L", (4, 4)).save(tmp_path / "other" / "b.png")
    (tmp_path / "vol" / "elsewhere").symlink_to(tmp_path / "other", target_is_directory=True)

    def too_long(*_):
        raise TimeoutError("the walk did not end")
    old = signal.signal(signal.SIGALRM, too_long)
    signal.alarm(20)
    try:
        found = find_inputs([tmp_path / "vol"], recursive=True)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    assert [p.rel.as_posix() for p in found.pages] == ["a.png", "elsewhere/b.png"]  # a link elsewhere: once
    why = {p.name: reason for p, reason in found.skipped}
    assert set(why) == {"loop1", "loop2"} and "already" in why["loop1"] and str(tmp_path / "vol") in why["loop1"]


def test_find_images_names_a_missing_input(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.png"):
        find_images([tmp_path / "nowhere.png"])


def test_output_names_keep_the_whole_input_name_and_do_not_depend_on_the_neighbours(tmp_path):
    alone = tmp_path / "alone"
    both = tmp_path / "both"
    for folder, names in [(alone, ["page.png"]), (both, ["page.png", "page.jpg"])]:
        folder.mkdir()
        for n in names:
            (folder / n).write_bytes(b"x")
    name_alone = {p.path.name: output_name(p.rel) for p in find_inputs([alone]).pages}
    name_both = {p.path.name: output_name(p.rel) for p in find_inputs([both]).pages}
    assert name_alone["page.png"] == name_both["page.png"] == PurePath("page.png.png")
    assert name_both["page.jpg"] == PurePath("page.jpg.png")
    assert output_name(PurePath("vol1/f.tif")) == PurePath("vol1/f.tif.png")


def test_two_inputs_for_one_output_stop_before_any_page(tmp_path):
    for vol in ("vol1", "vol2"):
        (tmp_path / vol).mkdir()
        Image.fromarray(np.full((20, 40), 200, np.uint8)).save(tmp_path / vol / "001.png")
    model = RecordsMode()
    pages = find_inputs([tmp_path / "vol1", tmp_path / "vol2"]).pages
    with pytest.raises(ValueError, match="would both be restored to .*001.png.png.*--recursive"):
        restore_files(model, pages, tmp_path / "out", CPU, restore_cfg(), progress=False)
    assert model.batches == [] and not (tmp_path / "out").exists()
    # their parent folder with --recursive mirrors the two sub-folders instead
    report = restore_files(model, find_inputs([tmp_path], recursive=True).pages, tmp_path / "out",
                           CPU, restore_cfg(), progress=False)
    assert sorted(o.relative_to(tmp_path / "out").as_posix() for _, o in report.ok) == [
        "vol1/001.png.png", "vol2/001.png.png"]


# -------------------------------------------------------------------------------- restore_files
def _page_folder(tmp_path):
    src = tmp_path / "scans"
    src.mkdir()
    Image.fromarray((random_image(50, 70, 1) * 255).astype(np.uint8)).save(src / "p1.png")
    Image.fromarray((random_image(20, 300, 2) * 255).astype(np.uint8)).convert("RGB").save(src / "p2.jpg")
    (src / "corrupt.png").write_bytes(bytes(np.random.default_rng(5).integers(0, 256, 300, dtype=np.uint8)))
    (src / "truncated.png").write_bytes(_png_bytes()[:-300])
    return src


def test_restore_files_reports_bad_files_by_name_and_restores_the_rest(tmp_path, caplog):
    src = _page_folder(tmp_path)
    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING, logger="docrestore.restore"):
        report = restore_files(Identity(), find_images([src]), out, CPU, restore_cfg(), progress=False)
    assert sorted(p.name for p, _ in report.ok) == ["p1.png", "p2.jpg"]
    assert sorted(p.name for p, _ in report.failed) == ["corrupt.png", "truncated.png"]
    assert "corrupt.png" in caplog.text and "truncated.png" in caplog.text
    for inp, outp in report.ok:
        assert outp.parent == out and outp.suffix == ".png"
        restored, original = read_image(outp), read_image(inp)
        assert restored.shape == original.shape
        # identity model: output equals the input up to 8-bit rounding
        assert np.abs(restored - original).max() <= 0.5 / 255 + 1e-6


def test_restore_files_refuses_to_overwrite_an_input(tmp_path):
    src = _page_folder(tmp_path)
    (src / "p1.png.png").write_bytes((src / "p1.png").read_bytes())  # an earlier output, now an input
    with pytest.raises(ValueError, match="overwrite the input"):
        restore_files(Identity(), find_images([src]), src, CPU, restore_cfg(), progress=False)


def test_cli_refuses_an_output_folder_inside_an_input_folder(tmp_path, capsys, tiny_checkpoint):
    src = _page_folder(tmp_path)
    for dry_run in (True, False):
        rc = restore_cli.main_cli(C.load_config(overrides=["device=cpu"]),
                                  _args([src], tiny_checkpoint, src / "restored", dry_run=dry_run))
        assert rc == 2 and "inside the input folder" in capsys.readouterr().err
    assert not (src / "restored").exists()


def test_restore_files_reports_non_finite_output(tmp_path):
    class Nan(nn.Module):
        def forward(self, x):
            return x * float("nan")

    src = _page_folder(tmp_path)
    report = restore_files(Nan(), [src / "p1.png"], tmp_path / "out", CPU, restore_cfg(), progress=False)
    assert not report.ok and "NaN" in report.failed[0][1]
    assert not (tmp_path / "out" / "p1.png").exists()


# ------------------------------------------------------------------------------------------ CLI
def _args(inputs, checkpoint, out, dry_run=False, text_height="off", **flags):
    # off: these tests are about files and errors; the text-size step has its own tests
    # (tests/test_restore_scale.py), and measuring a checkpoint's scale renders lines.
    return argparse.Namespace(inputs=[str(i) for i in inputs], checkpoint=str(checkpoint),
                              out=str(out), dry_run=dry_run, text_height=text_height, **flags)


@pytest.fixture
def tiny_checkpoint(tmp_path):
    """A GAN checkpoint of a 4-channel U-Net trained (not really) at the smoke size 32 x 256."""
    from docrestore import checkpoint as CK
    from docrestore.models import build_generator

    cfg = C.load_config(profile="smoke", overrides=["device=cpu", "generator.width=0.03"])
    torch.manual_seed(0)
    gen = build_generator(cfg.generator)
    path = tmp_path / "ckpt" / "g.pt"
    CK.save_checkpoint(path, {
        "kind": "gan", "config": C.to_dict(cfg), "charset": list("abc"), "step": 0, "epoch": 0,
        "models": {"generator": gen.state_dict()}, "optimizers": {}, "scaler": None,
        "rng": CK.capture_rng(), "best": {}, "history": []})
    return path


def test_cli_dry_run_lists_files_and_settings_and_restores_nothing(tmp_path, capsys, tiny_checkpoint):
    src = _page_folder(tmp_path)
    cfg = C.load_config(overrides=["device=cpu"])  # full profile; the checkpoint says 32 x 256
    rc = restore_cli.main_cli(cfg, _args([src], tiny_checkpoint, tmp_path / "out", dry_run=True))
    text = capsys.readouterr().out
    assert rc == 0
    assert "4 image(s)" in text and "p1.png" in text and str(tiny_checkpoint) in text and "cpu" in text
    assert "32 x 256 (checkpoint data.height, checkpoint data.width)" in text and "overlap" in text
    assert not (tmp_path / "out").exists()


def test_cli_dry_run_with_an_unreadable_checkpoint_says_so_and_returns_2(tmp_path, capsys):
    src = _page_folder(tmp_path)
    ckpt = tmp_path / "g.pt"
    ckpt.write_bytes(b"not a checkpoint")
    rc = restore_cli.main_cli(C.load_config(overrides=["device=cpu"]),
                              _args([src], ckpt, tmp_path / "out", dry_run=True))
    captured = capsys.readouterr()
    assert rc == 2 and "p1.png" in captured.out and "cannot read checkpoint" in captured.err


@pytest.mark.parametrize("dry_run", [True, False])
def test_cli_a_tile_that_is_not_a_multiple_of_16_returns_2(tmp_path, capsys, tiny_checkpoint, dry_run):
    src = _page_folder(tmp_path)
    cfg = C.load_config(overrides=["device=cpu", "restore.tile_width=100"])
    rc = restore_cli.main_cli(cfg, _args([src], tiny_checkpoint, tmp_path / "out", dry_run=dry_run))
    assert rc == 2 and "tile_width=100" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_cli_with_a_corrupt_checkpoint_returns_2_naming_it(tmp_path, capsys):
    src = _page_folder(tmp_path)
    ckpt = tmp_path / "broken.pt"
    ckpt.write_bytes(b"\x00" * 100)
    rc = restore_cli.main_cli(C.load_config(overrides=["device=cpu"]), _args([src], ckpt, tmp_path / "out"))
    assert rc == 2 and "broken.pt" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("case", ["no_images", "missing_input", "missing_checkpoint", "dry_missing_checkpoint"])
def test_cli_usage_errors_return_2_with_a_message(tmp_path, capsys, case):
    src = _page_folder(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    inputs = {"no_images": [empty], "missing_input": [tmp_path / "nope"]}.get(case, [src])
    cfg = C.load_config(profile="smoke", overrides=["device=cpu"])
    rc = restore_cli.main_cli(cfg, _args(inputs, tmp_path / "missing.pt", tmp_path / "out",
                                         dry_run=case.startswith("dry")))
    err = capsys.readouterr().err
    assert rc == 2
    assert {"no_images": "no images found", "missing_input": "nope"}.get(case, "missing.pt") in err


def test_tile_size_comes_from_the_checkpoint_unless_the_user_set_it():
    ckpt_cfg = C.to_dict(C.load_config(profile="full"))  # trained at 128 x 1024
    quick = C.load_config(profile="quick")  # profile sets restore tiles to 32 x 256
    r, why = restore_cli.resolve_restore_config(quick, ckpt_cfg)
    assert (r.tile_height, r.tile_width) == (128, 1024) and "checkpoint" in why
    user = C.load_config(profile="quick", overrides=["restore.tile_width=512"])
    r, why = restore_cli.resolve_restore_config(user, ckpt_cfg)
    assert (r.tile_height, r.tile_width) == (128, 512) and "restore.tile_width" in why


def test_cli_restores_good_pages_names_bad_ones_and_returns_1(tmp_path, capsys, tiny_checkpoint):
    cfg = C.load_config(overrides=["device=cpu"])
    src = _page_folder(tmp_path)
    out = tmp_path / "out"
    rc = restore_cli.main_cli(cfg, _args([src], tiny_checkpoint, out))
    captured = capsys.readouterr()
    assert rc == 1
    assert "restored 2, failed 2: corrupt.png, truncated.png" in captured.out
    assert "tile 32 x 256" in captured.err
    assert sorted(p.name for p in out.iterdir()) == ["p1.png.json", "p1.png.png", "p2.jpg.json", "p2.jpg.png"]
    with Image.open(out / "p2.jpg.png") as img:
        assert img.size == (300, 20)  # (W, H): the input size is kept


def test_cli_returns_0_when_every_page_is_restored(tmp_path, capsys, tiny_checkpoint):
    src = _page_folder(tmp_path)
    rc = restore_cli.main_cli(C.load_config(overrides=["device=cpu"]),
                              _args([src / "p1.png", src / "p2.jpg"], tiny_checkpoint, tmp_path / "out"))
    assert rc == 0 and "restored 2, failed 0" in capsys.readouterr().out


def test_a_rerun_keeps_the_first_output_unless_overwrite(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(np.full((20, 40), 200, np.uint8)).save(src / "p.png")
    out = tmp_path / "out"
    first = restore_files(Identity(), [src / "p.png"], out, CPU, restore_cfg(), progress=False)
    assert first.ok and not first.kept
    (out / "p.png.png").write_bytes(b"first output, edited by hand")
    again = restore_files(AddConstant(-0.5), [src / "p.png"], out, CPU, restore_cfg(), progress=False)
    assert not again.ok and again.kept == [(src / "p.png", out / "p.png.png")]
    assert (out / "p.png.png").read_bytes() == b"first output, edited by hand"
    forced = restore_files(Identity(), [src / "p.png"], out, CPU, restore_cfg(), progress=False, overwrite=True)
    assert forced.ok and read_image(out / "p.png.png").shape == (20, 40)


def test_an_unwritable_output_folder_stops_before_any_page(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(np.full((20, 40), 200, np.uint8)).save(src / "p.png")
    blocker = tmp_path / "file"
    blocker.write_text("a file where the output folder should be")
    model = RecordsMode()
    with pytest.raises(ValueError, match="cannot write into the output folder"):
        restore_files(model, [src / "p.png"], blocker / "out", CPU, restore_cfg(), progress=False)
    assert model.batches == []  # nothing computed


# ----------------------------------------------------------------------- what an archive needs
def _scan_16bit_400dpi(path, h=40, w=300):
    """A 16-bit gray TIFF at 400 dpi whose grey levels need more than 8 bits."""
    levels = (np.linspace(20000, 60000, h * w).reshape(h, w)).astype(np.uint16)
    levels[10:14, 30:200] = 3000  # a stroke
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(levels).save(path, dpi=(400, 400))
    return levels


def test_read_page_reports_dpi_depth_and_icc(tmp_path):
    _scan_16bit_400dpi(tmp_path / "s.tif")
    img, info = read_page(tmp_path / "s.tif")
    assert img.dtype == np.float32 and info.bits == 16 and info.dpi == (400.0, 400.0)
    Image.fromarray(np.full((8, 8), 128, np.uint8)).save(tmp_path / "n.png")
    assert read_page(tmp_path / "n.png")[1].dpi is None and read_page(tmp_path / "n.png")[1].bits == 8


def test_restoring_a_400_dpi_16_bit_tiff_with_keep_depth(tmp_path, capsys, tiny_checkpoint):
    """issue 14 item 6: 400-dpi 16-bit in, --keep-depth: 400-dpi 16-bit out, a sidecar naming the
    checkpoint, its sha256, the settings and the version; the name mirrors the input; a rerun
    without --overwrite keeps the first output."""
    scans = tmp_path / "scans"
    _scan_16bit_400dpi(scans / "vol1" / "folio_3.tif")
    (scans / "vol1" / "notes.txt").write_text("not a page")
    out = tmp_path / "out"
    cfg = C.load_config(overrides=["device=cpu", "restore.runtime=torch"])
    rc = restore_cli.main_cli(cfg, _args([scans], tiny_checkpoint, out, recursive=True, keep_depth=True))
    captured = capsys.readouterr()
    assert rc == 0 and "restored 1, failed 0, skipped 1 non-image file(s)" in captured.out
    assert "notes.txt" in captured.err  # named, not silent
    result = out / "vol1" / "folio_3.tif.png"
    with Image.open(result) as img:
        assert img.mode.startswith("I") and img.size == (300, 40)
        assert round(img.info["dpi"][0]) == round(img.info["dpi"][1]) == 400
        levels = np.asarray(img)
    assert levels.max() > 255 and len(np.unique(levels)) > 256  # really 16-bit, not 8-bit scaled up
    record = json.loads((out / "vol1" / "folio_3.tif.json").read_text())
    assert record["checkpoint"]["sha256"] == hashlib.sha256(tiny_checkpoint.read_bytes()).hexdigest()
    assert record["checkpoint"]["path"] == str(tiny_checkpoint.resolve())
    assert record["settings"]["tile_height"] == 32 and record["settings"]["tile_width"] == 256
    assert record["settings"]["runtime"] == "torch" and record["settings"]["text_height"] == "off"
    assert record["text_height"]["factor"] == 1.0 and record["docrestore"]["version"]
    assert record["input"]["relative"] == "vol1/folio_3.tif" and record["input"]["dpi"] == [400.0, 400.0]
    assert record["output"]["bits"] == 16 and record["input"]["bits"] == 16
    first = result.read_bytes()
    rc = restore_cli.main_cli(cfg, _args([scans], tiny_checkpoint, out, recursive=True, keep_depth=False))
    assert rc == 0 and "kept 1 existing output" in capsys.readouterr().out
    assert result.read_bytes() == first  # a rerun without --overwrite keeps the first output


def test_without_keep_depth_the_output_is_8_bit_with_the_input_dpi(tmp_path):
    src = tmp_path / "in" / "s.tif"
    _scan_16bit_400dpi(src)
    report = restore_files(Identity(), [src], tmp_path / "out", CPU, restore_cfg(), progress=False)
    with Image.open(report.ok[0][1]) as img:
        assert img.mode == "L" and round(img.info["dpi"][0]) == 400
    assert json.loads((tmp_path / "out" / "s.tif.json").read_text())["output"]["bits"] == 8


def test_a_gray_icc_profile_is_kept_and_a_colour_one_is_dropped_and_said(tmp_path):
    gray_icc = bytes(16) + b"GRAY" + bytes(108)  # an ICC header names its colour space at 16..20
    rgb_icc = bytes(16) + b"RGB " + bytes(108)
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(np.full((20, 40), 200, np.uint8)).save(src / "g.png", icc_profile=gray_icc)
    Image.fromarray(np.full((20, 40, 3), 200, np.uint8)).save(src / "c.png", icc_profile=rgb_icc)
    out = tmp_path / "out"
    restore_files(Identity(), find_inputs([src]).pages, out, CPU, restore_cfg(), progress=False)
    with Image.open(out / "g.png.png") as img:
        assert img.info.get("icc_profile") == gray_icc
    with Image.open(out / "c.png.png") as img:
        assert "icc_profile" not in img.info
    assert "dropped (RGB" in json.loads((out / "c.png.json").read_text())["output"]["icc_profile"]
