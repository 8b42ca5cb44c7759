"""Statistics over test lines and seeds: percentile-bootstrap intervals and paired tests.

Two units, named wherever a number is shown. Over test lines (one training run): intervals
resample lines with replacement, and a paired Wilcoxon signed-rank test compares two runs on the
same lines; this sees line sampling only, so it is a within-seed diagnostic, not evidence of a
method effect (two seeds of one config differ by it). Over training seeds: a Student-t interval
of an arm's mean and Welch's test of two arms' seed means, with Holm's adjustment over a declared
family of comparisons. All results are plain Python numbers, ready for the results ledger.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy import stats as _sps

__all__ = ["bootstrap_ci", "bootstrap_ratio_ci", "summarize", "summarize_metrics", "paired_test",
           "mean_over_seeds", "seed_interval", "welch_over_seeds", "holm", "paired_bootstrap_lines_seeds"]

_CHUNK = 256  # resamples drawn at a time, so memory stays small for long test sets
CONFIDENCE = 0.95  # of every interval the ledger records and the paper quotes


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
                 confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """(mean, lo, hi): the sample mean and its percentile-bootstrap interval over lines.
    Deterministic for a given seed."""
    _check(n_resamples, confidence)
    v = _values(values)
    boot = _resampled(lambda idx: v[idx].mean(axis=1), v.size, n_resamples, seed)
    return (float(v.mean()), *_interval(boot, confidence))


def bootstrap_ratio_ci(numerators, denominators, n_resamples: int = 1000, seed: int = 0,
                       confidence: float = CONFIDENCE) -> tuple[float, float, float]:
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


def summarize(values, n_resamples: int = 1000, seed: int = 0, confidence: float = CONFIDENCE) -> dict:
    """{"mean", "lo", "hi", "n"}: the ledger's form of a metric over test lines."""
    mean, lo, hi = bootstrap_ci(values, n_resamples, seed, confidence)
    return {"mean": mean, "lo": lo, "hi": hi, "n": int(np.asarray(values).size)}


def summarize_metrics(per_line: Mapping[str, Sequence[float]], n_resamples: int = 1000, seed: int = 0,
                      confidence: float = CONFIDENCE) -> dict[str, dict]:
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


def paired_bootstrap_lines_seeds(before, after, n_resamples: int = 1000, seed: int = 0,
                                 confidence: float = 0.95) -> dict:
    """Mean of ``after - before`` and its paired percentile-bootstrap interval over lines *and*
    seeds: ``before`` and ``after`` are (seeds x lines) arrays of one metric on the same lines
    (row i: training seed i); each resample draws lines and seeds with replacement, keeping each
    line's before and after together. With one seed only the lines are resampled (the seed part
    of the spread is then unseen, and ``seeds`` says so).

    Returns {"before", "after", "delta", "lo", "hi", "lines", "seeds"}."""
    _check(n_resamples, confidence)
    b = np.asarray(before, dtype=np.float64)
    a = np.asarray(after, dtype=np.float64)
    b, a = (np.atleast_2d(x) for x in (b, a))
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"before {b.shape} and after {a.shape} must be (seeds x lines) arrays of the same shape")
    _values(a, "after"), _values(b, "before")
    d = a - b
    k, n = d.shape
    rng = np.random.default_rng(seed)
    boot = np.empty(n_resamples)
    for i in range(n_resamples):
        rows = rng.integers(0, k, size=k) if k > 1 else np.zeros(1, dtype=int)
        cols = rng.integers(0, n, size=n)
        boot[i] = d[np.ix_(rows, cols)].mean()
    lo, hi = _interval(boot, confidence)
    return {"before": float(b.mean()), "after": float(a.mean()), "delta": float(d.mean()),
            "lo": lo, "hi": hi, "lines": int(n), "seeds": int(k)}


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


# ------------------------------------------------------------------------ over training seeds
def seed_interval(values, confidence: float = CONFIDENCE) -> dict:
    """Student-t interval of an arm's mean over its training seeds.

    ``values`` holds one number per seed (each run's mean over the same test lines), so the
    interval covers the arm's expected test-set mean over training runs: it accounts for the
    variance between seeds, not for the sampling of test lines (a bootstrap over lines does that
    for one run). Returns {"mean", "sd", "lo", "hi", "half_width", "n_seeds", "df", "confidence",
    "interval": "t over seeds"}; with one seed there is no spread to measure, so sd, lo, hi and
    half_width are NaN.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence}")
    v = _values(values, "values over seeds")
    k = int(v.size)
    mean = float(v.mean())
    out = {"mean": mean, "n_seeds": k, "df": k - 1, "confidence": confidence, "interval": "t over seeds"}
    if k < 2:
        nan = float("nan")
        return {**out, "sd": nan, "lo": nan, "hi": nan, "half_width": nan}
    sd = float(v.std(ddof=1))
    half = float(_sps.t.ppf(0.5 + confidence / 2.0, k - 1) * sd / np.sqrt(k))
    return {**out, "sd": sd, "lo": mean - half, "hi": mean + half, "half_width": half}


def welch_over_seeds(a, b) -> dict:
    """Welch's two-sided t-test of two arms' per-seed means (the unit is the training run).

    Needs at least two seeds per arm. Two arms with no spread at all: p = 1 when their values
    are equal, else 0 (the t statistic is undefined; every seed agrees). Returns {"statistic",
    "p_value", "n_a", "n_b", "mean_diff", "test": "welch"}.
    """
    x, y = _values(a, "a"), _values(b, "b")
    if x.size < 2 or y.size < 2:
        raise ValueError(f"a test over seeds needs at least two seeds per arm, got {x.size} and {y.size}; "
                         "run the arms with more seeds (a plan's `seeds:`)")
    out = {"n_a": int(x.size), "n_b": int(y.size), "mean_diff": float(x.mean() - y.mean()), "test": "welch"}
    if np.ptp(x) == 0 and np.ptp(y) == 0:
        same = bool(x[0] == y[0])
        return {**out, "statistic": 0.0 if same else float("inf"), "p_value": 1.0 if same else 0.0}
    res = _sps.ttest_ind(x, y, equal_var=False)
    return {**out, "statistic": float(res.statistic), "p_value": float(res.pvalue)}


def holm(p_values: Mapping[str, float | None]) -> dict[str, float | None]:
    """Holm's step-down adjustment over one family of comparisons {name: p}.

    The family is every name given: a comparison without a p-value (None: it could not be
    tested) still counts in the family size, as if its p were 1, so dropping an untestable
    comparison never makes the others look stronger; its adjusted value stays None. Controls the
    family-wise error rate at any dependence between the tests.
    """
    names = list(p_values)
    for n in names:
        p = p_values[n]
        if p is not None and not (0.0 <= float(p) <= 1.0):
            raise ValueError(f"p-value of {n!r} is {p}; a p-value lies in [0, 1]")
    m = len(names)
    order = sorted(names, key=lambda n: (1.0 if p_values[n] is None else float(p_values[n])))
    out: dict[str, float | None] = {}
    running = 0.0
    for i, n in enumerate(order):
        p = 1.0 if p_values[n] is None else float(p_values[n])
        running = max(running, min(1.0, (m - i) * p))  # monotone: never below an earlier step
        out[n] = None if p_values[n] is None else running
    return {n: out[n] for n in names}
