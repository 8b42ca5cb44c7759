"""The main line table on real hands, one row per (set, arm): the ledger entries' per-line PSNR,
SSIM, CER and WER averaged over each set's test lines (the shared HTR sets: cremma-mss-17,
cremma-mss-19, iforal), then mean ± sd over the arm's seeds; and ERB's published degraded-IAM
numbers beside them as a cited reference row (never measured here, its own protocol and reader).

    python -m docrestore.evaluation.by_set paper/results/real_lines [--profile quick]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from .. import config as C
from ..data import manifest as MF
from . import ledger as L
from . import natural as N

METRICS = ("psnr", "ssim", "cer", "wer")

# Cited from ERB (Souibgui et al. 2022, paper/references.bib: erb), as its authors report them on
# degraded IAM lines with their own recognizer: CER of clean / degraded / S1-restored lines; PSNR
# and WER of S1 (../shared/RESEARCH.md, "Headline numbers"). Never measured here.
ERB_IAM = {"set": "IAM (published)", "arm": "erb_s1_published", "method": "ERB S1, degraded IAM (published)",
           "psnr": 15.97, "cer": 26.05, "wer": 56.07, "cer_clean": 11.92, "cer_degraded": 40.34,
           "source": "Souibgui et al. 2022 (erb)"}


def _seed_of(experiment: str, arms: Sequence[str]) -> tuple[str, int] | None:
    for arm in arms:
        seed = N._seed_of(experiment, arm)
        if seed is not None:
            return arm, seed
    return None


def set_rows(entries: Sequence[Mapping], sets: Mapping[str, str], arms: Sequence[str] = tuple(N.MAIN_ARMS)) -> list[dict]:
    """One row per (set, arm) and per arm over every set (``all``): for each metric the mean over
    the set's test lines of each seed, then the mean and sd over seeds (``<metric>``,
    ``<metric>_sd``), with ``lines`` and ``seeds``. Entries of other experiments are ignored."""
    by_arm: dict[str, list[Mapping]] = {}
    for e in entries:
        hit = _seed_of(str(e.get("experiment", "")), arms)
        if hit:
            by_arm.setdefault(hit[0], []).append(e)
    rows = []
    for arm in [a for a in arms if a in by_arm]:
        runs = by_arm[arm]
        names = sorted({sets.get(i, "-") for e in runs for i in e["line_ids"]})
        for name in names + [N.ALL_SETS]:
            row: dict = {"set": name, "arm": arm, "method": N.MAIN_ARMS.get(arm, arm), "seeds": len(runs)}
            for m in METRICS:
                per_seed = []
                for e in runs:
                    mask = np.array([name == N.ALL_SETS or sets.get(i, "-") == name for i in e["line_ids"]])
                    per_seed.append(float(np.asarray(e["per_line"][m], dtype=float)[mask].mean()))
                    row["lines"] = int(mask.sum())
                row[m] = float(np.mean(per_seed))
                row[f"{m}_sd"] = float(np.std(per_seed, ddof=1)) if len(per_seed) > 1 else None
            rows.append(row)
    return sorted(rows, key=lambda r: (r["set"] == N.ALL_SETS, r["set"], list(arms).index(r["arm"])))


def reference_rows(entries: Sequence[Mapping], sets: Mapping[str, str] | None = None) -> list[dict]:
    """The main table's clean and degraded rows: the reader on the clean lines, and the degraded
    input against the clean line. Per set (and ``all``) where an entry keeps their per-line values
    (``reader_clean_per_line``, ``degraded_per_line``); else over every line from its summaries."""
    first = next((e for e in entries if (e.get("references") or {}).get("degraded")), None)
    if first is None:
        return []
    per_line = {"clean": first.get("reader_clean_per_line"), "degraded": first.get("degraded_per_line")}
    summary = {"clean": first.get("reader_clean") or {}, "degraded": first["references"]["degraded"]}
    methods = {"clean": "clean lines, read (reference)", "degraded": "degraded input (reference)"}
    ids = list(first.get("line_ids") or [])
    rows = []
    for kind in ("clean", "degraded"):
        values = per_line[kind]
        if sets is not None and values and all(len(v) == len(ids) for v in values.values()):
            line_set = np.array([sets.get(i, "-") for i in ids])
            for name in sorted(set(line_set)) + [N.ALL_SETS]:
                mask = np.ones(len(ids), bool) if name == N.ALL_SETS else line_set == name
                rows.append({"set": name, "arm": kind, "method": methods[kind], "seeds": None, "lines": int(mask.sum()),
                             **{m: (float(np.asarray(values[m], float)[mask].mean()) if m in values else None)
                                for m in METRICS}, **{f"{m}_sd": None for m in METRICS}})
        elif summary[kind].get("cer"):
            rows.append({"set": N.ALL_SETS, "arm": kind, "method": methods[kind], "seeds": None,
                         "lines": summary[kind]["cer"].get("n"),
                         **{m: (summary[kind][m]["mean"] if m in summary[kind] else None) for m in METRICS},
                         **{f"{m}_sd": None for m in METRICS}})
    return rows


def set_table(rows: Sequence[Mapping], reference: Mapping | None = ERB_IAM):
    """The table of :func:`set_rows` (CER/WER in %, mean ± sd over seeds) with the cited ERB row
    last; a DataFrame where pandas is present."""
    def cell(r, m, scale):
        v, sd = r.get(m), r.get(f"{m}_sd")
        if v is None:
            return "—"
        return f"{scale * v:.2f}" + (f" ± {scale * sd:.2f}" if sd is not None else "")

    out = [{"set": r["set"], "arm": r["method"], "lines": r["lines"], "seeds": r["seeds"] or "",
            "PSNR (dB)": cell(r, "psnr", 1), "SSIM": cell(r, "ssim", 1), "CER (%)": cell(r, "cer", 100),
            "WER (%)": cell(r, "wer", 100)} for r in rows]
    if reference:
        out.append({"set": reference["set"], "arm": f"{reference['method']}; {reference['source']}", "lines": "",
                    "seeds": "", "PSNR (dB)": f"{reference['psnr']:.2f}", "SSIM": "—",
                    "CER (%)": f"{reference['cer']:.2f} (clean {reference['cer_clean']:.2f}, degraded "
                               f"{reference['cer_degraded']:.2f})", "WER (%)": f"{reference['wer']:.2f}"})
    try:
        import pandas as pd

        return pd.DataFrame(out)
    except ImportError:  # pragma: no cover - pandas comes with mlflow
        return out


def ledger_set_rows(ledger_dir: str | Path, profile: str, arms: Sequence[str] = tuple(N.MAIN_ARMS)) -> list[dict]:
    """:func:`reference_rows` then :func:`set_rows` for the entries of ``<ledger_dir>/<profile>``, the
    sets read from the test data each entry was measured on (its config's ``data.real_lines``, the
    ingest's manifest)."""
    entries = L.read_ledger(ledger_dir, profile)
    sets: dict[str, str] = {}
    for manifest in {e["config"]["data"].get("real_lines") for e in entries} - {None, ""}:
        path = C.resolve_path(manifest)
        if not path.is_file():
            raise FileNotFoundError(f"the ledger's entries were measured on {manifest}, which is not here: ingest the "
                                    "sets again (docrestore ingest ... --out FOLDER) to name each line's set")
        sets.update({r["id"]: r.get("set") or "-" for r in MF.read_manifest(path)})
    rows = reference_rows(entries, sets) + set_rows(entries, sets, arms)
    return sorted(rows, key=lambda r: (r["set"] == N.ALL_SETS, r["set"]))  # stable: references first in a set


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m docrestore.evaluation.by_set", description=__doc__.split("\n")[0])
    p.add_argument("ledger_dir")
    p.add_argument("--profile", default="quick")
    args = p.parse_args(argv)
    rows = ledger_set_rows(args.ledger_dir, args.profile)
    if not rows:
        print(f"no entry of the main arms ({', '.join(N.MAIN_ARMS)}) in {args.ledger_dir}/{args.profile}")
        return 1
    table = set_table(rows)
    print(table.to_string(index=False) if hasattr(table, "to_string") else table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
