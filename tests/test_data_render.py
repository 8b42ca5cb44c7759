"""Rendering a line in a hand, and the degradations (paper, ink and the ERB set)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import ndimage

from docrestore.data import degrade as DG
from docrestore.data import fonts as F
from docrestore.data import render as RD


@pytest.fixture(scope="module")
def sans():
    return F.Font.load("DejaVu Sans")


def test_render_line_fits_the_line_and_varies_per_rendering(sans):
    mask, style = RD.render_line("den 12 Maart 1687", sans, 32, 256, np.random.default_rng(0))
    assert mask.shape == (32, 256) and mask.dtype == np.uint8
    assert mask.max() > 200 and (mask > 128).mean() > 0.03  # there is ink
    assert (mask[:, :2] == 0).all()  # left margin
    clean = RD.clean_from_mask(mask)
    assert clean.dtype == np.float32 and clean.max() == 1.0 and clean.min() < 0.2
    again, _ = RD.render_line("den 12 Maart 1687", sans, 32, 256, np.random.default_rng(0))
    other, _ = RD.render_line("den 12 Maart 1687", sans, 32, 256, np.random.default_rng(1))
    assert np.array_equal(mask, again) and not np.array_equal(mask, other)
    assert -0.2 < style.slant < 0.4 and set(style.as_dict()) >= {"slant", "wobble", "weight", "elastic"}


def test_long_lines_shrink_to_the_width_and_keep_their_aspect(sans):
    rng = np.random.default_rng(3)
    mask, _ = RD.render_line("Ontfangen van den E. Heer Gouverneur Generaal fl. 1250", sans, 64, 256, rng)
    cols = np.flatnonzero(mask.max(axis=0) > 64)
    rows = np.flatnonzero(mask.max(axis=1) > 64)
    assert cols[-1] < 256 and rows.size < 40  # fitted by width, so it is far less tall than the line


def test_glyph_transform_keeps_the_pen_point():
    font = F.truetype(F.Font.load("DejaVu Sans").path, 40)
    ascent = font.getmetrics()[0]
    plain, dx, dy = RD._glyph(font, "l", ascent, 1.0, 0.0, 0.0)
    left, top, _, _ = font.getbbox("l")
    assert (dx, dy) == (left - 1, top - 1 - ascent)  # untransformed: the glyph's own box
    slanted, sdx, sdy = RD._glyph(font, "l", ascent, 1.0, 0.0, 0.3)
    assert slanted.width > plain.width and sdy == dy  # the shear widens, not lifts


def test_grey_filter_matches_scipy():
    img = np.random.default_rng(0).random((17, 23)).astype(np.float32)
    for k in (2, 3, 4):
        assert np.array_equal(DG.grey_filter(img, k, np.maximum), ndimage.maximum_filter(img, k, mode="nearest"))
        assert np.array_equal(DG.grey_filter(img, k, np.minimum), ndimage.minimum_filter(img, k, mode="nearest"))


def test_erb_morphology_thins_or_thickens_strokes_scaled_to_the_height():
    clean = np.ones((128, 256), np.float32)
    clean[40:90, 50:60] = 0.0  # a 10-px stroke
    ink = lambda img: float((img < 0.5).sum())  # noqa: E731
    thin = DG._morphology(clean, 2.0, np.maximum)  # ERB "dilation", 3 px kernel at 128 px
    thick = DG._morphology(clean, 3.0, np.minimum)
    assert ink(thin) < ink(clean) < ink(thick)
    small = np.ones((32, 64), np.float32)
    small[10:22, 12:15] = 0.0
    partial = DG._morphology(small, 0.5, np.maximum)  # sub-pixel at 32 px: a blend, not nothing
    assert 0.0 < float(np.abs(partial - small).max()) < 1.0


def test_degrade_is_deterministic_bounded_and_records_its_spec():
    rng = np.random.default_rng(0)
    clean = np.ones((32, 256), np.float32)
    clean[10:22, 20:200:6] = 0.0
    bleed = np.ones_like(clean)
    bleed[8:20, 40:230:5] = 0.0
    out, spec = DG.degrade(clean, np.random.default_rng(5), 0.8, bleed=bleed)
    again, spec2 = DG.degrade(clean, np.random.default_rng(5), 0.8, bleed=lambda: bleed)
    assert np.array_equal(out, again) and spec == spec2
    assert out.shape == clean.shape and out.dtype == np.float32 and 0.0 <= out.min() and out.max() <= 1.0
    names = [d["name"] for d in spec]
    assert {"paper", "ink_fading", "ink", "illumination", "noise"} <= set(names)
    json.dumps(spec)  # JSON-ready for the manifest
    assert not np.array_equal(out, clean)
    with pytest.raises(ValueError, match="2-D"):
        DG.degrade(clean[None], rng, 0.5)


def test_higher_severity_degrades_more():
    clean = np.ones((32, 256), np.float32)
    clean[8:24, 10:240:7] = 0.0

    def mean_psnr(severity):
        values = []
        for seed in range(12):
            out, _ = DG.degrade(clean, np.random.default_rng(seed), severity, bleed=clean)
            values.append(10 * np.log10(1.0 / float(np.mean((out - clean) ** 2))))
        return float(np.mean(values))

    assert mean_psnr(1.0) < mean_psnr(0.0) - 1.0


def test_every_degradation_can_happen():
    clean = np.ones((32, 128), np.float32)
    clean[8:24, 10:120:7] = 0.0
    seen = set()
    for seed in range(60):
        seen |= {d["name"] for d in DG.degrade(clean, np.random.default_rng(seed), 1.0, bleed=clean)[1]}
    assert seen >= {"paper", "ink_fading", "ink", "bleed_through", "foxing", "water_stain", "background_blend",
                    "vertical_lines", "illumination", "noise", "jpeg"}
    assert seen & {"dilation", "erosion"} and seen & {"gaussian_blur", "box_blur"}


def test_background_blend_weight_is_erb_range():
    img = np.full((16, 32), 0.9, np.float32)
    for seed in range(20):
        _, params = DG.erb_background_blend(img, np.random.default_rng(seed), 1.0)
        assert 0.3 <= params["weight"] <= 0.7
