"""Synthesis throughput: lines per second for a profile and line size.

    .venv/bin/python benchmarks/bench_synth.py --profile full --lines 400 --workers 2
    .venv/bin/python benchmarks/bench_synth.py --profile smoke --height 128 --width 1024

Synthesises into temporary folders (deleted afterwards) with MLflow off, and prints:
- CPU time per line of the whole pipeline (text, rendering, degradation, PNG writing, manifest)
  in one process, and the lines/s that gives per dedicated core (synthesis is embarrassingly
  parallel, so N free cores give about N times that);
- wall-clock lines/s with ``--workers`` processes on this machine as it is (shared machines
  give less than the CPU-time figure).
"""

from __future__ import annotations

import argparse
import tempfile
import time

from docrestore import config as C
from docrestore.data import synth


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="full", choices=C.PROFILES)
    parser.add_argument("--height", type=int, default=None, help="line height (default: the profile's)")
    parser.add_argument("--width", type=int, default=None, help="line width (default: the profile's)")
    parser.add_argument("--lines", type=int, default=400, help="lines to synthesise in all splits")
    parser.add_argument("--workers", type=int, default=0, help="processes; 0 = one per CPU core")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="more config overrides")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench-synth-") as tmp:
        n_val = n_test = max(1, args.lines // 10)
        overrides = [f"data.root={tmp}/data", f"runs_dir={tmp}/runs", "tracking.enabled=false",
                     f"data.n_train={max(1, args.lines - n_val - n_test)}", f"data.n_val={n_val}",
                     f"data.n_test={n_test}", f"data.workers={args.workers}", *args.overrides]
        if args.height:
            overrides.append(f"data.height={args.height}")
        if args.width:
            overrides.append(f"data.width={args.width}")
        cfg = C.load_config(profile=args.profile, overrides=overrides)
        d = cfg.data
        total = d.n_train + d.n_val + d.n_test

        start = time.perf_counter()
        synth.make_plan(cfg)  # warms the font and word caches, as a worker's first lines would
        setup_s = time.perf_counter() - start
        cpu = time.process_time()
        synth.make_plan(cfg)  # what the synthesis below spends on setup, to leave out of the figure
        setup_cpu = time.process_time() - cpu

        one = C.load_config(profile=args.profile, overrides=overrides + [f"data.root={tmp}/one", "data.workers=1"])
        cpu = time.process_time()
        synth.ensure_dataset(one)
        cpu_per_line = (time.process_time() - cpu - setup_cpu) / total

        start = time.perf_counter()
        synth.ensure_dataset(cfg)
        elapsed = time.perf_counter() - start

    print(f"profile {args.profile}, {d.height} x {d.width}, {total} lines")
    print(f"setup (fonts + corpus): {setup_s:.2f} s first time, {setup_cpu:.2f} s CPU warm")
    print(f"one process: {1000 * cpu_per_line:.1f} ms CPU per line = {1 / cpu_per_line:.1f} lines/s per "
          f"dedicated core ({2 / cpu_per_line:.1f} lines/s on 2 cores)")
    print(f"wall clock with workers={args.workers or 'all cores'}: {total / elapsed:.1f} lines/s "
          f"({elapsed:.1f} s, incl. setup, PNG and manifest)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
