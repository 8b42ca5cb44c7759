"""Choosing and reading ledger entries for figures and tables (no drawing here).

A ledger entry is the dict described in docs/architecture.md ("Results ledger"). Groups are free
text; the ones the experiment plans write are listed in :data:`KNOWN_GROUPS`. Figures and tables
that need a group the ledger lacks raise :class:`MissingResults`, which names what to run.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

BASELINE = "baseline"
ANNEALING = "annealing"
FEATURE_WEIGHT = "feature_weight"
FEATURE_TAP = "feature_tap"
DUAL_MODAL = "dual_modal"
READER = "reader"
# Groups that hold the combined method ("both": annealing/feature loss with the dual-modal D).
COMBINED_GROUPS = ("combined", "both", "proposed", "full_method")
KNOWN_GROUPS = (BASELINE, ANNEALING, FEATURE_WEIGHT, FEATURE_TAP, DUAL_MODAL, READER, *COMBINED_GROUPS)

# Private key under which the loader records the JSON file an entry came from.
SOURCE_KEY = "_ledger_file"


class MissingResults(LookupError):
    """A figure or table needs ledger entries that are not there.

    ``needed`` names the groups (or experiments) to run; the message says how.
    """

    def __init__(self, what: str, needed: Sequence[str], detail: str = ""):
        self.what = what
        self.needed = list(needed)
        msg = (f"{what} needs results of group(s) {', '.join(repr(n) for n in self.needed)} "
               f"in the ledger{': ' + detail if detail else ''}. Run those experiments "
               f"(`make paper-figures` runs every experiment, then draws the figures).")
        super().__init__(msg)


# ---------------------------------------------------------------------------- metrics
# name -> (label, higher_is_better, display scale, decimals)
METRICS: dict[str, tuple[str, bool, float, int]] = {
    "psnr": ("PSNR (dB)", True, 1.0, 2),
    "ssim": ("SSIM", True, 1.0, 3),
    "cer": ("CER (%)", False, 100.0, 2),
    "wer": ("WER (%)", False, 100.0, 2),
    "cer_loss_reader": ("CER, loss recognizer (%)", False, 100.0, 2),
    "wer_loss_reader": ("WER, loss recognizer (%)", False, 100.0, 2),
    "cer_reader2": ("CER, 2nd reader (%)", False, 100.0, 2),
    "wer_reader2": ("WER, 2nd reader (%)", False, 100.0, 2),
}


def metric_label(name: str) -> str:
    return METRICS.get(name, (name,))[0]


def higher_is_better(name: str) -> bool:
    return METRICS.get(name, ("", True))[1]


def metric_scale(name: str) -> float:
    """Display factor: CER and WER are stored as fractions and shown in percent."""
    return METRICS.get(name, ("", True, 1.0))[2]


def metric_decimals(name: str) -> int:
    return METRICS.get(name, ("", True, 1.0, 3))[3]


def metric(stats_by_name: dict, name: str) -> tuple[float, float, float, int] | None:
    """(mean, lo, hi, n) of ``name`` in a {metric: {mean, lo, hi, n}} mapping, display-scaled.

    None when the metric is absent or its mean is not a finite number.
    """
    s = (stats_by_name or {}).get(name)
    if not isinstance(s, dict) or not _finite(s.get("mean")):
        return None
    k = metric_scale(name)
    mean = float(s["mean"]) * k
    lo = float(s["lo"]) * k if _finite(s.get("lo")) else mean
    hi = float(s["hi"]) * k if _finite(s.get("hi")) else mean
    return mean, lo, hi, int(s.get("n") or 0)


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


# ----------------------------------------------------------------------------- config
def cfg_get(entry: dict, dotted: str, default: Any = None) -> Any:
    """A value of the entry's resolved config by dotted key, e.g. 'train.ctc.schedule'."""
    cur: Any = entry.get("config") or {}
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return default
        cur = cur[part]
    return cur


# ----------------------------------------------------------------------------- groups
def by_group(entries: Iterable[dict]) -> dict[str, list[dict]]:
    """{group: entries} in a stable order (by experiment name within a group)."""
    out: dict[str, list[dict]] = {}
    for e in sorted(entries, key=lambda e: str(e.get("experiment"))):
        out.setdefault(str(e.get("group")), []).append(e)
    return out


def require_group(entries: Sequence[dict], group: str | Sequence[str], what: str) -> list[dict]:
    """The entries of ``group`` (or of any of several groups); MissingResults when there are none."""
    groups = [group] if isinstance(group, str) else list(group)
    found = [e for e in entries if e.get("group") in groups]
    if not found:
        present = sorted({str(e.get("group")) for e in entries})
        raise MissingResults(what, groups, f"the ledger holds only {present or 'nothing'}")
    return sorted(found, key=lambda e: str(e.get("experiment")))


