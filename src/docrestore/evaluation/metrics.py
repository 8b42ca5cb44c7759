"""Image and text metrics of the paper: PSNR, SSIM, CER, WER and the DIBCO binarisation metrics.

NumPy arrays in, Python floats out. Grey images are float arrays in [0, 1] (ink dark on light
paper), shape (H, W) or (1, H, W). Binary images are boolean arrays with ``True`` where the pixel
is ink (use :func:`binarize`). Every definition and setting is written down in docs/metrics.md,
which the paper cites.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Sequence

import numpy as np
from scipy import ndimage
from skimage.metrics import structural_similarity
from skimage.morphology import skeletonize

PSNR_CAP_DB = 100.0  # identical images give 100 dB instead of inf, so means over lines stay finite

__all__ = [
    "PSNR_CAP_DB", "psnr", "ssim", "normalize_text", "edit_distance", "cer", "wer", "cer_corpus",
    "wer_corpus", "char_edits", "word_edits", "binarize", "fmeasure", "pseudo_fmeasure", "drd",
    "psnr_binary", "drd_weights",
]


# ------------------------------------------------------------------------------ grey images
def _as_image(img, name: str) -> np.ndarray:
    """(H, W) float64 view of a grey image; (1, H, W) is accepted and squeezed."""
    a = np.asarray(img, dtype=np.float64)
    if a.ndim == 3 and a.shape[0] == 1:
        a = a[0]
    if a.ndim != 2:
        raise ValueError(f"{name} must be a grey image of shape (H, W) or (1, H, W), got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} holds NaN or inf values; metrics need finite pixels in [0, 1]")
    return a


def _pair(restored, clean) -> tuple[np.ndarray, np.ndarray]:
    r, c = _as_image(restored, "restored"), _as_image(clean, "clean")
    if r.shape != c.shape:
        raise ValueError(f"restored {r.shape} and clean {c.shape} differ in shape; resize one to the other first")
    return r, c


def _psnr_from_mse(mse: float, data_range: float) -> float:
    if mse <= 0.0:
        return PSNR_CAP_DB
    return min(PSNR_CAP_DB, 10.0 * math.log10(data_range ** 2 / mse))


def psnr(restored, clean, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB: 10·log10(data_range² / MSE), capped at 100 dB."""
    if data_range <= 0:
        raise ValueError(f"data_range must be positive, got {data_range}")
    r, c = _pair(restored, clean)
    return _psnr_from_mse(float(np.mean((r - c) ** 2)), data_range)


def ssim(restored, clean, window: int = 11, sigma: float = 1.5) -> float:
    """Mean SSIM with the settings of Wang et al. (2004): Gaussian weights (sigma 1.5, 11 taps),
    population covariances, K1 = 0.01, K2 = 0.03, data range 1, mean over the pixels at least
    (window - 1) / 2 from the border. Computed by scikit-image's structural_similarity."""
    r, c = _pair(restored, clean)
    if window % 2 == 0 or window < 3:
        raise ValueError(f"SSIM window must be odd and at least 3, got {window}")
    if min(r.shape) < window:
        raise ValueError(f"SSIM window {window} is larger than the image {r.shape}; use a smaller eval.ssim_window")
    return float(structural_similarity(
        r, c, win_size=window, gaussian_weights=True, sigma=sigma,
        use_sample_covariance=False, data_range=1.0))


# -------------------------------------------------------------------------------------- text
_WHITESPACE = re.compile(r"\s+")


def normalize_text(s: str, fold_case: bool = False, strip_punctuation: bool = False) -> str:
    """Unicode NFC, runs of whitespace collapsed to one space, ends stripped.

    Case and punctuation are kept by default (the paper's CER/WER are case- and
    punctuation-sensitive). ``fold_case`` applies Unicode case folding (``str.casefold``);
    ``strip_punctuation`` deletes every character of a Unicode punctuation category (P*).
    """
    if not isinstance(s, str):
        raise TypeError(f"normalize_text expects a str, got {type(s).__name__}")
    s = unicodedata.normalize("NFC", s)
    if fold_case:
        s = s.casefold()
    if strip_punctuation:
        s = "".join(ch for ch in s if not unicodedata.category(ch).startswith("P"))
    return _WHITESPACE.sub(" ", s).strip()


