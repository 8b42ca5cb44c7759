"""`docrestore train ARGS...` in a child process for tests/test_survive.py.

With ``--pause-after N MARKER``: after step N the trainer writes MARKER and waits (up to 60 s)
until ``MARKER.sent`` exists, so the test's SIGTERM arrives at a known step; then it goes on
as the real command does (finishes the step, writes last.pt, exits 143).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

from docrestore import cli
from docrestore.training.gan import GANTrainer


def main(argv: list[str]) -> int:
    torch.set_num_threads(1)
    if argv[:1] == ["--pause-after"]:
        step, marker = int(argv[1]), Path(argv[2])
        argv = argv[3:]
        real = GANTrainer.train_step

        def train_step(self, batch):
            out = real(self, batch)
            if self.step + 1 == step:  # fit() counts the step after train_step returns
                marker.write_text(str(step))
                sent = marker.with_name(marker.name + ".sent")
                deadline = time.monotonic() + 60
                while not sent.exists() and time.monotonic() < deadline:
                    time.sleep(0.02)
            return out

        GANTrainer.train_step = train_step
    return cli.main(["train", *argv])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
