"""Speed-ups of the GAN training step that do not change what it computes, each with a name.

:func:`plain` turns them off for a block: the loss-equality tests (tests/test_speed.py) train the
same steps with and without them and compare the losses, and ``benchmarks/bench_train.py
--plain`` times the step without them, side by side in one run.

- ``recognizer_weight_grads``: the co-trained recognizer's weights take no gradient from the
  generator's loss (as the discriminator's already did). Its step zeroes those gradients before
  its own backward, so computing them was wasted work; the generator's gradient is the same.
- ``shared_recognizer_pass``: the feature loss reads the restored lines through the frozen
  recognizer; when the CTC monitor reads the same lines with the same recognizer and needs no
  graph, it takes that pass's scores instead of a second forward.
"""

from __future__ import annotations

import contextlib

OPTIMISATIONS = ("recognizer_weight_grads", "shared_recognizer_pass")
_off: set[str] = set()


def on(name: str) -> bool:
    if name not in OPTIMISATIONS:
        raise KeyError(f"unknown speed-up {name!r}; known: {list(OPTIMISATIONS)}")
    return name not in _off


@contextlib.contextmanager
def plain(*names: str):
    """Within the block the named speed-ups (all when none is named) are off."""
    global _off
    unknown = [n for n in names if n not in OPTIMISATIONS]
    if unknown:
        raise KeyError(f"unknown speed-up(s) {unknown}; known: {list(OPTIMISATIONS)}")
    before, _off = _off, _off | set(names or OPTIMISATIONS)
    try:
        yield
    finally:
        _off = before