def validation_cer(entry: dict) -> float | None:
    """The entry's validation CER read by the held-out reader (``val_reader``, recorded at
    evaluation), or None for an entry made before it was recorded."""
    v = (entry.get("val_reader") or {}).get("cer")
    return float(v) if _finite(v) else None


SELECTION = ("chosen among the arms with the most seeds by the lowest validation CER read by the "
             "held-out reader (a network no loss was trained against); the test split is not used to choose")


def representative(entries: Sequence[dict]) -> tuple[dict, str]:
    """One entry standing for a group: among the arms with the most seeds (so a table row has its
    seed spread whenever the plan seeded one of the group's arms), the lowest validation CER read
    by the held-out reader (mean over the arm's seeds). Never the test split, never the loss
    recognizer (the network the feature-loss and dual-modal arms optimise against): an entry
    without ``val_reader`` cannot be chosen, so a group of only such entries falls back to its
    first arm in name order and says so.

    Returns (entry, how it was chosen).
    """
    if not entries:
        raise ValueError("representative() of an empty group")
    if len(entries) == 1:
        return entries[0], "only arm"
    most = max(n_seeds(e) for e in entries)
    entries = [e for e in entries if n_seeds(e) == most]
    scored = [(validation_cer(e), e) for e in entries]
    scored = [(v, e) for v, e in scored if v is not None]
    if scored:
        return min(scored, key=lambda t: t[0])[1], "lowest validation CER (held-out reader)"
    first = sorted(entries, key=lambda e: str(e.get("experiment")))[0]
    return first, "first arm by name (no held-out validation CER recorded)"


def baseline_entry(entries: Sequence[dict]) -> dict:
    """The ERB baseline the methods are compared with: the baseline-group entry whose method
    starts with 'ERB S1', else the first baseline entry. MissingResults when there is none."""
    base = require_group(entries, BASELINE, "the comparison with the ERB baseline")
    for e in base:
        if str(e.get("method", "")).upper().startswith("ERB S1"):
            return e
    for e in base:
        if str(e.get("method", "")).upper().startswith("ERB"):
            return e
    return base[0]


def method_groups(entries: Sequence[dict]) -> list[str]:
    """Non-baseline, non-reader groups present, known ones first in the paper's order."""
    present = {str(e.get("group")) for e in entries}
    order = [g for g in (ANNEALING, FEATURE_WEIGHT, FEATURE_TAP, DUAL_MODAL, *COMBINED_GROUPS) if g in present]
    rest = sorted(present - set(order) - {BASELINE, READER})
    return order + rest


def _weight(entry: dict, dotted: str) -> float:
    w = cfg_get(entry, dotted, 0.0)
    return float(w) if _finite(w) else 0.0


def _uses_feature_loss(entry: dict) -> bool:
    return _weight(entry, "train.feature_loss.weight") > 0


def _uses_ctc(entry: dict) -> bool:
    return _weight(entry, "train.ctc.weight") > 0


# The ablation arms: (label, which entries belong to it). The combined method ("both") is the
# dual-modal discriminator trained with an HTR loss as well (the pipeline files it under
# dual_modal), or an entry of a combined group.
ABLATION_ARMS: list[tuple[str, Any]] = [
    ("baseline (ERB)", lambda e: e.get("group") == BASELINE),
    ("CTC annealing", lambda e: e.get("group") == ANNEALING),
    ("feature loss", lambda e: e.get("group") in (FEATURE_WEIGHT, FEATURE_TAP) and _uses_feature_loss(e)),
    ("dual-modal D", lambda e: e.get("group") == DUAL_MODAL and not (_uses_feature_loss(e) or _uses_ctc(e))),
    ("both", lambda e: e.get("group") in COMBINED_GROUPS
     or (e.get("group") == DUAL_MODAL and (_uses_feature_loss(e) or _uses_ctc(e)))),
]


def ablation_arms(entries: Sequence[dict]) -> list[tuple[str, dict, str]]:
    """(arm label, entry, how chosen): the ERB baseline, then one representative per ablation
    arm present (lowest validation CER among the arm's entries). MissingResults without the
    baseline or without any other arm."""
    base = baseline_entry(entries)
    out = [(ABLATION_ARMS[0][0], base, "baseline")]
    for label, member in ABLATION_ARMS[1:]:
        found = sorted((e for e in entries if member(e)), key=lambda e: str(e.get("experiment")))
        if found:
            e, how = representative(found)
            out.append((label, e, how))
    if len(out) < 2:
        raise MissingResults("the ablation", [ANNEALING, FEATURE_WEIGHT, DUAL_MODAL],
                             "only the baseline is in the ledger")
    return out


