"""How the active CTC weight moves from 0 to its target (``train.ctc``).

The research notes switched the CTC on abruptly and saw it pinned at its clip: with ERB's per-line
sum the CTC of a 4-5-word line can start above the clip (100 by default), and a clamped term passes no gradient
(``train.ctc.clip_mode``, docs/methods.md). These schedules ramp the weight instead; whether that
changes the result is what the annealing study measures.
With ``w = train.ctc.warmup``, ``r = train.ctc.ramp``, ``s = train.ctc.steps``, target ``lam``
and ``t = (step - w) / r``:

* ``constant``: ``lam`` at every step (warmup and ramp ignored).
* ``linear``:   0 for ``step < w``; ``lam * t`` while ``t < 1``; ``lam`` afterwards.
* ``cosine``:   0 for ``step < w``; ``lam * (1 - cos(pi * t)) / 2`` while ``t < 1``; ``lam`` afterwards.
* ``step``:     0 for ``step < w``; ``s`` equal stairs over the ramp: stair ``k = floor(t * s)``
  (0 .. s-1) has weight ``lam * (k + 1) / s``, so the first stair (``lam / s``) starts at
  ``step = w`` and the last (``lam``) at ``step = w + r * (s-1) / s``; ``lam`` after the ramp.
* ``switch``:   0 for ``step < w``, then ``lam`` at once (the ablation arm that failed).
* ``balanced``: ``lam`` at every step; the trainer rescales the CTC gradient by
  :func:`balanced_scale` (ScrabbleGAN's alpha * std(grad_adv) / std(grad_ctc)).

``ramp = 0`` makes ``linear``, ``cosine`` and ``step`` behave as ``switch``.

``train.ctc.warmup_epochs`` / ``ramp_epochs`` give ``w`` / ``r`` in epochs of the training split
instead: ``w = round(warmup_epochs * steps_per_epoch)`` (the same for ``r``), where the trainer
passes its steps per epoch (global batches of the training split); :meth:`CTCWeightSchedule.mapping`
is the record of that mapping each run keeps.
"""

from __future__ import annotations

import math
from typing import Iterable

import torch

from ..config import CTCConfig

SCHEDULES = ("constant", "linear", "cosine", "step", "switch", "balanced")


class CTCWeightSchedule:
    """``schedule.weight(step)``: the CTC weight at generator step ``step`` (0-based)."""

    def __init__(self, cfg: CTCConfig, steps_per_epoch: int | None = None):
        if cfg.schedule not in SCHEDULES:
            raise ValueError(f"unknown CTC schedule {cfg.schedule!r}; choose one of {list(SCHEDULES)} "
                             "(train.ctc.schedule)")
        if cfg.steps < 1:
            raise ValueError(f"train.ctc.steps must be at least 1, got {cfg.steps}")
        self.kind = cfg.schedule
        self.target = float(cfg.weight)
        epochs = getattr(cfg, "warmup_epochs", 0.0), getattr(cfg, "ramp_epochs", 0.0)
        if any(epochs) and not steps_per_epoch:
            raise ValueError("train.ctc.warmup_epochs / ramp_epochs need the training split's steps per epoch; "
                             "pass steps_per_epoch (the trainer does)")
        self.steps_per_epoch = int(steps_per_epoch or 0)
        self.warmup = round(epochs[0] * self.steps_per_epoch) if epochs[0] else int(cfg.warmup)
        self.ramp = round(epochs[1] * self.steps_per_epoch) if epochs[1] else int(cfg.ramp)
        self.epochs = epochs
        self.steps = int(cfg.steps)
        self.alpha = float(cfg.alpha)

    def weight(self, step: int) -> float:
        kind, lam = self.kind, self.target
        if kind in ("constant", "balanced"):
            return lam
        if step < self.warmup:
            return 0.0
        into = step - self.warmup
        if kind == "switch" or self.ramp == 0 or into >= self.ramp:
            return lam
        t = into / self.ramp
        if kind == "linear":
            return lam * t
        if kind == "cosine":
            return lam * 0.5 * (1.0 - math.cos(math.pi * t))
        # step: integer arithmetic so that stair edges are exact.
        stair = (into * self.steps) // self.ramp
        return lam * (stair + 1) / self.steps

    def mapping(self) -> dict:
        """What the run records: the schedule, its warm-up and ramp in steps, and in epochs where
        the config gave epochs (with the steps per epoch that mapped them)."""
        return {"schedule": self.kind, "target": self.target, "warmup_steps": self.warmup,
                "ramp_steps": self.ramp, "warmup_epochs": self.epochs[0] or None,
                "ramp_epochs": self.epochs[1] or None, "steps_per_epoch": self.steps_per_epoch or None,
                "describe": self.describe()}

    def __call__(self, step: int) -> float:
        return self.weight(step)

    def describe(self) -> str:
        text = self._describe()
        if any(self.epochs):
            text += (f" (warm-up {self.epochs[0]:g} and ramp {self.epochs[1]:g} epochs at "
                     f"{self.steps_per_epoch} steps per epoch)")
        return text

    def _describe(self) -> str:
        lam, w, r = self.target, self.warmup, self.ramp
        if self.kind == "constant":
            return f"constant CTC weight {lam:g}"
        if self.kind == "balanced":
            return (f"balanced CTC: weight {lam:g}, gradient rescaled to "
                    f"{self.alpha:g} * std(grad_adv) / std(grad_ctc)")
        if self.kind == "switch" or r == 0:
            return f"{self.kind}: CTC weight 0 for {w} steps, then {lam:g} at once"
        shape = f"{self.steps} equal stairs" if self.kind == "step" else self.kind
        return (f"{self.kind}: CTC weight 0 for {w} steps, then 0 -> {lam:g} over {r} steps "
                f"({shape}), {lam:g} from step {w + r}")

    def __repr__(self) -> str:
        return f"CTCWeightSchedule({self.describe()})"


def _flat(grads: torch.Tensor | Iterable[torch.Tensor | None]) -> torch.Tensor:
    if isinstance(grads, torch.Tensor):
        return grads.detach().float().flatten()
    parts = [g.detach().float().flatten() for g in grads if g is not None]
    if not parts:
        return torch.zeros(0)
    return torch.cat([p.to(parts[0].device) for p in parts])


def balanced_scale(grad_adv, grad_ctc, alpha: float = 1.0, eps: float = 1e-8, std=None) -> float:
    """ScrabbleGAN's gradient balance: ``alpha * std(grad_adv) / (std(grad_ctc) + eps)``.

    The gradients are tensors or lists of tensors (e.g. ``torch.autograd.grad`` of each loss
    with respect to the restored image). Returns 0.0 when the result is not finite (a non-finite
    CTC gradient, or too few values for a standard deviation) or the CTC gradient is flat
    (std <= eps), so that step drops the CTC term.

    ``std`` (a tensor -> float) replaces ``Tensor.std``: under torchrun the trainer passes the
    standard deviation over every rank's share, so the weight is the one-process weight.
    """
    a, c = _flat(grad_adv), _flat(grad_ctc)
    if a.numel() < 2 or c.numel() < 2:
        return 0.0
    std = std or (lambda t: t.std().item())
    c_std = std(c)
    if not c_std > eps:  # a flat CTC gradient (clipped or impossible alignments): nothing to balance
        return 0.0
    scale = alpha * std(a) / c_std
    return scale if math.isfinite(scale) else 0.0