def edit_distance(a: Sequence, b: Sequence) -> int:
    """Levenshtein distance (insertions, deletions and substitutions each cost 1) between two
    sequences of hashable items: strings (characters) or lists (e.g. words).

    Bit-parallel (Myers 1999, in Hyyrö's 2001 form for the global distance): one column of the
    dynamic-programming table is held as bit vectors in Python integers, so a line costs
    len(b) steps of a few integer operations instead of len(a)·len(b) cell updates.
    """
    m = len(a)
    if m == 0:
        return len(b)
    full = (1 << m) - 1
    last = 1 << (m - 1)
    peq: dict = {}  # for each item, the bit mask of the positions where it occurs in a
    for i, item in enumerate(a):
        peq[item] = peq.get(item, 0) | (1 << i)
    pv, mv, score = full, 0, m  # vertical deltas of the first column are all +1
    for item in b:
        eq = peq.get(item, 0)
        xv = eq | mv
        xh = (((eq & pv) + pv) ^ pv) | eq
        ph = (mv | ~(xh | pv)) & full
        mh = pv & xh
        if ph & last:
            score += 1
        elif mh & last:
            score -= 1
        ph = ((ph << 1) | 1) & full  # the top row is 0, 1, 2, ...: its horizontal delta is +1
        mh = (mh << 1) & full
        pv = (mh | ~(xv | ph)) & full
        mv = ph & xv
    return score


def char_edits(ref: str, hyp: str, **norm) -> tuple[int, int]:
    """(character edits, reference characters) after normalisation; the parts of CER."""
    r, h = normalize_text(ref, **norm), normalize_text(hyp, **norm)
    return edit_distance(r, h), len(r)


def word_edits(ref: str, hyp: str, **norm) -> tuple[int, int]:
    """(word edits, reference words) after normalisation; words are the space-separated tokens."""
    r, h = normalize_text(ref, **norm).split(), normalize_text(hyp, **norm).split()
    return edit_distance(r, h), len(r)


def _rate(edits: int, length: int) -> float:
    # An empty reference has no length to divide by: 0 when nothing was read, 1 when something was.
    if length == 0:
        return 0.0 if edits == 0 else 1.0
    return edits / length


def cer(ref: str, hyp: str, fold_case: bool = False, strip_punctuation: bool = False) -> float:
    """Character error rate of one line: edits / reference characters (a fraction, may exceed 1)."""
    return _rate(*char_edits(ref, hyp, fold_case=fold_case, strip_punctuation=strip_punctuation))


def wer(ref: str, hyp: str, fold_case: bool = False, strip_punctuation: bool = False) -> float:
    """Word error rate of one line: word edits / reference words (a fraction, may exceed 1)."""
    return _rate(*word_edits(ref, hyp, fold_case=fold_case, strip_punctuation=strip_punctuation))


def _corpus(fn, refs: Sequence[str], hyps: Sequence[str], norm: dict) -> float:
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses; give one hypothesis per line")
    edits = length = 0
    for r, h in zip(refs, hyps):
        e, n = fn(r, h, **norm)
        edits += e
        length += n
    return _rate(edits, length)


def cer_corpus(refs: Sequence[str], hyps: Sequence[str], fold_case: bool = False,
               strip_punctuation: bool = False) -> float:
    """Corpus CER: total character edits / total reference characters over all lines."""
    return _corpus(char_edits, refs, hyps, dict(fold_case=fold_case, strip_punctuation=strip_punctuation))


def wer_corpus(refs: Sequence[str], hyps: Sequence[str], fold_case: bool = False,
               strip_punctuation: bool = False) -> float:
    """Corpus WER: total word edits / total reference words over all lines."""
    return _corpus(word_edits, refs, hyps, dict(fold_case=fold_case, strip_punctuation=strip_punctuation))


# ------------------------------------------------------------------- DIBCO (binary images)
def binarize(img, threshold: float = 0.5) -> np.ndarray:
    """Ink mask of a grey image: True where the pixel is darker than ``threshold``."""
    return _as_image(img, "img") < threshold


def _masks(pred_ink, gt_ink) -> tuple[np.ndarray, np.ndarray]:
    out = []
    for name, m in (("pred_ink", pred_ink), ("gt_ink", gt_ink)):
        a = np.asarray(m)
        if a.dtype != np.bool_:
            raise TypeError(f"{name} must be a boolean ink mask (True = ink), got dtype {a.dtype}; "
                            "turn a grey image into one with binarize(img)")
        if a.ndim == 3 and a.shape[0] == 1:
            a = a[0]
        if a.ndim != 2:
            raise ValueError(f"{name} must have shape (H, W), got {a.shape}")
        out.append(a)
    if out[0].shape != out[1].shape:
        raise ValueError(f"pred_ink {out[0].shape} and gt_ink {out[1].shape} differ in shape")
    return out[0], out[1]


def _f_score(recall: float, precision: float) -> float:
    return 0.0 if recall + precision == 0 else 2 * recall * precision / (recall + precision)


def _precision_recall(pred: np.ndarray, gt: np.ndarray) -> tuple[float, float] | None:
    """(precision, recall), or None when both masks are empty (a perfect blank)."""
    tp = int(np.count_nonzero(pred & gt))
    n_pred, n_gt = int(np.count_nonzero(pred)), int(np.count_nonzero(gt))
    if n_pred == 0 and n_gt == 0:
        return None
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_gt if n_gt else 0.0
    return precision, recall


