"""Metrics, reference binarisations and statistics against hand-computed values."""

from __future__ import annotations

import math
import unicodedata

import numpy as np
import pytest
from scipy import ndimage

from docrestore.evaluation import metrics as M
from docrestore.evaluation import references as R
from docrestore.evaluation import stats as S

# Lu et al.'s 5×5 weights before normalisation: 4 neighbours at distance 1, 4 at √2, 4 at 2,
# 8 at √5 and 4 at √8, so the sum is 4 + 4/√2 + 2 + 8/√5 + 4/√8 = 13.8203495.
W_SUM = 4 + 4 / math.sqrt(2) + 4 * 0.5 + 8 / math.sqrt(5) + 4 / math.sqrt(8)


# ----------------------------------------------------------------------------- PSNR / SSIM
def test_psnr_hand_computed_and_capped():
    clean = np.zeros((4, 4))
    # MSE = 0.1² = 0.01, so PSNR = 10·log10(1 / 0.01) = 20 dB.
    assert M.psnr(np.full((4, 4), 0.1), clean) == pytest.approx(20.0)
    assert M.psnr(clean, clean) == M.PSNR_CAP_DB == 100.0
    assert M.psnr(clean[None], clean) == 100.0  # (1, H, W) is accepted


def test_psnr_rejects_shape_mismatch_with_a_clear_message():
    with pytest.raises(ValueError, match="differ in shape"):
        M.psnr(np.zeros((4, 4)), np.zeros((4, 5)))


def test_ssim_identical_and_constant_images():
    a = np.linspace(0, 1, 16 * 16).reshape(16, 16)
    assert M.ssim(a, a) == pytest.approx(1.0)
    # Constant 0 against constant 1: means 0 and 1, no variance, so
    # SSIM = (2·0·1 + C1) / (0 + 1 + C1) · C2 / C2 = C1 / (1 + C1) with C1 = (0.01·1)².
    c1 = 0.01 ** 2
    assert M.ssim(np.zeros((16, 16)), np.ones((16, 16))) == pytest.approx(c1 / (1 + c1), rel=1e-6)


def test_ssim_matches_a_valid_convolution_with_an_11_tap_gaussian():
    """The settings equal the pytorch-msssim / Wang et al. computation: an 11-tap Gaussian
    (sigma 1.5) applied without padding, population statistics, mean over the valid area."""
    rng = np.random.default_rng(0)
    x = rng.random((24, 40))
    y = np.clip(x + 0.1 * rng.standard_normal(x.shape), 0, 1)
    t = np.arange(-5, 6)
    g = np.exp(-t ** 2 / (2 * 1.5 ** 2))
    g /= g.sum()

    def blur(img):  # separable Gaussian, then keep only the fully covered ("valid") pixels
        out = ndimage.correlate1d(ndimage.correlate1d(img, g, axis=0), g, axis=1)
        return out[5:-5, 5:-5]

    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx ** 2, blur(y * y) - my ** 2, blur(x * y) - mx * my
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    expected = np.mean((2 * mx * my + c1) * (2 * cxy + c2) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2)))
    assert M.ssim(y, x) == pytest.approx(expected, abs=1e-6)


def test_ssim_window_larger_than_image_is_explained():
    with pytest.raises(ValueError, match="larger than the image"):
        M.ssim(np.zeros((8, 8)), np.zeros((8, 8)))


# ------------------------------------------------------------------------------- text
def test_normalize_text_rules():
    decomposed = unicodedata.normalize("NFD", "café")
    assert M.normalize_text(f"  {decomposed} \t au\n lait ") == "café au lait"
    assert M.normalize_text("Anno 1654, Den") == "Anno 1654, Den"  # case and punctuation kept
    assert M.normalize_text("Anno 1654, Den", fold_case=True) == "anno 1654, den"
    assert M.normalize_text("Anno 1654 , Den.", strip_punctuation=True) == "Anno 1654 Den"


def test_edit_distance_hand_computed():
    assert M.edit_distance("kitten", "sitting") == 3  # k→s, e→i, +g
    assert M.edit_distance("sitting", "kitten") == 3
    assert M.edit_distance("", "abc") == 3
    assert M.edit_distance("abc", "abc") == 0
    assert M.edit_distance(["de", "koning", "sprak"], ["koning", "sprak"]) == 1


