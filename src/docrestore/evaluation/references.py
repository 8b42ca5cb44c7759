"""Reference binarisations of the paper's main table: Otsu (global) and Sauvola (local).

Both return float32 images in {0, 1} with 1.0 = paper and 0.0 = ink, the same range and polarity
as the generator's restorations, so PSNR, SSIM and the readers' CER/WER apply to them unchanged.
A constant image (no contrast, hence no text) comes back as all paper.
"""

from __future__ import annotations

import numpy as np

from .metrics import _as_image
from skimage.filters import threshold_otsu, threshold_sauvola

__all__ = ["otsu", "sauvola"]


def _grey(img) -> np.ndarray:
    return _as_image(img, "the image")


def _is_constant(a: np.ndarray) -> bool:
    return a.size == 0 or float(a.max() - a.min()) == 0.0


def _paper(a: np.ndarray) -> np.ndarray:
    return np.ones(a.shape, dtype=np.float32)


def otsu(img) -> np.ndarray:
    """Otsu's global threshold (scikit-image threshold_otsu, 256 bins): paper where img > t."""
    a = _grey(img)
    if _is_constant(a):  # Otsu returns the single grey value itself, which would make it all ink
        return _paper(a)
    return (a > threshold_otsu(a)).astype(np.float32)


def sauvola(img, window: int = 25, k: float = 0.2, r: float = 0.5) -> np.ndarray:
    """Sauvola's local threshold t = m·(1 + k·(s/r − 1)) over a ``window``×``window`` neighbourhood
    (scikit-image threshold_sauvola): paper where img > t.

    ``r`` is the dynamic range of the standard deviation: Sauvola's 128 of 8-bit images, scaled to
    [0, 1] images as 0.5 (scikit-image's own default for float images would be 1.0).
    """
    if window < 3 or window % 2 == 0:
        raise ValueError(f"Sauvola window must be odd and at least 3, got {window}")
    a = _grey(img)
    if _is_constant(a):
        return _paper(a)
    return (a > threshold_sauvola(a, window_size=window, k=k, r=r)).astype(np.float32)
