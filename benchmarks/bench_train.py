"""Benchmark: training throughput, lines/s of full G + D + recognizer steps for every arm.

    python benchmarks/bench_train.py                        # quick size on a CPU, full size on a GPU
    python benchmarks/bench_train.py --profile smoke --steps 2 --arms baseline_s1
    python benchmarks/bench_train.py --baseline benchmarks/baselines/train-cpu-quick-78f7b7d.json
    python benchmarks/bench_train.py --plain               # the same step without its speed-ups

Random lines and randomly initialised models of the profile's size (speed does not depend on
the weights), the trainer's real step (docrestore.training.throughput.measure). Writes
benchmarks/results/train-<cpu|gpu>-<profile>-<date>.json; the dry run of an experiment plan of
that profile estimates its wall time from the newest such file.

Lines/s is wall time; lines per CPU-second is the process's CPU time (on a shared CPU the wall
clock also counts other processes' turns, so compare CPU figures there). ``--baseline FILE``
prints this run beside a recorded one (e.g. an older commit's, made by this script there), arm
by arm, with the ratio.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

from docrestore import config as C
from docrestore import device as D
from docrestore.training import speed
from docrestore.training import throughput as T


def read_baseline(path: Path) -> dict[str, dict]:
    """{arm: row} of a benchmark file written by this script (or by its older versions)."""
    try:
        rows = json.loads(Path(path).read_text(encoding="utf-8"))["results"]
    except (OSError, ValueError, KeyError) as exc:
        raise SystemExit(f"--baseline {path}: not a training benchmark file ({exc}); give a "
                         "benchmarks/results/train-*.json or benchmarks/baselines/*.json") from exc
    return {r["arm"]: r for r in rows}


def comparison(rows: list[dict], base: dict[str, dict], name: str) -> list[str]:
    """Markdown lines: each arm's lines/s (CPU and wall) in the baseline and now, and the ratio."""
    out = [f"\nbaseline: {name}", "| arm | base lines/CPU-s | now lines/CPU-s | x | base lines/s | now lines/s | x |",
           "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        b = base.get(r["arm"])
        if b is None:
            out.append(f"| {r['arm']} | - | {r['lines_per_cpu_s']:.1f} | - | - | {r['lines_per_s']:.1f} | - |")
            continue
        cells = []
        for key in ("lines_per_cpu_s", "lines_per_s"):
            old, new = b.get(key), r.get(key)
            cells += [f"{old:.1f}" if old else "-", f"{new:.1f}", f"{new / old:.2f}" if old else "-"]
        out.append(f"| {r['arm']} | " + " | ".join(cells) + " |")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", choices=C.PROFILES, default=None,
                    help="sizes of this profile (default: full on a GPU, quick on a CPU)")
    ap.add_argument("--device", default="auto", help="device, as the config key `device` takes it")
    ap.add_argument("--arms", nargs="+", choices=list(T.ARMS), default=list(T.ARMS))
    ap.add_argument("--steps", type=int, default=5, help="timed steps per arm (after 2 warm-up steps)")
    ap.add_argument("--no-write", action="store_true", help="print only, write no result file")
    ap.add_argument("--baseline", type=Path, default=None,
                    help="a recorded benchmark file to print this run beside (ratio per arm)")
    ap.add_argument("--plain", action="store_true",
                    help=f"without the step's speed-ups ({', '.join(speed.OPTIMISATIONS)})")
    args = ap.parse_args(argv)
    base = read_baseline(args.baseline) if args.baseline else None
    device = D.pick_device(args.device)
    profile = args.profile or ("full" if D.is_gpu(device) else "quick")
    print(f"device  : {D.describe(device)}\nprofile : {profile} (random lines and weights)")
    rows = []
    for arm in args.arms:
        with speed.plain() if args.plain else contextlib.nullcontext():
            r = T.measure(profile, arm, args.device, steps=args.steps, warmup=2)
        r["plain"] = args.plain
        rows.append(r)
        mem = f", peak {r['peak_memory_gib']:.2f} GiB" if r["peak_memory_gib"] is not None else ""
        print(f"{arm:13s} {r['lines_per_s']:8.1f} lines/s  {r['lines_per_cpu_s']:8.1f} lines/CPU-s  "
              f"({r['batch_size']} x {r['height']}x{r['width']}, {r['seconds'] / r['steps']:.3f} s/step, "
              f"{r['cpu_seconds'] / r['steps']:.3f} CPU s/step{mem})", flush=True)
    if base is not None:
        print("\n".join(comparison(rows, base, str(args.baseline))))
    if not args.no_write and not args.plain:  # a plain run must not become the plan estimate's figures
        print(f"written : {T.write_results(rows, tag='')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