def headline_entries(entries: Sequence[dict]) -> list[tuple[dict, str]]:
    """The methods of the main comparison, as (entry, how chosen): every baseline entry (ERB S1
    first), one representative per ablation arm, and one per group the ablation does not know."""
    groups = by_group(entries)
    base = groups.get(BASELINE, [])
    out: list[tuple[dict, str]] = []
    if base:
        first = baseline_entry(entries)
        out = [(first, "baseline")] + [(e, "baseline") for e in base if e is not first]
    for label, member in ABLATION_ARMS[1:]:
        found = sorted((e for e in entries if member(e)), key=lambda e: str(e.get("experiment")))
        if found:
            out.append(representative(found))
    known = {BASELINE, READER, ANNEALING, FEATURE_WEIGHT, FEATURE_TAP, DUAL_MODAL, *COMBINED_GROUPS}
    for g in method_groups(entries):
        if g not in known:
            out.append(representative(groups[g]))
    return out


def main_method(entries: Sequence[dict]) -> dict:
    """The method shown against the baseline: among the non-baseline methods of the main
    comparison, the lowest validation (else test) CER. With only baseline entries: the baseline."""
    reps = [e for e, how in headline_entries(entries) if e.get("group") != BASELINE]
    if not reps:
        return baseline_entry(entries)
    return representative(reps)[0]


def shown_methods(entries: Sequence[dict], limit: int) -> list[dict]:
    """The methods a figure draws: all entries (baseline first) when there are at most
    ``limit``, else the main comparison's (:func:`headline_entries`)."""
    if len(entries) <= limit:
        order = {g: i for i, g in enumerate([BASELINE, *method_groups(entries), READER])}
        try:
            first = baseline_entry(entries)
        except MissingResults:
            first = None
        return sorted(entries, key=lambda e: (e is not first, order.get(str(e.get("group")), 99),
                                              str(e.get("experiment"))))
    return [e for e, _ in headline_entries(entries)]


def tap_arms(entries: Sequence[dict]) -> list[dict]:
    """The tap comparison: the feature_tap entries plus any feature_weight entry at the same
    weight whose taps no tap entry covers (the pipeline's default tap lives in the weight
    sweep). MissingResults without feature_tap entries."""
    taps = require_group(entries, FEATURE_TAP, "the feature-loss tap comparison")
    weights = {_weight(e, "train.feature_loss.weight") for e in taps}
    pixel = {cfg_get(e, "train.pixel_loss") for e in taps}
    covered = {tuple(cfg_get(e, "train.feature_loss.taps") or []) for e in taps}
    extra: dict[tuple, dict] = {}
    for e in entries:  # only arms that differ from the tap arms in the tap alone (not the L1-pixel arm)
        tap = tuple(cfg_get(e, "train.feature_loss.taps") or [])
        if (e.get("group") == FEATURE_WEIGHT and _weight(e, "train.feature_loss.weight") in weights
                and cfg_get(e, "train.pixel_loss") in pixel and tap not in covered
                and (tap not in extra or n_seeds(e) > n_seeds(extra[tap]))):
            extra[tap] = e  # one tick per tap: the arm with the most seeds
    return sorted(taps + list(extra.values()), key=lambda e: arm_label({**e, "group": FEATURE_TAP}))


def arm_label(entry: dict) -> str:
    """A short label of what makes an arm differ within its group (schedule, weight, taps...)."""
    g = entry.get("group")
    if g == ANNEALING:
        sched = cfg_get(entry, "train.ctc.schedule", "?")
        w = cfg_get(entry, "train.ctc.weight")
        return f"{sched} (\u03bb={_num(w)})" if w is not None else str(sched)
    if g == FEATURE_WEIGHT:
        return f"w={_num(cfg_get(entry, 'train.feature_loss.weight'))}"
    if g == FEATURE_TAP:
        taps = cfg_get(entry, "train.feature_loss.taps") or []
        return "+".join(map(str, taps)) if taps else "?"
    return str(entry.get("method") or entry.get("experiment"))


def display_name(entry: dict) -> str:
    """The entry's label for legends and table rows: the ledger's :func:`entry_label` (the method,
    with '(profile, CPU|GPU)' added for a reduced run)."""
    from docrestore.evaluation.ledger import entry_label

    try:
        return entry_label(entry)
    except (KeyError, TypeError):
        return str(entry.get("method") or entry.get("experiment"))


