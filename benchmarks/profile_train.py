"""Profile: the share of a training step's CPU time in each part, per arm (docs/speed.md).

    python benchmarks/profile_train.py                     # quick size, 1 thread, every arm
    python benchmarks/profile_train.py --arms feature_loss --steps 10

Random lines and weights of the profile's size, the trainer's real step, instrumented from
outside (docrestore.training.step_profile). Process (CPU) time, so the shares hold on a shared
CPU; one thread by default, as the quick plan runs its jobs. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import sys

import torch

from docrestore import config as C
from docrestore.training import step_profile as SP
from docrestore.training import throughput as T


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", choices=C.PROFILES, default="quick")
    ap.add_argument("--arms", nargs="+", choices=list(T.ARMS), default=list(T.ARMS))
    ap.add_argument("--steps", type=int, default=8, help="profiled steps per arm (after 2 warm-up steps)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (the quick plan's jobs use 1)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = [T.profile_step(args.profile, arm, "cpu", steps=args.steps, warmup=2) for arm in args.arms]
    print(f"\nCPU time per training step, {args.profile} profile, {args.threads} thread(s), "
          f"{args.steps} steps per arm; share of the step (%)\n")
    print("| part | " + " | ".join(r["arm"] for r in rows) + " |")
    print("| --- |" + " ---: |" * len(rows))
    for part in SP.PARTS:
        if any(part in r["shares"] for r in rows):
            print(f"| {part} | " + " | ".join(f"{100 * r['shares'].get(part, 0):.1f}" for r in rows) + " |")
    print("| **CPU s / step** | " + " | ".join(f"**{r['seconds_per_step']:.3f}**" for r in rows) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
