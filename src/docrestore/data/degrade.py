"""Age a clean line: what centuries in an archive do to paper and ink, plus the ERB set.

Input is the clean line (float32, ink ~0 on paper 1.0), a random generator and a severity in
[0, 1]; output is the degraded line and the list of degradations applied, each a dict
``{"name": ..., **params}`` (params rounded, JSON-ready). Severity raises both the chance that a
degradation happens and its strength. Everything is grayscale (a scan of yellowed paper becomes
a darker, textured luminance) and uses only numpy, scipy.ndimage and PIL.

Pixel sizes follow Souibgui et al. (ERB), which are for 128-pixel-high lines, and are scaled to
the line height (``px = height / 128``).
"""

from __future__ import annotations

import functools
import io

import numpy as np
from PIL import Image
from scipy import ndimage

Spec = list[dict]
TEXTURE_SEED = 20240613  # the paper-texture bank is the same in every process and run


def _r(v: float) -> float:
    return round(float(v), 4)


def lowfreq(rng: np.random.Generator, shape: tuple[int, int], cell: float) -> np.ndarray:
    """A smooth random field, about N(0, 1), varying over ``cell`` pixels: a coarse grid of
    normal values enlarged by bicubic interpolation (cheap, unlike filtering full-size noise)."""
    h, w = shape
    gh, gw = max(2, int(np.ceil(h / cell)) + 1), max(2, int(np.ceil(w / cell)) + 1)
    grid = rng.standard_normal((gh, gw)).astype(np.float32)
    return np.asarray(Image.fromarray(grid).resize((w, h), Image.Resampling.BICUBIC))


def grey_filter(img: np.ndarray, k: int, reduce) -> np.ndarray:
    """k x k grey maximum/minimum (``reduce`` = np.maximum / np.minimum), separable, by shifted
    views: several times faster than scipy's min/max filters for the small kernels used here.
    Edges are replicated; the window is placed like scipy's (origin k // 2)."""
    if k <= 1:
        return img
    lo, hi = k // 2, k - 1 - k // 2
    padded = np.pad(img, ((lo, hi), (lo, hi)), mode="edge")
    rows = padded[:, : padded.shape[1] - k + 1].copy()
    for i in range(1, k):
        reduce(rows, padded[:, i:i + rows.shape[1]], out=rows)
    out = rows[: rows.shape[0] - k + 1].copy()
    for i in range(1, k):
        reduce(out, rows[i:i + out.shape[0]], out=out)
    return out


@functools.lru_cache(maxsize=4)
def _texture_bank(shape: tuple[int, int], px: float) -> np.ndarray:
    """Paper fibre texture, 4 x 4 lines large, unit variance: fibres run mostly along the line
    (noise smoothed more along x than y). Made once per line size from a fixed seed, so every
    process has the same bank and samples stay deterministic; each sample takes a random crop."""
    h, w = shape
    bank_rng = np.random.default_rng(TEXTURE_SEED)
    big = ndimage.gaussian_filter(bank_rng.standard_normal((4 * h, 4 * w), dtype=np.float32),
                                  sigma=(0.5 * px, 1.5 * px))
    return big / max(1e-6, float(big.std()))


def texture_crop(rng: np.random.Generator, shape: tuple[int, int], px: float) -> np.ndarray:
    """A random crop (and flip) of the texture bank, (h, w)."""
    bank = _texture_bank(shape, px)
    h, w = shape
    y = int(rng.integers(0, bank.shape[0] - h + 1))
    x = int(rng.integers(0, bank.shape[1] - w + 1))
    crop = bank[y:y + h, x:x + w]
    flip = int(rng.integers(4))
    return crop[::-1 if flip & 1 else 1, ::-1 if flip & 2 else 1]


def _morphology(img: np.ndarray, effect: float, op) -> np.ndarray:
    """A k x k grey ``op`` changes strokes by about k - 1 pixels; for a fractional ``effect`` (in
    pixels) blend the two neighbouring kernel sizes, so a 32-px line gets a proportionate,
    sub-pixel effect instead of none."""
    k = int(np.floor(effect)) + 1
    frac = effect - (k - 1)
    a = grey_filter(img, k, op)
    if frac < 1e-3:
        return a
    return (1 - frac) * a + frac * grey_filter(img, k + 1, op)