def _num(x: Any) -> str:
    if _finite(x):
        return f"{x:g}"
    return str(x)


def source_dir(entry: dict, ledger_dir: str | Path | None = None) -> Path | None:
    """Folder of the JSON file the entry was read from (None when unknown)."""
    src = entry.get(SOURCE_KEY)
    if src:
        return Path(src).parent
    return Path(ledger_dir) if ledger_dir else None


def sample_image_path(entry: dict, rel: str, ledger_dir: str | Path | None = None) -> Path | None:
    """Resolve a sample image path (relative to the ledger folder) to an existing file, or None.

    Tried in order: absolute path, next to the entry's JSON file, its parent folder (the
    ledger root, which the paths are relative to), ledger_dir, the entry's eval.ledger_dir.
    """
    if not rel:
        return None
    p = Path(rel)
    if p.is_absolute():
        return p if p.exists() else None
    bases = []
    d = source_dir(entry)
    if d is not None:
        bases += [d, d.parent]
    if ledger_dir is not None:
        bases += [Path(ledger_dir), Path(ledger_dir) / str(entry.get("profile", ""))]
    from docrestore.config import resolve_path

    bases.append(resolve_path(cfg_get(entry, "eval.ledger_dir") or "paper/results"))
    for b in bases:
        if (b / p).exists():
            return b / p
    return None


# ------------------------------------------------------------------------------- seeds
_SEED_SUFFIX = re.compile(r"^(?P<arm>.+)_seed(?P<seed>\d+)$")


def arm_name(entry: dict) -> str:
    """The experiment without its ``_seed<N>`` suffix: entries of one arm differ only in seed."""
    m = _SEED_SUFFIX.match(str(entry.get("experiment")))
    return m.group("arm") if m else str(entry.get("experiment"))


def merge_seeds(entries: Sequence[dict]) -> list[dict]:
    """One entry per arm: an arm run with several seeds becomes one entry whose ``metrics`` are
    the mean over seeds (``evaluation.stats.mean_over_seeds``) with ``lo``/``hi`` the 95 % Student-t
    interval over seeds (``evaluation.stats.seed_interval``; ``sd``, ``n_seeds`` and
    ``interval: "t over seeds"`` kept), whose ``per_line`` values are each line's mean over
    seeds, whose ``val_reader`` CER is the mean over seeds and whose ``seed_metrics`` keeps each
    seed's metric means (for a test over seeds). Its other fields (history, samples, provenance)
    are the lowest seed's; ``seed_entries`` names the merged entries. Single-seed arms pass
    through unchanged."""
    from docrestore.evaluation.stats import mean_over_seeds, seed_interval

    groups: dict[str, list[dict]] = {}
    for e in entries:
        groups.setdefault(arm_name(e), []).append(e)
    out = []
    for arm, group in groups.items():
        if len(group) == 1:
            out.append(group[0])
            continue
        group = sorted(group, key=lambda e: int(e.get("seed") or 0))
        merged = dict(group[0])
        names = set.intersection(*(set(e["metrics"]) for e in group))
        over = mean_over_seeds([{k: e["metrics"][k] for k in names} for e in group])
        merged["metrics"] = {}
        for k, v in over.items():
            t = seed_interval(v["values"])
            merged["metrics"][k] = {"mean": v["mean"], "lo": t["lo"], "hi": t["hi"], "n": group[0]["metrics"][k]["n"],
                                    "sd": v["std"], "n_seeds": v["n_seeds"], "interval": t["interval"]}
        merged["seed_metrics"] = {k: v["values"] for k, v in over.items()}
        same_lines = all(e.get("line_ids") == group[0].get("line_ids") for e in group)
        if same_lines and all(e.get("per_line") for e in group):
            merged["per_line"] = {k: [sum(vals) / len(group) for vals in zip(*(e["per_line"][k] for e in group))]
                                  for k in names if all(k in e["per_line"] for e in group)}
        vals = [validation_cer(e) for e in group]
        if all(v is not None for v in vals):
            merged["val_reader"] = {**(group[0].get("val_reader") or {}), "cer": sum(vals) / len(vals)}
        merged["experiment"] = arm
        merged["seeds"] = [int(e.get("seed") or 0) for e in group]
        merged["seed_digests"] = {int(e.get("seed") or 0): result_digest(e) for e in group}
        merged["seed_entries"] = [e["experiment"] for e in group]
        merged["git_dirty"] = any(e.get("git_dirty") for e in group)
        out.append(merged)
    return out