def _edit_distance_table(a, b) -> int:
    """The textbook dynamic-programming table, as an independent oracle."""
    d = [[i + j if i * j == 0 else 0 for j in range(len(b) + 1)] for i in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1]))
    return d[-1][-1]


def test_edit_distance_agrees_with_the_dynamic_programming_table():
    rng = np.random.default_rng(0)
    for _ in range(300):  # short alphabets make many repeats; lengths up to 80 cross 64 bits
        a = "".join(rng.choice(list("abcé "), size=rng.integers(0, 80)))
        b = "".join(rng.choice(list("abcé "), size=rng.integers(0, 80)))
        assert M.edit_distance(a, b) == _edit_distance_table(a, b), (a, b)


def test_cer_hand_computed():
    assert M.cer("kitten", "sitting") == pytest.approx(3 / 6)
    assert M.cer("kitten", "kitten") == 0.0
    assert M.cer("kitten", "") == 1.0       # an empty prediction deletes every character
    assert M.cer("", "") == 0.0             # empty reference: 0 if nothing was read ...
    assert M.cer("", "x") == 1.0            # ... and 1 otherwise
    assert M.cer("ab", "abcdef") == 2.0     # insertions can push CER above 1
    # Case-sensitive by default: "Hello world" vs "hello world" is one substitution in 11 characters.
    assert M.cer("Hello  world", "hello world") == pytest.approx(1 / 11)
    assert M.cer("Hello world", "hello world", fold_case=True) == 0.0
    # "a, b." has 5 characters; "a b" drops ',' and '.': 2 edits.
    assert M.cer("a, b.", "a b") == pytest.approx(2 / 5)
    assert M.cer("a, b.", "a b", strip_punctuation=True) == 0.0


def test_wer_hand_computed():
    # sat→sit is a substitution and the second "the" is deleted: 2 edits over 6 words.
    assert M.wer("the cat sat on the mat", "the cat sit on mat") == pytest.approx(2 / 6)
    assert M.wer("the cat", "the cat") == 0.0
    assert M.wer("the cat", "") == 1.0
    assert M.wer("", "") == 0.0


def test_corpus_rates_divide_total_edits_by_total_length():
    refs, hyps = ["ab", "cdef"], ["ab", "cxef"]
    # 0 + 1 edits over 2 + 4 characters; the mean of per-line CERs would be (0 + 1/4) / 2.
    assert M.cer_corpus(refs, hyps) == pytest.approx(1 / 6)
    # Words: "ab" right, "cdef" wrong: 1 edit over 2 words.
    assert M.wer_corpus(refs, hyps) == pytest.approx(1 / 2)
    with pytest.raises(ValueError, match="one hypothesis per line"):
        M.cer_corpus(["a"], [])


# ------------------------------------------------------------------------------ DIBCO
def _mask(rows: list[str]) -> np.ndarray:
    return np.array([[c == "#" for c in r] for r in rows])


def test_binarize_marks_dark_pixels_as_ink():
    img = np.array([[0.2, 0.5], [0.7, 0.49]])
    assert (M.binarize(img) == np.array([[True, False], [False, True]])).all()


def test_fmeasure_hand_computed():
    gt = _mask([".##.",
                ".##.",
                "....",
                "...."])
    pred = _mask([".###",
                  ".#..",
                  "....",
                  "...#"])
    # TP = 3 ((0,1), (0,2), (1,1)), FP = 2 ((0,3), (3,3)), FN = 1 ((1,2)).
    # P = 3/5, R = 3/4, F = 2·0.6·0.75 / 1.35 = 2/3.
    assert M.fmeasure(pred, gt) == pytest.approx(100 * 2 / 3)
    assert M.fmeasure(gt, gt) == 100.0
    assert M.fmeasure(np.zeros((4, 4), bool), gt) == 0.0
    assert M.fmeasure(np.zeros((4, 4), bool), np.zeros((4, 4), bool)) == 100.0


