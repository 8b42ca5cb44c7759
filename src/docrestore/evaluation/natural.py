"""Restoration on lines nobody degraded: the question an archive asks.

The real test lines *as scanned* (the crops ``docrestore ingest`` cut: not background-flattened,
not damaged by our model) are read by the held-out reader before and after each main arm's
generator restored them (one real-lines entry per arm and seed, :mod:`.real`). Per set and arm,
the change in mean per-line CER gets a paired bootstrap interval over lines and seeds
(:func:`.stats.paired_bootstrap_lines_seeds`), and the table says in words whether restoration
helps (the whole interval below 0), hurts (above 0) or is neutral (the interval holds 0).

    python -m docrestore.evaluation.natural --manifest runs/real/htr/manifest.jsonl \\
        eval.ledger_dir=paper/results/real_lines

reads the main arms' entries of the line ledger (``<eval.ledger_dir>/<profile>/``), evaluates each
generator on the manifest's test lines at the arms' line size, read by the held-out reader those
entries were measured with unless ``--reader`` names one (or reuses the entry made with exactly
that), and writes the table as ``<eval.ledger_dir>/<profile>/real/natural_lines.json``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import logging
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from .. import config as C
from .. import runs as R
from ..data import manifest as MF
from ..files import write_json_atomic
from . import archive as AR
from . import ledger as L
from . import stats as S

log = logging.getLogger("docrestore")

# The main line table's restoring arms (ledger names at seed 0; other seeds add _seed<N>).
MAIN_ARMS = {"baseline_s1": "ERB S1", "baseline_cgan": "cGAN (λ=0)", "feature_w5_cnn_last": "feature loss w=5",
             "dual_modal_w5": "dual-modal + feature w=5"}
ALL_SETS = "all"
SUMMARY = "natural_lines.json"
SOURCE_NOTE = "real test lines as scanned (not flattened, not damaged)"


def verdict(lo: float, hi: float) -> str:
    """``helps`` when the whole interval of CER after - before lies below 0, ``hurts`` above 0,
    else ``neutral`` (the data cannot tell a change from none)."""
    return "helps" if hi < 0 else "hurts" if lo > 0 else "neutral"


def _seed_of(experiment: str, arm: str) -> int | None:
    if experiment == arm:
        return 0
    m = re.fullmatch(re.escape(arm) + r"_seed(\d+)", experiment)
    return int(m.group(1)) if m else None


def arm_checkpoints(entries: Sequence[Mapping], arms: Sequence[str] = tuple(MAIN_ARMS)) -> dict[str, list[dict]]:
    """{arm: [{"seed", "experiment", "checkpoint"}] by seed} from line-ledger entries: each
    entry's best generator checkpoint (``train.best``). An arm without an entry is left out."""
    out: dict[str, list[dict]] = {}
    for arm in arms:
        for e in entries:
            seed = _seed_of(str(e.get("experiment", "")), arm)
            best = (e.get("train") or {}).get("best")
            if seed is None or not best:
                continue
            out.setdefault(arm, []).append({"seed": seed, "experiment": e["experiment"],
                                            "checkpoint": str(C.resolve_path(best))})
    return {a: sorted(v, key=lambda r: r["seed"]) for a, v in out.items()}


def evaluate_arms(checkpoints: Mapping[str, Sequence[Mapping]], manifest: str, reader: str, *, split: str = "test",
                  profile: str | None = None, overrides=(), reuse: bool = True) -> dict[str, list[dict]]:
    """{arm: [real-lines entry per seed]}: each generator restores the ``split`` lines of
    ``manifest`` and ``reader`` reads them before and after (:func:`.archive.archive_report`, so an
    entry made with exactly the same checkpoint, reader, lines and split is reused)."""
    out: dict[str, list[dict]] = {}
    for arm, runs in checkpoints.items():
        for r in runs:
            report = AR.archive_report(manifest, r["checkpoint"], reader, experiment=f"natural_{r['experiment']}",
                                       split=split, profile=profile, overrides=overrides, reuse=reuse)
            log.info("natural lines, %s seed %d: %s", arm, r["seed"], report["how"])
            out.setdefault(arm, []).append({**report["entry"], "seed": r["seed"]})
    return out


def line_sets(manifest: str | Path) -> dict[str, str]:
    """{line id: its set} of a manifest (``-`` for a record without a set)."""
    return {r["id"]: r.get("set") or "-" for r in MF.read_manifest(Path(manifest))}


def natural_rows(results: Mapping[str, Sequence[Mapping]], sets: Mapping[str, str], *, n_resamples: int = 1000,
                 seed: int = 0) -> list[dict]:
    """One row per (set, arm), then the arm over every set (``all``): mean per-line CER as scanned
    and restored, their change and its paired bootstrap interval over lines and seeds, and the
    verdict (:func:`verdict`). Every seed of an arm must have read the same lines in the same order."""
    rows = []
    for arm, entries in results.items():
        ids = list(entries[0]["line_ids"])
        for e in entries[1:]:
            if list(e["line_ids"]) != ids:
                raise ValueError(f"arm {arm}: its seeds read different lines ({e['experiment']}); evaluate every "
                                 "seed on the same manifest and split")
        before = np.array([e["per_line"]["cer_degraded"] for e in entries])
        after = np.array([e["per_line"]["cer_restored"] for e in entries])
        line_set = np.array([sets.get(i, "-") for i in ids])
        for name in sorted(set(line_set)) + [ALL_SETS]:
            cols = np.ones(len(ids), bool) if name == ALL_SETS else line_set == name
            st = S.paired_bootstrap_lines_seeds(before[:, cols], after[:, cols], n_resamples, seed)
            rows.append({"set": name, "arm": arm, "method": MAIN_ARMS.get(arm, arm), **st,
                         "verdict": verdict(st["lo"], st["hi"]),
                         "experiments": [e["experiment"] for e in entries]})
    return sorted(rows, key=lambda r: (r["set"] == ALL_SETS, r["set"], list(results).index(r["arm"])))