def n_seeds(entry: dict) -> int:
    return len(entry.get("seeds") or [0])


def interval_description(entries: Sequence[dict], confidence: int = 95) -> str:
    """What the intervals drawn for ``entries`` cover, in words: a t interval over training seeds
    for arms merged from several seeds, a bootstrap interval over test lines for single runs
    (both named when a figure or table mixes them)."""
    seeds = sorted({n_seeds(e) for e in entries if n_seeds(e) > 1})
    single = any(n_seeds(e) <= 1 for e in entries)
    parts = []
    if seeds:
        k = "/".join(map(str, seeds))
        parts.append(f"{confidence}% t interval over {k} training seeds (spread between training runs; "
                     "test lines fixed)")
    if single or not entries:
        parts.append(f"{confidence}% bootstrap interval over test lines (one run: line sampling only)")
    return "; single-seed arms: ".join(parts) if seeds and single else parts[0]


# --------------------------------------------------------------------- identical arms
def result_digest(entry: dict) -> str:
    """A short hash of one run's test results (per-line values and metric means): equal digests,
    equal results to the last digit."""
    import hashlib
    import json

    means = {k: (v or {}).get("mean") for k, v in (entry.get("metrics") or {}).items()}
    text = json.dumps({"per_line": entry.get("per_line") or {}, "means": means}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def seed_digests(entry: dict) -> dict[int, str]:
    """{seed: :func:`result_digest`} of each run behind an entry (an arm merged from several seeds
    keeps one per seed, :func:`merge_seeds`)."""
    return {int(k): v for k, v in (entry.get("seed_digests") or {}).items()} or \
        {int(entry.get("seed") or 0): result_digest(entry)}


def identical_arms(entries: Sequence[dict]) -> list[dict]:
    """Arms that are one result counted twice.

    Two kinds, each a class of experiments: ``"same settings"`` (their resolved configs are equal
    apart from keys that cannot change a result, :data:`docrestore.evaluation.ledger.SETTINGS_IGNORED_KEYS`:
    one arm run twice) and ``"no effect"`` (the configs differ but a run of each with the same
    seed has identical test results to the last digit: the differing setting did nothing in
    these runs, e.g. a CTC term clipped to a constant). Returns [{"kind", "experiments",
    "differences", "seeds"}]: the keys that differ (empty for same settings) and the seeds whose
    results coincide, in a stable order.
    """
    from docrestore.evaluation.ledger import config_differences

    ordered = sorted(entries, key=lambda e: str(e.get("experiment")))
    digests = [seed_digests(e) for e in ordered]
    parent = list(range(len(ordered)))

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    for i in range(len(ordered)):
        for j in range(i + 1, len(ordered)):
            same_run = any(digests[j].get(s) == d for s, d in digests[i].items())
            ca, cb = ordered[i].get("config"), ordered[j].get("config")
            same_cfg = bool(ca) and bool(cb) and not config_differences(ca, cb)  # no config: unknown, not same
            if same_run or same_cfg:
                parent[root(j)] = root(i)
    classes: dict[int, list[int]] = {}
    for i in range(len(ordered)):
        classes.setdefault(root(i), []).append(i)
    out = []
    for members in classes.values():
        if len(members) < 2:
            continue
        first = ordered[members[0]]
        diffs = sorted({k for j in members[1:] for k in config_differences(first.get("config") or {},
                                                                           ordered[j].get("config") or {})})
        shared = sorted(set.intersection(*({s for s, d in digests[j].items()
                                             if any(digests[i].get(s) == d for i in members if i != j)}
                                            for j in members)))
        known = all(ordered[j].get("config") for j in members)
        out.append({"kind": "same settings" if known and not diffs else "no effect",
                    "experiments": [str(ordered[j].get("experiment")) for j in members],
                    "differences": diffs, "seeds": shared})
    return out


def identical_note(entries: Sequence[dict]) -> str:
    """A caption sentence naming the identical arms among ``entries`` (empty when none)."""
    found = identical_arms(entries)
    if not found:
        return ""
    parts = []
    for c in found:
        names = " = ".join(c["experiments"])
        if c["kind"] == "no effect":
            seeds = f" for seed {', '.join(map(str, c['seeds']))}" if c["seeds"] else ""
            parts.append(f"{names} (settings differ in {', '.join(c['differences'])}; results identical"
                         f"{seeds}: the setting had no effect)")
        else:
            parts.append(f"{names} (identical settings: one arm, counted once)")
    return "Identical arms: " + "; ".join(parts) + "."