def test_fmeasure_rejects_grey_images():
    with pytest.raises(TypeError, match="binarize"):
        M.fmeasure(np.ones((4, 4)), np.ones((4, 4)))


def test_pseudo_fmeasure_forgives_thin_strokes():
    gt = np.zeros((11, 17), bool)
    gt[3:6, 2:15] = True            # a stroke 3 pixels thick and 13 long: 39 ink pixels
    pred = np.zeros_like(gt)
    pred[4, 2:15] = True            # only its middle row is predicted: 13 pixels, all true ink
    # scikit-image's skeleton of the bar: row 4, columns 2-12 (11 pixels), plus (3, 13).
    from skimage.morphology import skeletonize
    skel = np.zeros_like(gt)
    skel[4, 2:13] = True
    skel[3, 13] = True
    assert (skeletonize(gt) == skel).all()
    # Plain: P = 1, R = 13/39 = 1/3, F = 2·(1/3) / (4/3) = 50 %.
    assert M.fmeasure(pred, gt) == pytest.approx(50.0)
    # Pseudo-recall = 11/12 skeleton pixels found; with P = 1: 2·(11/12) / (23/12) = 22/23.
    assert M.pseudo_fmeasure(pred, gt) == pytest.approx(100 * 22 / 23)
    assert M.pseudo_fmeasure(gt, gt) == 100.0


def test_drd_weights_are_normalised_inverse_distances():
    w = M.drd_weights()
    assert w.shape == (5, 5) and w[2, 2] == 0.0
    assert w.sum() == pytest.approx(1.0)
    assert w[2, 3] == pytest.approx(1 / W_SUM)
    assert w[0, 0] == pytest.approx(1 / math.sqrt(8) / W_SUM)


def test_drd_hand_computed():
    gt = np.zeros((8, 8), bool)
    gt[0, 0] = True                 # one non-uniform 8×8 block: NUBN = 1
    assert M.drd(gt, gt) == 0.0
    pred = gt.copy()
    pred[2, 2] = True               # a false ink pixel: its 5×5 GT block is paper except (0,0),
    # the corner at distance √8, so DRD = 1 − (1/√8)/W_SUM = 0.974418.
    assert M.drd(pred, gt) == pytest.approx(1 - (1 / math.sqrt(8)) / W_SUM)
    assert M.drd(pred, gt) == pytest.approx(0.974418, abs=1e-6)
    pred = gt.copy()
    pred[5, 5] = True               # no GT ink in its window: DRD_k = Σ W = 1
    assert M.drd(pred, gt) == pytest.approx(1.0)


def test_drd_missed_ink_and_partial_blocks():
    gt = np.zeros((8, 8), bool)
    gt[0, 0] = gt[0, 1] = True
    pred = gt.copy()
    pred[0, 1] = False              # missed ink: the only GT ink in its window is (0,0), 1 to the left
    assert M.drd(pred, gt) == pytest.approx(1 / W_SUM)
    # 10×10: blocks are cut at the right and bottom edges; ink in the first block and in the
    # cut corner block makes NUBN = 2, so a false pixel far from both counts 1/2.
    gt = np.zeros((10, 10), bool)
    gt[0, 0] = gt[9, 9] = True
    pred = gt.copy()
    pred[5, 5] = True
    assert M.drd(pred, gt) == pytest.approx(0.5)


def test_psnr_binary_hand_computed():
    gt = np.zeros((4, 4), bool)
    pred = gt.copy()
    pred[1, 1] = True               # MSE = 1/16, PSNR = 10·log10(16)
    assert M.psnr_binary(pred, gt) == pytest.approx(10 * math.log10(16))
    assert M.psnr_binary(gt, gt) == 100.0


# ------------------------------------------------------------------------- references
def _line_image() -> tuple[np.ndarray, np.ndarray]:
    ink = np.zeros((40, 60), bool)
    ink[10:12, 5:55] = True         # two thin strokes on light paper
    ink[5:35, 30:32] = True
    return np.where(ink, 0.1, 0.9), ink