def natural_table(rows: Sequence[Mapping]):
    """The before/after table of :func:`natural_rows` (CER in %, its change in points with the
    95 % interval over lines and seeds, and the verdict in words); a DataFrame where pandas is present."""
    out = [{"set": r["set"], "arm": r["method"], "lines": r["lines"], "seeds": r["seeds"],
            "CER as scanned (%)": round(100 * r["before"], 2), "CER restored (%)": round(100 * r["after"], 2),
            "ΔCER (points) [95% CI]": f"{100 * r['delta']:+.2f} [{100 * r['lo']:+.2f}, {100 * r['hi']:+.2f}]",
            "restoration": r["verdict"]} for r in rows]
    try:
        import pandas as pd

        return pd.DataFrame(out)
    except ImportError:  # pragma: no cover - pandas comes with mlflow
        return out


def summary_path(cfg: C.Config) -> Path:
    return C.resolve_path(cfg.eval.ledger_dir) / cfg.profile / "real" / SUMMARY


def natural_report(manifest: str, reader: str, *, profile: str | None = None, overrides=(), split: str = "test",
                   arms: Sequence[str] = tuple(MAIN_ARMS), reuse: bool = True, write: bool = True) -> dict:
    """The natural-lines table for the main arms of the line ledger ``<eval.ledger_dir>/<profile>``:
    {"rows", "results", "summary" (path or None), "how"}. ``reader`` empty: the held-out reader the
    arms' entries were measured with (their config's cached reader). Without a manifest, or with no
    arm in the ledger, an empty report whose ``how`` says what to give."""
    cfg = C.load_config(profile=profile, overrides=list(C.override_list(overrides)))
    empty = {"rows": [], "results": {}, "summary": None}
    if not manifest:
        return {**empty, "how": "nothing evaluated: give the scanned lines' manifest (docrestore ingest --out FOLDER "
                                "writes FOLDER/manifest.jsonl); see the README, 'Your own archive lines'"}
    folder = C.resolve_path(cfg.eval.ledger_dir)
    entries = L.read_ledger(folder, cfg.profile)
    checkpoints = arm_checkpoints(entries, arms)
    if not checkpoints:
        return {**empty, "how": f"no entry of {', '.join(arms)} in the line ledger {folder / cfg.profile}: train the "
                                "main arms first (notebooks 01 and 03, or the plan)"}
    first = next(e for e in entries if e["experiment"] == next(iter(checkpoints.values()))[0]["experiment"])
    if not reader:  # the held-out reader the arms' own table used (cached; trained now only if it is gone)
        from ..training.recognizer import ensure_recognizer

        reader = str(ensure_recognizer(C.from_dict(first["config"]), "reader"))
    # the lines at the size the generators and the reader were trained at (the caller's overrides win)
    size = [f"data.{k}={first['config']['data'][k]}" for k in ("height", "width")]
    overrides = size + C.override_list(overrides)
    results = evaluate_arms(checkpoints, manifest, reader, split=split, profile=profile, overrides=overrides,
                            reuse=reuse)
    rows = natural_rows(results, line_sets(C.resolve_path(manifest)), n_resamples=cfg.eval.bootstrap, seed=cfg.seed)
    path = None
    if write:
        git = R.git_info()
        path = summary_path(cfg)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, {
            "kind": "natural_lines", "source": SOURCE_NOTE, "manifest": str(C.resolve_path(manifest)),
            "split": split, "reader": str(C.resolve_path(reader)), "profile": cfg.profile,
            "unit": "mean per-line CER; interval: paired bootstrap over lines and seeds",
            "rows": rows, "git_commit": git["commit"], "git_dirty": git["dirty"],
            "date": _dt.datetime.now().isoformat(timespec="seconds")}, sort_keys=True)
    return {"rows": rows, "results": results, "summary": path,
            "how": f"{sum(map(len, results.values()))} generator(s) of {len(results)} arm(s) on the {split} lines of "
                   f"{manifest}" + (f"; table written to {path}" if path else "")}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m docrestore.evaluation.natural", description=__doc__.split("\n")[0])
    p.add_argument("--manifest", required=True, help="the scanned lines (docrestore ingest --out FOLDER)")
    p.add_argument("--reader", default="", help="held-out reader checkpoint; default: the one the arms were measured with")
    p.add_argument("--split", default="test", choices=MF.ALL_SPLITS)
    p.add_argument("--profile", default=None)
    p.add_argument("--arms", nargs="*", default=list(MAIN_ARMS))
    p.add_argument("overrides", nargs="*", metavar="key=value")
    args = p.parse_args(argv)
    report = natural_report(args.manifest, args.reader, profile=args.profile, overrides=args.overrides,
                            split=args.split, arms=args.arms)
    print(report["how"])
    if report["rows"]:
        table = natural_table(report["rows"])
        print(table.to_string(index=False) if hasattr(table, "to_string") else json.dumps(table, indent=1))
    return 0 if report["rows"] else 1


if __name__ == "__main__":
    sys.exit(main())
