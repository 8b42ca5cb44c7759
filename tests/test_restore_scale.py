"""Fitting a page's writing to the generator's training scale (restore/scale.py)."""

from __future__ import annotations

import argparse

import matplotlib.font_manager as fm
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont
from torch import nn

from docrestore import config as C
from docrestore import device as D
from docrestore.restore import cli as restore_cli
from docrestore.restore import scale as S
from docrestore.restore.tiling import restore_files

CPU = D.pick_device("cpu")
WORDS = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor".split()


class Identity(nn.Module):
    def forward(self, x):
        return x.clone()


def text_page(font_px: int, seed: int = 0, shape=(900, 1400)) -> tuple[np.ndarray, np.ndarray]:
    """A page of text lines at font size ``font_px``: its exact ink mask and a degraded gray scan
    of it (uneven paper, a dark stain, noise, slight blur)."""
    rng = np.random.default_rng(seed)
    font = ImageFont.truetype(fm.findfont("DejaVu Sans"), font_px)
    mask = Image.new("L", shape[::-1], 0)
    draw = ImageDraw.Draw(mask)
    y = font_px
    while y < shape[0] - 2 * font_px:
        line = " ".join(rng.choice(WORDS, 12))
        draw.text((font_px, y), line, font=font, fill=255)
        y += int(1.8 * font_px)
    ink = np.asarray(mask) > 127
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float32)
    paper = 0.85 - 0.15 * (xx / shape[1]) + 0.05 * np.sin(yy / 97.0)
    paper -= 0.2 * np.exp(-((yy - 300) ** 2 + (xx - 500) ** 2) / (2 * 120.0 ** 2))  # a stain
    page = np.where(ink, 0.2, paper) + rng.normal(0, 0.04, shape)
    blurred = Image.fromarray(np.clip(page, 0, 1).astype(np.float32), mode="F")
    return ink, np.asarray(blurred.resize((shape[1] // 2, shape[0] // 2), Image.Resampling.BOX)
                           .resize(shape[::-1], Image.Resampling.BILINEAR), dtype=np.float32)


@pytest.mark.parametrize("font_px", [24, 56])
def test_estimate_on_rendered_text_of_known_height_is_within_15_percent(font_px):
    ink, page = text_page(font_px)
    known = S.robust_height(*S.components(ink))
    est = S.text_height(page)
    assert known is not None and est is not None
    assert abs(est - known) / known < 0.15, (est, known)


def test_the_known_height_follows_the_font_size():
    small = S.robust_height(*S.components(text_page(24)[0]))
    large = S.robust_height(*S.components(text_page(56)[0]))
    assert abs(large / small - 56 / 24) / (56 / 24) < 0.15


def test_a_blank_page_gives_no_estimate_and_native_scale():
    blank = np.full((200, 300), 0.9, dtype=np.float32)
    assert S.text_height(blank) is None
    d = S.decide(blank, "auto", trained=10.0)
    assert d.factor == 1.0 and "too few" in d.reason


def test_decide_modes():
    page = text_page(40)[1]
    assert S.decide(page, "off", 10.0).factor == 1.0
    assert S.decide(page, 20.0, 10.0).factor == pytest.approx(0.5)
    assert S.decide(page, 1000.0, 10.0).factor == S.MIN_FACTOR  # clipped, and said so
    assert "clipped" in S.decide(page, 1000.0, 10.0).reason
    auto = S.decide(page, "auto", 10.0)
    assert auto.estimated and auto.factor == pytest.approx(10.0 / auto.estimated)
    pages = S.decide(page, "auto", 10.0, on_pages=True)
    assert pages.factor == 1.0 and "pages" in pages.reason


def test_min_scale_limits_the_shrink_and_says_so():
    page = text_page(40)[1]
    limited = S.decide(page, 1000.0, 10.0, min_factor=0.8)
    assert limited.factor == 0.8 and "restore.min_scale" in limited.reason
    assert S.decide(page, 20.0, 10.0, min_factor=0.4).factor == pytest.approx(0.5)  # within the limit
    assert S.decide(page, 5.0, 10.0, min_factor=0.8).factor == pytest.approx(2.0)  # enlarging is not limited
    assert S.decide(page, 1000.0, 10.0, min_factor=0.01).factor == S.MIN_FACTOR  # never below the floor
    with pytest.raises(C.ConfigError, match="restore.min_scale"):
        C.load_config(profile="smoke", overrides=["restore.min_scale=0.05"])


def test_text_height_is_off_by_default_and_the_dry_run_says_why(tmp_path, capsys):
    assert C.load_config(profile="smoke").restore.text_height == "off"
    src = tmp_path / "p.png"
    Image.fromarray(np.full((40, 60), 200, np.uint8)).save(src)
    args = argparse.Namespace(inputs=[str(src)], checkpoint=str(tmp_path / "missing.pt"),
                              out=str(tmp_path / "out"), dry_run=True, text_height=None)
    restore_cli.main_cli(C.load_config(profile="smoke", overrides=["device=cpu", "restore.min_scale=0.5"]), args)
    out = capsys.readouterr().out
    assert "auto measured worse than native scale" in out and "min_scale has no effect" in out


@pytest.mark.parametrize("value,expected", [("auto", "auto"), ("OFF", "off"), ("42", 42.0), (12, 12.0)])
def test_parse_text_height(value, expected):
    assert S.parse_text_height(value) == expected


@pytest.mark.parametrize("value", ["big", "0", "-3", "nan"])
def test_parse_text_height_rejects_nonsense(value):
    with pytest.raises(ValueError, match="text-height"):
        S.parse_text_height(value)


def test_config_rejects_a_bad_text_height():
    with pytest.raises(C.ConfigError, match="restore.text_height"):
        C.load_config(profile="smoke", overrides=["restore.text_height=large"])


@pytest.mark.parametrize("cfg,expected", [
    ({"data": {"height": 32}}, False),
    ({"pages": {"train_sets": ["DIBCO2009"]}}, False),  # every config has a pages section
    ({"train": {"mode": "lines"}}, False),
    ({"train": {"mode": "pages"}}, True),
])
def test_trained_on_pages_reads_the_checkpoint_config(cfg, expected):
    assert S.trained_on_pages(cfg) is expected


def test_trained_on_pages_is_false_for_the_synthetic_line_config():
    assert S.trained_on_pages(C.load_config(profile="smoke")) is False


def test_the_page_stage_marks_its_config_as_pages():
    from docrestore.training.pages import apply_page_budget

    assert S.trained_on_pages(apply_page_budget(C.load_config(profile="smoke"))) is True


def test_restore_at_auto_scale_returns_the_input_size(tmp_path):
    ink, page = text_page(40, shape=(301, 457))
    src = tmp_path / "page.png"
    Image.fromarray((page * 255).astype(np.uint8)).save(src)
    r = C.RestoreConfig(tile_height=32, tile_width=64, overlap=0.25, batch_size=8, min_scale=0.125)
    report = restore_files(Identity(), [src], tmp_path / "out", CPU, r, progress=False,
                           text_height="auto", trained_height=12.0)
    decision = report.scales[src]
    assert decision.estimated and decision.factor < 0.6  # really resized
    with Image.open(report.ok[0][1]) as out:
        assert out.size == (457, 301)
        restored = np.asarray(out, dtype=np.float32) / 255
    # Identity at a smaller scale and back: the page, a little softer.
    assert np.abs(restored - page).mean() < 0.08


def test_trained_text_height_is_measured_from_rendered_training_lines():
    cfg = C.load_config(profile="smoke")
    h = S.trained_text_height(cfg, lines=6)
    # The writing band fills 66-84 % of the line (render.BAND_FILL); letters are smaller.
    assert 0.15 * cfg.data.height < h < 0.9 * cfg.data.height


def test_cli_bad_text_height_returns_2(tmp_path, capsys):
    src = tmp_path / "p.png"
    Image.fromarray(np.full((40, 60), 200, np.uint8)).save(src)
    args = argparse.Namespace(inputs=[str(src)], checkpoint=str(tmp_path / "missing.pt"),
                              out=str(tmp_path / "out"), dry_run=True, text_height="huge")
    rc = restore_cli.main_cli(C.load_config(profile="smoke", overrides=["device=cpu"]), args)
    assert rc == 2 and "huge" in capsys.readouterr().err
