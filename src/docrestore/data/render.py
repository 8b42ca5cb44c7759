"""Write a line of text in a font as a hand would: glyph by glyph, never twice the same.

Per line: slant, a wobbling baseline, letter and word spacing, stroke weight and an elastic
(smooth random) warp. Per glyph: small changes of size, angle and height. The line is drawn as
an ink mask (uint8, 255 = ink) with PIL, then fitted into ``height x width`` keeping its aspect
ratio, left-aligned after a margin and padded with paper. The clean image is ``1 - mask/255``:
ink ~0 on white 1.0.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from .degrade import grey_filter
from .fonts import Font, truetype

# The writing band (ascender top to descender bottom) fills this share of the line height, so
# there is paper above and below the text as in a cropped line of a page.
BAND_FILL = (0.66, 0.84)
# The left margin is this share (a random value in the range) of half the line height.
LEFT_MARGIN = (0.08, 0.35)


@dataclass
class Style:
    """Per-line hand variation; lengths are shares of the font size."""

    slant: float          # horizontal shear: x shift per pixel above the baseline (+ leans right)
    wobble: float         # baseline wave amplitude
    wobble_period: float  # baseline wave length
    wobble_phase: float
    spacing: float        # extra space after each glyph (may be negative: cramped writing)
    word_spacing: float   # factor on the font's space width
    weight: float         # stroke weight: < 0 lighter edges, 0 as designed, 1 heavy
    glyph_scale: float    # std of the per-glyph size factor
    glyph_angle: float    # std of the per-glyph rotation, degrees
    glyph_shift: float    # std of the per-glyph vertical shift
    elastic: float        # amplitude of the smooth random warp

    def as_dict(self) -> dict:
        return {k: round(float(v), 4) for k, v in asdict(self).items()}


def sample_style(rng: np.random.Generator) -> Style:
    """A random hand; ranges chosen so every line stays legible."""
    return Style(
        slant=float(rng.uniform(-0.15, 0.35)),
        wobble=float(rng.uniform(0.0, 0.05)),
        wobble_period=float(rng.uniform(3.0, 12.0)),
        wobble_phase=float(rng.uniform(0, 2 * np.pi)),
        spacing=float(rng.uniform(-0.03, 0.08)),
        word_spacing=float(rng.uniform(0.8, 1.8)),
        weight=float(rng.uniform(-0.5, 1.0)),
        glyph_scale=float(rng.uniform(0.0, 0.06)),
        glyph_angle=float(rng.uniform(0.0, 4.0)),
        glyph_shift=float(rng.uniform(0.0, 0.03)),
        elastic=float(rng.uniform(0.0, 0.035)),
    )


def _glyph(font, ch: str, ascent: int, scale: float, angle_deg: float,
           slant: float) -> tuple[Image.Image, int, int]:
    """The glyph of ``ch`` as an ink mask, scaled and rotated about its point on the baseline
    and sheared by ``slant`` (shearing each glyph about the baseline is the line's slant, at no
    extra cost). Returns the image and the offset of its top-left corner from the pen position
    on the baseline."""
    img, left, top = _raw_glyph(font, ch)
    w, h = img.size
    ref_x, ref_y = 1.0 - left, 1.0 - top + ascent  # the pen point on the baseline
    a = np.deg2rad(angle_deg)
    cos, sin = scale * np.cos(a), scale * np.sin(a)
    # forward = shear @ rotation-scale; y grows downwards, so -slant leans the tops right.
    f00, f01, f10, f11 = cos - slant * sin, -sin - slant * cos, sin, cos
    xs = np.array([0.0, w, 0.0, w]) - ref_x
    ys = np.array([0.0, 0.0, h, h]) - ref_y
    cx, cy = f00 * xs + f01 * ys, f10 * xs + f11 * ys
    lo_x, lo_y = np.floor(cx.min()), np.floor(cy.min())
    size = (int(np.ceil(cx.max() - lo_x)) + 1, int(np.ceil(cy.max() - lo_y)) + 1)
    det = f00 * f11 - f01 * f10
    i00, i01, i10, i11 = f11 / det, -f01 / det, -f10 / det, f00 / det
    # Output pixel o samples the input at inverse @ (o + lo) + ref.
    matrix = (i00, i01, i00 * lo_x + i01 * lo_y + ref_x, i10, i11, i10 * lo_x + i11 * lo_y + ref_y)
    img = img.transform(size, Image.Transform.AFFINE, matrix, resample=Image.Resampling.BILINEAR)
    return img, int(lo_x), int(lo_y)


@functools.lru_cache(maxsize=4096)
def _raw_glyph(font, ch: str) -> tuple[Image.Image, int, int]:
    """The untransformed glyph mask with a 1-pixel border, and its bbox's left/top relative to
    the pen (ascender-line anchor). Cached: FreeType rasterising costs more than the transform,
    and font sizes are quantised so the cache hits."""
    left, top, right, bottom = font.getbbox(ch)
    img = Image.new("L", (right - left + 2, bottom - top + 2), 0)
    ImageDraw.Draw(img).text((1 - left, 1 - top), ch, font=font, fill=255)
    return img, left, top


def _warp_mesh(width: int, height: int, amp: float, cell: float, rng: np.random.Generator) -> list:
    """A PIL MESH for a smooth random (elastic) warp of amplitude ``amp`` pixels that fades to
    nothing at the image border, so no ink is pushed out of the line."""
    nx = max(1, int(np.ceil(width / cell)))
    ny = 2
    xs = np.linspace(0, width, nx + 1)
    ys = np.linspace(0, height, ny + 1)
    jitter = rng.normal(0.0, amp, size=(2, ny + 1, nx + 1))
    jitter[1] *= 0.4  # less vertical than horizontal play: letters wander, the x-height holds
    # Smooth along x so neighbouring cells move together (an elastic, not a shattered, warp).
    jitter[:, :, 1:-1] = (jitter[:, :, :-2] + 2 * jitter[:, :, 1:-1] + jitter[:, :, 2:]) / 4
    jitter[:, :, 0] = jitter[:, :, -1] = 0.0
    jitter[:, 0, :] = jitter[:, -1, :] = 0.0
    src_x = xs[None, :] + jitter[0]
    src_y = ys[:, None] + jitter[1]
    mesh = []
    for j in range(ny):
        for i in range(nx):
            box = (int(xs[i]), int(ys[j]), int(xs[i + 1]), int(ys[j + 1]))
            quad = (src_x[j, i], src_y[j, i], src_x[j + 1, i], src_y[j + 1, i],
                    src_x[j + 1, i + 1], src_y[j + 1, i + 1], src_x[j, i + 1], src_y[j, i + 1])
            mesh.append((box, tuple(float(v) for v in quad)))
    return mesh


def render_mask(text: str, font: Font, size: int, rng: np.random.Generator, style: Style,
                per_glyph: bool = True) -> tuple[Image.Image, tuple[int, int]]:
    """Draw ``text`` glyph by glyph as an ink mask (mode L, ink 255) at font size ``size``, with
    the style's slant, baseline wobble, spacing and per-glyph jitter.

    Returns the mask cropped to the text, and the rows (top, bottom) of the writing band in it,
    which the caller scales to the line height. ``per_glyph=False`` draws the line in one go
    (for the faint bleed-through line, where glyph detail is never seen)."""
    pil_font = truetype(font.path, size)
    ascent, _ = pil_font.getmetrics()
    band_top, band_bottom = font.band
    origin_y = int(size * (0.3 + max(0.0, -band_top)))  # the ascender line, room above for wobble
    baseline = origin_y + ascent
    canvas_h = int(origin_y + size * (max(band_bottom, ascent / size) + 0.4))
    pad = int(size * 0.5 + abs(style.slant) * canvas_h)
    advances = [pil_font.getlength(c) for c in text]
    est_width = int(sum(advances) * (1.2 + max(0.0, style.word_spacing - 1))
                    + max(0.0, style.spacing) * size * len(text) + 2 * pad)
    canvas = Image.new("L", (est_width, canvas_h), 0)
    x = float(pad)
    if per_glyph:
        two_pi = 2 * np.pi / (style.wobble_period * size)
        for ch, adv in zip(text, advances):
            if ch.isspace():
                x += adv * style.word_spacing + style.spacing * size
                continue
            scale = float(np.clip(1 + rng.normal(0, style.glyph_scale), 0.85, 1.15))
            angle = float(rng.normal(0, style.glyph_angle))
            glyph, dx, dy = _glyph(pil_font, ch, ascent, scale, angle, style.slant)
            shift = (style.wobble * size * np.sin(two_pi * x + style.wobble_phase)
                     + rng.normal(0, style.glyph_shift) * size)
            canvas.paste(255, (int(round(x)) + dx, int(round(baseline + dy + shift))), mask=glyph)
            x += adv * scale + style.spacing * size
    else:
        ImageDraw.Draw(canvas).text((x, origin_y), text, font=pil_font, fill=255)
        if style.slant:
            matrix = (1.0, style.slant, -style.slant * baseline, 0.0, 1.0, 0.0)
            canvas = canvas.transform(canvas.size, Image.Transform.AFFINE, matrix,
                                      resample=Image.Resampling.BILINEAR)

    band = (int(origin_y + band_top * size), int(np.ceil(origin_y + band_bottom * size)))
    bbox = canvas.getbbox()
    if bbox is None:  # nothing drawn (a line of spaces): keep an empty band
        return canvas.crop((0, band[0], 1, band[1])), (0, band[1] - band[0])
    left, ink_top, right, ink_bottom = bbox
    top_row, bottom_row = min(ink_top, band[0]), max(ink_bottom, band[1])
    cropped = canvas.crop((left, top_row, right, bottom_row))
    return cropped, (band[0] - top_row, band[1] - top_row)


def apply_weight(mask: Image.Image, weight: float, band_px: float) -> Image.Image:
    """Stroke weight as a tone curve on the ink mask. Heavier: blur the strokes by up to 3% of
    the writing band and count a faint blur as full ink, which widens every stroke yet keeps
    hairlines. Lighter: a gamma on the anti-aliased edges (a threshold would erase the hairlines
    of pointed-pen hands such as Ecolier)."""
    levels = np.arange(256, dtype=np.float64) / 255.0
    if weight > 0:
        radius = 0.03 * weight * band_px
        if radius >= 0.3:
            mask = mask.filter(ImageFilter.BoxBlur(radius))
        levels = np.clip((levels - 0.08) / 0.3, 0.0, 1.0)
    else:
        levels = levels ** (1.0 - 0.8 * weight)
    return mask.point((levels * 255).round().astype(np.uint8).tolist())


def warp(mask: Image.Image, amp: float, cell: float, rng: np.random.Generator) -> Image.Image:
    """Smooth random warp (elastic jitter) of the fitted line."""
    if amp <= 0:
        return mask
    mesh = _warp_mesh(mask.width, mask.height, amp, cell, rng)
    return mask.transform(mask.size, Image.Transform.MESH, mesh, resample=Image.Resampling.BILINEAR)


# Ink beyond the writing band (swashes, long descenders) may reach this far past the line's
# edges before the whole line is shrunk: real line crops cut their neighbours' flourishes too.
OVERFLOW = 1.15


def fit_line(mask: Image.Image, band: tuple[int, int], height: int, width: int,
             rng: np.random.Generator) -> tuple[Image.Image, float]:
    """Scale the mask so its writing band fills 66-84% of ``height`` (smaller if the text would
    be wider than the line), centre the band vertically, left-align after a margin, pad with
    paper. Returns the (height, width) mask (mode L, ink 255) and the band's height in pixels."""
    band_h = max(1, band[1] - band[0])
    scale = rng.uniform(*BAND_FILL) * height / band_h
    scale = min(scale, OVERFLOW * height / mask.height)
    left = int(rng.uniform(*LEFT_MARGIN) * height * 0.5)
    right_margin = int(0.04 * width)
    scale = min(scale, (width - left - right_margin) / mask.width)
    new_w = max(1, int(round(mask.width * scale)))
    new_h = max(1, int(round(mask.height * scale)))
    resized = mask.resize((new_w, new_h), Image.Resampling.BILINEAR, reducing_gap=2.0)
    resized = keep_thin_strokes(resized)
    band_mid = (band[0] + band[1]) / 2 * scale
    top = int(round(height / 2 - band_mid + rng.normal(0, 0.03) * height))
    top = int(np.clip(top, min(0, height - new_h), max(0, height - new_h)))  # keep most ink inside
    out = Image.new("L", (width, height), 0)
    out.paste(resized, (left, top))
    return out, band_h * scale