def fmeasure(pred_ink, gt_ink) -> float:
    """DIBCO F-measure in %: 2·R·P / (R + P) with R = TP/(TP+FN), P = TP/(TP+FP), ink positive.
    Both masks empty: 100; otherwise no true positive: 0."""
    pred, gt = _masks(pred_ink, gt_ink)
    pr = _precision_recall(pred, gt)
    if pr is None:
        return 100.0
    return 100.0 * _f_score(pr[1], pr[0])


def pseudo_fmeasure(pred_ink, gt_ink) -> float:
    """DIBCO 2010 pseudo-F-measure in %: pseudo-recall against the skeleton of the ground-truth
    ink (skimage.morphology.skeletonize), combined with the plain precision. (The weighted
    pseudo-precision of DIBCO 2013 is not used; see docs/metrics.md.)"""
    pred, gt = _masks(pred_ink, gt_ink)
    pr = _precision_recall(pred, gt)
    if pr is None:
        return 100.0
    skel = skeletonize(gt)
    n_skel = int(np.count_nonzero(skel))
    pseudo_recall = np.count_nonzero(pred & skel) / n_skel if n_skel else 0.0
    return 100.0 * _f_score(pseudo_recall, pr[0])


def drd_weights(n: int = 2) -> np.ndarray:
    """Lu et al.'s (2n+1)×(2n+1) weight matrix: 1 / distance to the centre, centre 0, sum 1."""
    yy, xx = np.mgrid[-n:n + 1, -n:n + 1]
    dist = np.hypot(yy, xx)
    w = np.divide(1.0, dist, out=np.zeros_like(dist), where=dist > 0)
    return w / w.sum()


def _nubn(gt: np.ndarray, block: int = 8) -> int:
    """Non-uniform block number: 8×8 blocks of the ground truth holding both ink and paper.
    Blocks are tiled from the top-left; the cut blocks at the right and bottom edges count too."""
    h, w = gt.shape
    ph, pw = -h % block, -w % block
    # Pad by repeating the edge so the cut blocks keep their own content (no invented pixels).
    g = np.pad(gt, ((0, ph), (0, pw)), mode="edge")
    ink = g.reshape(g.shape[0] // block, block, g.shape[1] // block, block).sum(axis=(1, 3))
    # The padded copies change a block's count, not whether it is mixed.
    return int(np.count_nonzero((ink > 0) & (ink < block * block)))


def _nubn_doxa(gt: np.ndarray, block: int = 8) -> int:
    """NUBN as Doxa (doxapy) counts it: only the complete 8×8 cells of the grid, each judged on its
    top-left 7×7 pixels (Doxa's block loop stops one pixel short)."""
    h, w = gt.shape
    g = gt[:h // block * block, :w // block * block]
    cells = g.reshape(h // block, block, w // block, block)[:, :block - 1, :, :block - 1].sum(axis=(1, 3))
    return int(np.count_nonzero((cells > 0) & (cells < (block - 1) ** 2)))


def drd(pred_ink, gt_ink, nubn: str = "edge") -> float:
    """Distance-reciprocal distortion (Lu, Kot and Shi 2004), as in DIBCO.

    For each flipped pixel k, DRD_k = Σ W(i, j)·|GT(i, j) − B(k)| over the 5×5 ground-truth block
    centred on k (W = :func:`drd_weights`; neighbours outside the image count 0).
    DRD = Σ_k DRD_k / NUBN. A ground truth without any non-uniform block (NUBN = 0) divides by 1.
    ``nubn="edge"`` counts the cut blocks at the right and bottom edges too; ``nubn="doxa"``
    counts blocks as doxapy does (used for pages, so the numbers match that tool; docs/metrics.md).
    """
    if nubn not in ("edge", "doxa"):
        raise ValueError(f"nubn must be 'edge' or 'doxa', got {nubn!r}")
    pred, gt = _masks(pred_ink, gt_ink)
    flipped = pred != gt
    if not flipped.any():
        return 0.0
    w = drd_weights(2)
    g = gt.astype(np.float64)
    inside = np.ones_like(g)
    # Weighted ground-truth ink and weighted in-image area around every pixel (W is symmetric,
    # so correlation equals convolution); zero padding leaves out neighbours beyond the edge.
    ink_around = ndimage.correlate(g, w, mode="constant", cval=0.0)
    area_around = ndimage.correlate(inside, w, mode="constant", cval=0.0)
    # A pixel predicted as ink differs from the paper around it; one predicted as paper from the ink.
    per_pixel = np.where(pred, area_around - ink_around, ink_around)
    blocks = _nubn(gt) if nubn == "edge" else _nubn_doxa(gt)
    return float(per_pixel[flipped].sum() / max(blocks, 1))


def psnr_binary(pred_ink, gt_ink) -> float:
    """DIBCO PSNR of two binary images (C = 1 between ink and paper), capped at 100 dB."""
    pred, gt = _masks(pred_ink, gt_ink)
    return _psnr_from_mse(float(np.mean(pred != gt)), 1.0)