# ------------------------------------------------------------------------- ink on the line
def erb_morphology(clean: np.ndarray, rng: np.random.Generator, px: float) -> tuple[np.ndarray, dict]:
    """ERB's dilation (2-3 px kernel) or erosion (2-4 px kernel), as image morphology on the
    light page as in their OpenCV code: dilation (grey maximum) thins the dark strokes, erosion
    (grey minimum) thickens them. ``size`` is the kernel at 128 px, ``effect`` the stroke change
    in pixels at this line height."""
    if rng.random() < 0.5:
        name, size, op = "dilation", int(rng.integers(2, 4)), np.maximum
    else:
        name, size, op = "erosion", int(rng.integers(2, 5)), np.minimum
    effect = (size - 1) * px
    return _morphology(clean, effect, op), {"name": name, "size": size, "effect": _r(effect)}


def paper(rng: np.random.Generator, shape: tuple[int, int], severity: float, px: float) -> tuple[np.ndarray, dict]:
    """Paper as luminance: a yellowed tone, mottling and fibre texture."""
    h, w = shape
    tone = rng.uniform(0.80, 0.97) - 0.12 * severity * rng.random()
    mottle = rng.uniform(0.005, 0.02 + 0.05 * severity)
    fibre = rng.uniform(0.005, 0.015 + 0.03 * severity)
    field = tone + mottle * lowfreq(rng, shape, cell=rng.uniform(0.3, 1.0) * h)
    field += fibre * texture_crop(rng, shape, px)
    return field.astype(np.float32), {"name": "paper", "tone": _r(tone), "mottle": _r(mottle), "fibre": _r(fibre)}


def ink_layer(ink: np.ndarray, rng: np.random.Generator, severity: float, h: int) -> tuple[np.ndarray, dict]:
    """Faded and uneven ink: the ink's coverage scaled down overall and by a smooth field (a pen
    running dry, ink eaten by the paper)."""
    fade = 1.0 - rng.uniform(0.0, 0.35) * severity
    uneven = rng.uniform(0.0, 0.45) * severity
    field = lowfreq(rng, ink.shape, cell=rng.uniform(0.5, 2.0) * h)
    alpha = ink * np.clip(fade * (1.0 - uneven * (0.5 + 0.5 * np.tanh(field))), 0.2, 1.0)
    return alpha, {"name": "ink_fading", "fade": _r(fade), "uneven": _r(uneven)}