def test_otsu_and_sauvola_find_the_strokes():
    img, ink = _line_image()
    for out in (R.otsu(img), R.sauvola(img)):
        assert out.dtype == np.float32 and set(np.unique(out)) <= {0.0, 1.0}
        assert ((out == 0) == ink).all()   # 0.0 = ink, 1.0 = paper


def test_references_handle_constant_and_tiny_images():
    for value in (0.0, 0.5, 1.0):
        flat = np.full((8, 8), value)
        assert (R.otsu(flat) == 1).all() and (R.sauvola(flat) == 1).all()
    tiny = np.full((6, 6), 0.9)
    tiny[2:4, 2:4] = 0.1            # smaller than the 25-pixel window: still works
    assert ((R.sauvola(tiny) == 0) == (tiny < 0.5)).all()
    assert R.otsu(tiny[None]).shape == (6, 6)


# ------------------------------------------------------------------------------ stats
def test_bootstrap_ci_contains_mean_and_is_deterministic():
    v = [0.1, 0.4, 0.35, 0.8, 0.5, 0.2, 0.9, 0.3]
    mean, lo, hi = S.bootstrap_ci(v, n_resamples=500, seed=3)
    assert mean == pytest.approx(np.mean(v))
    assert lo < mean < hi
    assert S.bootstrap_ci(v, n_resamples=500, seed=3) == (mean, lo, hi)
    assert S.bootstrap_ci(v, n_resamples=500, seed=4) != (mean, lo, hi)
    assert S.bootstrap_ci([2.0, 2.0, 2.0], n_resamples=50) == (2.0, 2.0, 2.0)


def test_bootstrap_ci_two_values():
    # Resample means of [0, 1] are 0, 0.5 or 1 with probabilities 1/4, 1/2, 1/4, so the
    # 2.5th and 97.5th percentiles are 0 and 1.
    assert S.bootstrap_ci([0.0, 1.0], n_resamples=2000) == (0.5, 0.0, 1.0)


def test_bootstrap_rejects_empty_and_nonfinite():
    with pytest.raises(ValueError, match="empty"):
        S.bootstrap_ci([])
    with pytest.raises(ValueError, match="NaN or inf"):
        S.bootstrap_ci([1.0, float("nan")])


def test_summarize_and_ratio_ci():
    s = S.summarize([1.0, 2.0, 3.0], n_resamples=100)
    assert set(s) == {"mean", "lo", "hi", "n"} and s["n"] == 3 and s["mean"] == 2.0
    assert S.summarize_metrics({"cer": [0.0, 1.0]}, n_resamples=10)["cer"]["n"] == 2
    ratio, lo, hi = S.bootstrap_ratio_ci([1, 0, 3], [4, 4, 4], n_resamples=300)
    assert ratio == pytest.approx(4 / 12) and lo <= ratio <= hi


def test_paired_test_clear_difference_and_identical():
    b = np.arange(20, dtype=float)
    diff = np.arange(1, 21) / 10    # 0.1 ... 2.0: distinct (no ties), so scipy's test is exact
    res = S.paired_test(b + diff, b)
    # All 20 differences positive: the exact two-sided p is 2 · (1/2)^20.
    assert res["test"] == "wilcoxon" and res["n"] == 20 and res["mean_diff"] == pytest.approx(1.05)
    assert res["p_value"] == pytest.approx(2 * 0.5 ** 20)
    same = S.paired_test(b, b)
    assert same["p_value"] == 1.0 and same["statistic"] == 0.0
    with pytest.raises(ValueError, match="same lines"):
        S.paired_test([1, 2], [1])


def test_mean_over_seeds():
    per_seed = [{"psnr": {"mean": 20.0, "lo": 19.0, "hi": 21.0, "n": 5}}, {"psnr": 22.0}]
    out = S.mean_over_seeds(per_seed)["psnr"]
    assert out["mean"] == 21.0 and out["std"] == pytest.approx(math.sqrt(2)) and out["n_seeds"] == 2
    assert S.mean_over_seeds([{"cer": 0.1}])["cer"]["std"] == 0.0
    with pytest.raises(ValueError, match="same metrics"):
        S.mean_over_seeds([{"psnr": 1.0}, {"ssim": 1.0}])
