"""Fit a page's writing to the scale the generator was trained at.

A generator trained on synthetic lines of ``data.height`` pixels learned strokes and letters of
one size; a real page scanned at 300-600 dpi has letters several times larger (DIBCO pages:
roughly 20-80 px x-height), so at native resolution a tile shows a fraction of a letter. Restore
therefore estimates the page's text height, resizes the page by ``trained / estimated``,
restores, and resizes the result back to the input size.

The text height is one measure used on both sides: the median height of the connected ink
components, area-weighted (:func:`text_height`). On the page the ink comes from a quick binarisation
(:func:`quick_ink`) with specks and large blobs (rules, borders, stains) removed; on the training side it
comes from clean lines rendered exactly as the synthetic data is rendered
(:func:`trained_text_height`: ``data.synth.make_sample`` with the checkpoint's data settings), so
the ratio compares like with like whatever the hand (a component is a letter in print-like hands,
a word in cursive ones).

A checkpoint trained on page patches already saw real pages at their native scale, so it is
restored at native scale (:func:`trained_on_pages`).

The step is opt-in (``restore.text_height`` defaults to ``off``) and never shrinks a page below
``restore.min_scale``: on DIBCO pages a checkpoint trained on 32-px synthetic lines lost the thin
strokes of pages shrunk 3-8x, and no limit scored better than native scale (logbook 2026-11-30).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image
from scipy import ndimage

log = logging.getLogger("docrestore.restore")

# Components smaller than this (in height, px, or area, px^2) are specks: dust, noise, dots.
MIN_HEIGHT = 3
MIN_AREA = 6
# Fewer components than this and the estimate is not trusted (a blank or a picture page).
MIN_COMPONENTS = 15
# The resize factor is kept within these bounds (a wrong estimate must not explode the page).
MIN_FACTOR, MAX_FACTOR = 1 / 8, 4.0
# Lines rendered to measure the training scale (enough for a stable median, ~1 s on a CPU).
TRAINED_LINES = 48


@dataclass
class ScaleDecision:
    """How one page is resized: ``factor`` (1.0 = native), the page's estimated text height (px,
    None when not estimated), the trained text height, and a line saying why."""

    factor: float
    estimated: float | None
    trained: float | None
    reason: str


# ------------------------------------------------------------------------------- estimate
def quick_ink(img: np.ndarray) -> np.ndarray:
    """A quick ink mask (True = ink) of a gray page in [0, 1]: the page divided by its paper
    (a grey closing of a 4x subsampled copy over 15 x 15, i.e. 60 px at full size, smoothed),
    then Otsu's global threshold. Flattening first keeps stains and uneven light from becoming
    ink; a global threshold after it makes fewer noise specks than a local one. Measured on the
    93 DIBCO pages against the same measure on their ground truth: median ratio 0.98, 84 % of
    pages within 25 % (Sauvola instead: 0.85 and 57 %)."""
    from skimage.filters import threshold_otsu

    a = np.asarray(img, dtype=np.float32)
    if a.size == 0 or float(a.max() - a.min()) < 1e-6:
        return np.zeros(a.shape, dtype=bool)
    step = 4 if min(a.shape) >= 64 else 1
    small = a[::step, ::step]
    paper = ndimage.uniform_filter(ndimage.grey_closing(small, size=(15, 15)), 15)
    paper = np.repeat(np.repeat(paper, step, axis=0), step, axis=1)[:a.shape[0], :a.shape[1]]
    flat = np.clip(a / np.maximum(paper, 1e-3), 0.0, 1.0)
    if float(flat.max() - flat.min()) < 1e-6:
        return np.zeros(a.shape, dtype=bool)
    return flat < threshold_otsu(flat)


def components(ink: np.ndarray, page: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Heights (px) and areas (px^2) of the 8-connected ink components that are not specks; on
    a ``page`` also without the blobs taller than a quarter or wider than half of it (borders,
    rules, stains); a single line (``page=False``) keeps its tall components, its letters fill
    its height."""
    labels, n = ndimage.label(ink, structure=np.ones((3, 3), dtype=bool))
    if n == 0:
        return np.zeros(0), np.zeros(0)
    boxes = ndimage.find_objects(labels)
    areas = np.bincount(labels.ravel(), minlength=n + 1)[1:].astype(np.float64)
    heights = np.array([b[0].stop - b[0].start for b in boxes], dtype=np.float64)
    widths = np.array([b[1].stop - b[1].start for b in boxes], dtype=np.float64)
    keep = (heights >= MIN_HEIGHT) & (areas >= MIN_AREA)
    if page:
        keep &= (heights < 0.25 * ink.shape[0]) & (widths < 0.5 * ink.shape[1])
    return heights[keep], areas[keep]


def robust_height(heights: np.ndarray, areas: np.ndarray) -> float | None:
    """The area-weighted median of the component heights: the height below which half of the
    ink lies. Specks, dots and fragments of faded strokes are many but hold little ink, so they
    barely move it (a plain median followed them: 0.4-0.5 of the true height on DIBCO pages).
    None with fewer than ``MIN_COMPONENTS`` components."""
    if heights.size < MIN_COMPONENTS:
        return None
    order = np.argsort(heights, kind="stable")
    cum = np.cumsum(areas[order])
    return float(heights[order][np.searchsorted(cum, cum[-1] / 2)])


def text_height(img: np.ndarray) -> float | None:
    """Estimated text height (px) of a gray page in [0, 1], ink dark: the area-weighted median
    height of the connected components of :func:`quick_ink` after removing specks and large
    blobs. None when the page shows too few components to tell (blank, a picture)."""
    return robust_height(*components(quick_ink(img)))


