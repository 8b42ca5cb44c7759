"""Benchmark: training throughput, lines/s of full G + D + recognizer steps for every arm.

    python benchmarks/bench_train.py                        # quick size on a CPU, full size on a GPU
    python benchmarks/bench_train.py --profile smoke --steps 2 --arms baseline_s1

Random lines and randomly initialised models of the profile's size (speed does not depend on
the weights), the trainer's real step (docrestore.training.throughput.measure). Writes
benchmarks/results/train-<cpu|gpu>-<profile>-<date>.json; the dry run of an experiment plan of
that profile estimates its wall time from the newest such file.
"""

from __future__ import annotations

import argparse
import sys

from docrestore import config as C
from docrestore import device as D
from docrestore.training import throughput as T


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", choices=C.PROFILES, default=None,
                    help="sizes of this profile (default: full on a GPU, quick on a CPU)")
    ap.add_argument("--device", default="auto", help="device, as the config key `device` takes it")
    ap.add_argument("--arms", nargs="+", choices=list(T.ARMS), default=list(T.ARMS))
    ap.add_argument("--steps", type=int, default=5, help="timed steps per arm (after 2 warm-up steps)")
    ap.add_argument("--no-write", action="store_true", help="print only, write no result file")
    args = ap.parse_args(argv)
    device = D.pick_device(args.device)
    profile = args.profile or ("full" if D.is_gpu(device) else "quick")
    print(f"device  : {D.describe(device)}\nprofile : {profile} (random lines and weights)")
    rows = []
    for arm in args.arms:
        r = T.measure(profile, arm, args.device, steps=args.steps, warmup=2)
        rows.append(r)
        mem = f", peak {r['peak_memory_gib']:.2f} GiB" if r["peak_memory_gib"] is not None else ""
        print(f"{arm:13s} {r['lines_per_s']:8.1f} lines/s  ({r['batch_size']} x {r['height']}x{r['width']}, "
              f"{r['seconds'] / r['steps']:.3f} s/step{mem})", flush=True)
    if not args.no_write:
        print(f"written : {T.write_results(rows, tag='')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
