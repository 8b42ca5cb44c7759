"""Training lines per CPU-second of the docrestore on the path, also an older commit's: a baseline.

    git archive 78f7b7d src configs | tar -x -C /tmp/old
    DOCRESTORE_THREADS=1 PYTHONPATH=/tmp/old/src python benchmarks/bench_train_cpu.py old.json
    python benchmarks/bench_train.py --baseline old.json        # this checkout beside it

Runs that tree's own ``throughput.measure`` for every arm at the quick size on one thread (as
the quick plan's jobs), with its timed loop reading process time instead of the wall clock
(older versions of ``measure`` record wall time only; on a shared CPU that counts other
processes' turns). Writes a file ``bench_train.py --baseline`` reads.
"""

from __future__ import annotations

import json
import sys
import time

import torch


class ProcessClock:
    """Stands in for the ``time`` module inside ``measure``: every clock is process time."""
    perf_counter = staticmethod(time.process_time)
    process_time = staticmethod(time.process_time)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print(__doc__)
        return 2
    torch.set_num_threads(1)
    import docrestore
    from docrestore.runs import git_info
    from docrestore.training import throughput as T

    T.time = ProcessClock
    rows = []
    for arm in T.ARMS:
        r = T.measure("quick", arm, "cpu", steps=5, warmup=2, workdir="runs/bench")
        rows.append({"arm": arm, "cpu_seconds": r["seconds"], "steps": r["steps"], "batch_size": r["batch_size"],
                     "lines_per_cpu_s": r["lines_per_s"]})
        print(f"{arm:13s} {r['lines_per_s']:8.1f} lines/CPU-s", flush=True)
    with open(argv[0], "w", encoding="utf-8") as f:
        json.dump({"tree": docrestore.__file__, "git": git_info(), "threads": 1, "results": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