# -------------------------------------------------------------------------- training side
def trained_on_pages(ckpt_cfg: Any) -> bool:
    """Whether a checkpoint's config (a dict or a Config) says it was trained on page patches:
    ``train.mode == "pages"``, which the page stage sets (every config has a ``pages`` section, so
    its presence says nothing)."""
    cfg = ckpt_cfg if isinstance(ckpt_cfg, dict) else _as_dict(ckpt_cfg)
    if not isinstance(cfg, dict):
        return False
    train = cfg.get("train")
    return isinstance(train, dict) and train.get("mode") == "pages"


def _as_dict(cfg: Any) -> Any:
    from ..config import to_dict

    try:
        return to_dict(cfg)
    except Exception:  # not a config dataclass: nothing to read
        return None


def trained_text_height(ckpt_cfg: Any, lines: int = TRAINED_LINES) -> float:
    """The text height (px, :func:`text_height`'s measure) of the synthetic lines the checkpoint
    was trained on: ``lines`` clean training lines rendered with its data settings (fonts,
    ``data.height`` x ``data.width``, corpus, seed), components pooled over all lines.

    Raises ``ValueError`` naming the cause when the lines cannot be rendered (a font missing on
    this machine) or show too little ink to measure.
    """
    from ..config import Config, from_dict, to_dict

    cfg = ckpt_cfg if isinstance(ckpt_cfg, Config) else from_dict(ckpt_cfg)
    data = to_dict(cfg.data)
    key = (data["height"], data["width"], tuple(data["fonts"]), tuple(data["heldout_fonts"]),
           data["seed"], tuple(data["languages"]), data["corpus_words"], data["corpus_file"],
           data["min_words"], data["max_words"], data["max_chars"], data["archival_tokens"], lines)
    if key not in _TRAINED_CACHE:
        _TRAINED_CACHE[key] = _measure_trained(cfg, lines)
    return _TRAINED_CACHE[key]


_TRAINED_CACHE: dict[tuple, float] = {}


def _measure_trained(cfg, lines: int) -> float:
    from ..data import synth

    try:
        plan = synth.make_plan(cfg)
    except Exception as exc:
        raise ValueError(f"cannot render the checkpoint's training lines to measure its text size "
                         f"({exc}); restore at native scale with --text-height off") from exc
    heights, areas = [], []
    for i in range(lines):
        _, clean, _ = synth.make_sample(plan, "train", i)
        h_i, a_i = components(clean < 128, page=False)
        heights.append(h_i)
        areas.append(a_i)
    h = robust_height(np.concatenate(heights), np.concatenate(areas))
    if h is None:
        raise ValueError(f"the {lines} rendered training lines show too few letters to measure "
                         "their text size; use --text-height off")
    log.info("trained text height: %.1f px (median component height of %d rendered %d x %d lines)",
             h, lines, cfg.data.height, cfg.data.width)
    return h


# ------------------------------------------------------------------------------ decision
def parse_text_height(value: str | float | int) -> str | float:
    """``"auto"``, ``"off"`` or a positive number of pixels; anything else is a ValueError that
    says what is accepted."""
    if isinstance(value, str):
        v = value.strip().lower()
        if v in ("auto", "off"):
            return v
        try:
            value = float(v)
        except ValueError:
            raise ValueError(f"--text-height {value!r} is not auto, off or a number of pixels "
                             "(e.g. --text-height 40)") from None
    px = float(value)
    if not np.isfinite(px) or px <= 0:
        raise ValueError(f"--text-height {value!r} must be a positive number of pixels, auto or off")
    return px


def decide(img: np.ndarray, mode: str | float, trained: float | None,
           on_pages: bool = False, min_factor: float = MIN_FACTOR) -> ScaleDecision:
    """The resize factor for one page. ``mode``: ``"auto"`` (estimate), ``"off"`` (native) or the
    page's text height in px; ``trained``: the checkpoint's text height (None when unknown);
    ``min_factor``: the strongest shrink allowed (``restore.min_scale``; never below
    :data:`MIN_FACTOR`)."""
    if mode == "off":
        return ScaleDecision(1.0, None, trained, "native scale (--text-height off)")
    if on_pages:
        return ScaleDecision(1.0, None, None, "native scale (the checkpoint was trained on pages)")
    if trained is None:
        return ScaleDecision(1.0, None, None, "native scale (the checkpoint's text size is unknown)")
    if mode == "auto":
        est = text_height(img)
        if est is None:
            return ScaleDecision(1.0, None, trained, "native scale (too few letters to estimate "
                                                     "the text height)")
        source = "estimated"
    else:
        est, source = float(mode), "given"
    raw = trained / est
    low = max(float(min_factor), MIN_FACTOR)
    factor = float(np.clip(raw, low, MAX_FACTOR))
    clipped = "" if factor == raw else f", clipped from {raw:.3f}" + (
        " by restore.min_scale" if factor == low and low > MIN_FACTOR else "")
    return ScaleDecision(factor, est, trained,
                         f"text height {est:.1f} px ({source}) -> {trained:.1f} px (trained): "
                         f"scale {factor:.3f}{clipped}")


def resize(img: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resize a float32 gray image to ``shape`` (H, W): area-averaging when shrinking (no
    aliasing of thin strokes), bicubic when enlarging."""
    h, w = shape
    if (h, w) == img.shape:
        return img.astype(np.float32, copy=False)
    pil = Image.fromarray(np.ascontiguousarray(img, dtype=np.float32), mode="F")
    shrink = h * w < img.shape[0] * img.shape[1]
    method = Image.Resampling.BOX if shrink else Image.Resampling.BICUBIC
    return np.asarray(pil.resize((w, h), method), dtype=np.float32)


def scaled_shape(shape: tuple[int, int], factor: float) -> tuple[int, int]:
    return max(1, round(shape[0] * factor)), max(1, round(shape[1] * factor))