def keep_thin_strokes(mask: Image.Image) -> Image.Image:
    """Bring faint thin strokes to full ink: each pixel is divided by the strongest ink in its
    3 x 3 neighbourhood (at least 96/255). Thick strokes are untouched; a hairline that
    downscaling left at 30% grey (pointed-pen hands such as Ecolier) becomes a dark 1-px line,
    so the clean target stays legible at 32 px."""
    arr = np.asarray(mask, dtype=np.float32)
    peak = grey_filter(arr, 3, np.maximum)
    arr = np.clip(arr * (255.0 / np.clip(peak, 96.0, 255.0)), 0, 255)
    return Image.fromarray((arr + 0.5).astype(np.uint8))


# Render at this multiple of the final scale (anti-aliasing quality), but at least MIN_SIZE px.
OVERSAMPLE = 1.0
MIN_SIZE = 24


def font_size_for(font: Font, text: str, height: int, width: int, style: Style) -> int:
    """The font size to draw at: near the final scale times OVERSAMPLE. Long lines end up
    shrunk to fit the width, so drawing them at full height would only waste time."""
    top, bottom = font.band
    band = max(0.2, bottom - top)
    size = max(MIN_SIZE, int(round(height * max(BAND_FILL) / band * OVERSAMPLE)))
    pil_font = truetype(font.path, size)
    est_width = (pil_font.getlength(text) * (1 + max(0.0, style.spacing)) + abs(style.slant) * band * size)
    est_scale = max(BAND_FILL) * height / (band * size)  # final scale if the height decides
    if est_width * est_scale > width:
        size = int(round(size * width / (est_width * est_scale)))
    # Quantise to steps of ~6% so the glyph cache is shared between lines.
    step = int(round(np.log(max(size, MIN_SIZE) / MIN_SIZE) / np.log(1.06)))
    return int(np.clip(round(MIN_SIZE * 1.06 ** step), MIN_SIZE, 400))


def render_line(text: str, font: Font, height: int, width: int, rng: np.random.Generator,
                per_glyph: bool = True) -> tuple[np.ndarray, Style]:
    """The ink mask (height, width) uint8 of ``text`` in ``font`` with a random hand style."""
    style = sample_style(rng)
    size = font_size_for(font, text, height, width, style)
    if not per_glyph:  # the bleed-through line is blurred anyway: half the pixels is plenty
        size = max(MIN_SIZE // 2, size // 2)
    mask, band = render_mask(text, font, size, rng, style, per_glyph=per_glyph)
    line, band_px = fit_line(mask, band, height, width, rng)
    if per_glyph:
        line = warp(line, style.elastic * band_px, cell=max(8.0, 1.5 * band_px), rng=rng)
    line = apply_weight(line, style.weight, band_px)
    return np.asarray(line), style


def clean_from_mask(mask: np.ndarray) -> np.ndarray:
    """Ink mask (uint8, 255 = ink) -> clean image float32 in [0, 1], ink 0 on paper 1."""
    return 1.0 - mask.astype(np.float32) / 255.0
