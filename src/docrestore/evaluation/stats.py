"""Statistics over test lines and seeds: percentile-bootstrap intervals and paired tests.

Intervals resample test lines with replacement (the line is the unit of the test set); a paired
Wilcoxon signed-rank test compares two methods on the same lines. All results are plain Python
numbers, ready for the results ledger.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy import stats as _sps

__all__ = ["bootstrap_ci", "bootstrap_ratio_ci", "summarize", "summarize_metrics", "paired_test",
           "mean_over_seeds"]

_CHUNK = 256  # resamples drawn at a time, so memory stays small for long test sets


def _values(values, name: str = "values") -> np.ndarray:
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size == 0:
        raise ValueError(f"{name} is empty; a statistic needs at least one test line")
    bad = int(np.count_nonzero(~np.isfinite(v)))
    if bad:
        raise ValueError(f"{name} holds {bad} NaN or inf value(s); fix or drop them before summarising")
    return v


def _check(n_resamples: int, confidence: float) -> None:
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be at least 1, got {n_resamples}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence}")


def _resampled(stat, n: int, n_resamples: int, seed: int) -> np.ndarray:
    """``stat(idx)`` for n_resamples index arrays drawn with replacement from range(n)."""
    rng = np.random.default_rng(seed)
    out = []
    for start in range(0, n_resamples, _CHUNK):
        idx = rng.integers(0, n, size=(min(_CHUNK, n_resamples - start), n))
        out.append(stat(idx))
    return np.concatenate(out)


def _interval(boot: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = 100.0 * (1.0 - confidence) / 2.0
    lo, hi = np.percentile(boot, [tail, 100.0 - tail])
    return float(lo), float(hi)


def bootstrap_ci(values, n_resamples: int = 1000, seed: int = 0,
                 confidence: float = 0.95) -> tuple[float, float, float]:
    """(mean, lo, hi): the sample mean and its percentile-bootstrap interval over lines.
    Deterministic for a given seed."""
    _check(n_resamples, confidence)
    v = _values(values)
    boot = _resampled(lambda idx: v[idx].mean(axis=1), v.size, n_resamples, seed)
    return (float(v.mean()), *_interval(boot, confidence))


def bootstrap_ratio_ci(numerators, denominators, n_resamples: int = 1000, seed: int = 0,
                       confidence: float = 0.95) -> tuple[float, float, float]:
    """(ratio, lo, hi) for a ratio of sums over lines, e.g. corpus CER = Σ edits / Σ reference
    characters, with lines resampled as whole (edits, length) pairs."""
    _check(n_resamples, confidence)
    num, den = _values(numerators, "numerators"), _values(denominators, "denominators")
    if num.shape != den.shape:
        raise ValueError(f"{num.size} numerators but {den.size} denominators; give one pair per line")
    if den.sum() <= 0:
        raise ValueError("the denominators sum to zero or less; a ratio of sums is undefined")
    def ratio(idx):
        top, bottom = num[idx].sum(axis=1), den[idx].sum(axis=1)
        # A resample of only empty lines (denominator 0) counts as a ratio of 0.
        return np.divide(top, bottom, out=np.zeros(len(idx)), where=bottom > 0)

    boot = _resampled(ratio, num.size, n_resamples, seed)
    return (float(num.sum() / den.sum()), *_interval(boot, confidence))


def summarize(values, n_resamples: int = 1000, seed: int = 0, confidence: float = 0.95) -> dict:
    """{"mean", "lo", "hi", "n"}: the ledger's form of a metric over test lines."""
    mean, lo, hi = bootstrap_ci(values, n_resamples, seed, confidence)
    return {"mean": mean, "lo": lo, "hi": hi, "n": int(np.asarray(values).size)}


def summarize_metrics(per_line: Mapping[str, Sequence[float]], n_resamples: int = 1000, seed: int = 0,
                      confidence: float = 0.95) -> dict[str, dict]:
    """{metric: summarize(values)} for a ledger's ``per_line`` mapping; same seed for every metric."""
    return {name: summarize(vals, n_resamples, seed, confidence) for name, vals in per_line.items()}


def paired_test(a, b) -> dict:
    """Two-sided Wilcoxon signed-rank test of a − b over the same lines (scipy.stats.wilcoxon,
    zero differences dropped). All differences zero: statistic 0, p = 1.

    Returns {"statistic", "p_value", "n", "mean_diff", "test": "wilcoxon"}.
    """
    x, y = _values(a, "a"), _values(b, "b")
    if x.shape != y.shape:
        raise ValueError(f"a has {x.size} values but b has {y.size}; a paired test needs the same lines in both")
    d = x - y
    out = {"n": int(x.size), "mean_diff": float(d.mean()), "test": "wilcoxon"}
    if not np.any(d != 0):
        return {**out, "statistic": 0.0, "p_value": 1.0}
    res = _sps.wilcoxon(x, y, zero_method="wilcox", alternative="two-sided")
    return {**out, "statistic": float(res.statistic), "p_value": float(res.pvalue)}


def mean_over_seeds(per_seed: Sequence[Mapping]) -> dict[str, dict]:
    """Mean and spread of each metric over runs that differ only in their seed.

    ``per_seed`` holds one mapping per seed, either {metric: value} or a ledger ``metrics``
    mapping {metric: {"mean", ...}} (its "mean" is used). Returns {metric: {"mean", "std",
    "n_seeds", "values"}} with the sample standard deviation (ddof 1; 0 for a single seed).
    """
    if not per_seed:
        raise ValueError("per_seed is empty; give one metrics mapping per seed")
    names = set(per_seed[0])
    for i, m in enumerate(per_seed[1:], start=1):
        if set(m) != names:
            diff = sorted(names.symmetric_difference(m))
            raise ValueError(f"seed {i} does not report the same metrics as seed 0 (differing: {diff})")
    out = {}
    for name in sorted(names):
        vals = [float(m[name]["mean"] if isinstance(m[name], Mapping) else m[name]) for m in per_seed]
        v = _values(vals, f"metric {name!r} over seeds")
        out[name] = {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if v.size > 1 else 0.0,
                     "n_seeds": int(v.size), "values": vals}
    return out