# --------------------------------------------------------------------------- on the page
def bleed_through(img: np.ndarray, other: np.ndarray, rng: np.random.Generator, severity: float,
                  px: float) -> tuple[np.ndarray, dict]:
    """The mirrored, blurred, faded writing of another line on the back of the leaf."""
    strength = rng.uniform(0.05, 0.12 + 0.3 * severity)
    sigma = rng.uniform(0.8, 2.5) * px
    shift = int(rng.integers(-img.shape[0] // 4, img.shape[0] // 4 + 1))
    back = ndimage.gaussian_filter(1.0 - other[:, ::-1], sigma=sigma, truncate=3.0)
    back = np.roll(back, shift, axis=0)
    return img * (1.0 - strength * back), {"name": "bleed_through", "strength": _r(strength),
                                           "blur": _r(sigma), "shift": shift}


def foxing(img: np.ndarray, rng: np.random.Generator, severity: float, px: float) -> tuple[np.ndarray, dict]:
    """Foxing: small, soft, irregular brown (here: darker) spots."""
    h, w = img.shape
    n = int(rng.integers(1, 2 + int(8 * severity)))
    out = img.copy()
    for _ in range(n):
        r = rng.uniform(1.5, 3 + 9 * severity) * px
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        depth = rng.uniform(0.05, 0.1 + 0.3 * severity)
        y0, y1 = max(0, int(cy - 3 * r)), min(h, int(cy + 3 * r) + 1)
        x0, x1 = max(0, int(cx - 3 * r)), min(w, int(cx + 3 * r) + 1)
        if y1 <= y0 or x1 <= x0:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1]
        d2 = ((yy - cy) ** 2 + (xx - cx) ** 2) / r ** 2
        rough = 1.0 + 0.3 * rng.standard_normal(d2.shape)
        out[y0:y1, x0:x1] *= 1.0 - depth * np.clip(np.exp(-d2) * rough, 0, 1)
    return out, {"name": "foxing", "spots": n}


def water_stain(img: np.ndarray, rng: np.random.Generator, severity: float) -> tuple[np.ndarray, dict]:
    """A water stain: a large blot, slightly darker inside, with a darker tide line at its edge."""
    h, w = img.shape
    cy, cx = rng.uniform(-0.5, 1.5) * h, rng.uniform(0, w)
    ry, rx = rng.uniform(0.6, 2.0) * h, rng.uniform(0.1, 0.5) * w
    inside = rng.uniform(0.02, 0.04 + 0.08 * severity)
    tide = rng.uniform(0.05, 0.08 + 0.2 * severity)
    # On a coarse grid (stains are smooth), then enlarged.
    sh, sw = max(4, h // 4), max(4, w // 4)
    yy, xx = np.mgrid[0:sh, 0:sw].astype(np.float32)
    d = np.sqrt(((yy * h / sh - cy) / ry) ** 2 + ((xx * w / sw - cx) / rx) ** 2)
    d += 0.15 * lowfreq(rng, (sh, sw), cell=max(2.0, sh / 2))
    stain = inside * (d < 1.0) + tide * np.exp(-((d - 1.0) / 0.04) ** 2)
    stain = np.asarray(Image.fromarray(stain.astype(np.float32)).resize((w, h), Image.Resampling.BILINEAR))
    return img * (1.0 - stain), {"name": "water_stain", "inside": _r(inside), "tide": _r(tide)}


def erb_background_blend(img: np.ndarray, rng: np.random.Generator, severity: float) -> tuple[np.ndarray, dict]:
    """ERB's blend with a stained background at weight 0.3-0.7 (weight of the background; ERB
    used real stained pages, here a synthetic one: tone, blotches and a stain)."""
    h, w = img.shape
    weight = rng.uniform(0.3, 0.3 + 0.4 * max(severity, 0.05))
    tone = rng.uniform(0.6, 0.9)
    background = tone + 0.08 * lowfreq(rng, img.shape, cell=rng.uniform(0.3, 1.0) * h)
    background += 0.04 * lowfreq(rng, img.shape, cell=max(4.0, 0.1 * h))
    return (1.0 - weight) * img + weight * background, {"name": "background_blend", "weight": _r(weight),
                                                        "tone": _r(tone)}


def vertical_lines(img: np.ndarray, rng: np.random.Generator, severity: float, px: float) -> tuple[np.ndarray, dict]:
    """ERB's random vertical lines (folds, ruling, scanner streaks)."""
    h, w = img.shape
    n = int(rng.integers(1, 4))
    out = img.copy()
    for _ in range(n):
        x = int(rng.integers(0, w))
        width = max(1, int(round(rng.uniform(1, 2.5) * px)))
        dark = rng.uniform(0.15, 0.25 + 0.4 * severity)
        along = np.clip(1.0 + 0.3 * lowfreq(rng, (h, 1), cell=max(2.0, h / 3))[:, 0], 0.3, 1.3)
        out[:, x:x + width] *= (1.0 - dark * along)[:, None]
    return out, {"name": "vertical_lines", "count": n}


def illumination(img: np.ndarray, rng: np.random.Generator, severity: float) -> tuple[np.ndarray, dict]:
    """Uneven illumination (a tilted light gradient) and, sometimes, a binding shadow at one side."""
    h, w = img.shape
    angle = rng.uniform(0, 2 * np.pi)
    strength = rng.uniform(0.0, 0.08 + 0.25 * severity)
    ys = np.linspace(-0.5, 0.5, h, dtype=np.float32)[:, None] * (h / w)
    xs = np.linspace(-0.5, 0.5, w, dtype=np.float32)[None, :]
    ramp = np.cos(angle) * xs + np.sin(angle) * ys  # in [-0.5, 0.5]
    light = 1.0 - strength * (ramp + 0.5)
    params = {"name": "illumination", "strength": _r(strength), "angle": _r(angle)}
    if rng.random() < 0.3 + 0.4 * severity:
        depth = rng.uniform(0.1, 0.2 + 0.4 * severity)
        reach = rng.uniform(0.03, 0.15) * w
        side = int(rng.integers(2))  # 0: left edge, 1: right edge
        dist = xs[0] + 0.5 if side == 0 else 0.5 - xs[0]
        shadow = depth * np.exp(-(dist * w) / max(1.0, reach))
        light = light * (1.0 - shadow[None, :])
        params.update(shadow=_r(depth), shadow_reach=_r(reach), shadow_side=["left", "right"][side])
    return img * light, params


def blur(img: np.ndarray, rng: np.random.Generator, severity: float, px: float) -> tuple[np.ndarray, dict]:
    """Out-of-focus scan (Gaussian) or ERB's box blur (1-15 px)."""
    if rng.random() < 0.35:
        # ERB's box blur; large kernels are rare and mostly at high severity.
        size = max(1.0, (1 + 14 * severity * rng.random() ** 2) * px)
        k = max(1, int(round(size)))
        return ndimage.uniform_filter(img, size=k), {"name": "box_blur", "size": k}
    sigma = rng.uniform(0.3, 0.4 + 1.2 * severity) * px
    return ndimage.gaussian_filter(img, sigma=sigma, truncate=3.0), {"name": "gaussian_blur", "sigma": _r(sigma)}


def noise(img: np.ndarray, rng: np.random.Generator, severity: float) -> tuple[np.ndarray, dict]:
    """Sensor noise plus a sprinkle of dust specks."""
    sigma = rng.uniform(0.005, 0.01 + 0.05 * severity)
    out = img + sigma * rng.standard_normal(img.shape, dtype=np.float32)
    specks = int(rng.poisson(0.001 * severity * img.size))
    if specks:
        ys, xs = rng.integers(0, img.shape[0], specks), rng.integers(0, img.shape[1], specks)
        out[ys, xs] *= rng.uniform(0.3, 0.8)
    return out, {"name": "noise", "sigma": _r(sigma), "specks": specks}


def jpeg(img: np.ndarray, rng: np.random.Generator, severity: float) -> tuple[np.ndarray, dict]:
    """JPEG artefacts of a compressed scan."""
    quality = int(rng.integers(max(20, int(90 - 65 * severity)), 96))
    buf = io.BytesIO()
    Image.fromarray(to_uint8(img)).save(buf, format="JPEG", quality=quality)
    buf.seek(0)
    out = np.asarray(Image.open(buf).convert("L"), dtype=np.float32) / 255.0
    return out, {"name": "jpeg", "quality": quality}


def to_uint8(img: np.ndarray) -> np.ndarray:
    """[0, 1] float -> uint8 with rounding (the PNG values)."""
    return (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


# ------------------------------------------------------------------------------- pipeline
def degrade(clean: np.ndarray, rng: np.random.Generator, severity: float,
            bleed=None) -> tuple[np.ndarray, Spec]:
    """Degrade ``clean`` ((H, W) float32, ink ~0 on paper 1) at ``severity`` in [0, 1].

    ``bleed`` is the clean image of another line (same shape), or a function returning one (so
    it is only drawn when used); it shows through the page mirrored.
    Returns the degraded line (float32 in [0, 1]) and the degradations applied, in order."""
    if clean.ndim != 2:
        raise ValueError(f"degrade expects a 2-D (H, W) grayscale line, got shape {clean.shape}")
    h, w = clean.shape
    px = h / 128.0
    s = float(np.clip(severity, 0.0, 1.0))
    spec: Spec = []
    clean = clean.astype(np.float32, copy=False)

    # Strokes first (ERB applies morphology to the text image), then ink on paper.
    text = clean
    if rng.random() < 0.2 + 0.4 * s:
        text, params = erb_morphology(text, rng, px)
        spec.append(params)
    alpha, params = ink_layer(1.0 - text, rng, s, h)
    spec.append(params)
    page, params = paper(rng, (h, w), s, px)
    spec.append(params)
    ink_luminance = rng.uniform(0.02, 0.1 + 0.15 * s)
    spec.append({"name": "ink", "luminance": _r(ink_luminance)})
    img = page * (1.0 - alpha) + ink_luminance * alpha

    if bleed is not None and rng.random() < 0.3 + 0.6 * s:
        other = bleed() if callable(bleed) else bleed
        img, params = bleed_through(img, other, rng, s, px)
        spec.append(params)
    if rng.random() < 0.15 + 0.6 * s:
        img, params = foxing(img, rng, s, px)
        spec.append(params)
    if rng.random() < 0.1 + 0.4 * s:
        img, params = water_stain(img, rng, s)
        spec.append(params)
    if rng.random() < 0.1 + 0.3 * s:
        img, params = erb_background_blend(img, rng, s)
        spec.append(params)
    if rng.random() < 0.05 + 0.3 * s:
        img, params = vertical_lines(img, rng, s, px)
        spec.append(params)
    img, params = illumination(img, rng, s)
    spec.append(params)
    if rng.random() < 0.3 + 0.6 * s:
        img, params = blur(img, rng, s, px)
        spec.append(params)
    img, params = noise(img, rng, s)
    spec.append(params)
    if rng.random() < 0.3 + 0.5 * s:
        img, params = jpeg(img, rng, s)
        spec.append(params)
    return np.clip(img, 0.0, 1.0).astype(np.float32), spec
