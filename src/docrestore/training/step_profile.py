"""Where a GAN training step's time goes: CPU (process) time per part of ``train_step``.

:class:`StepProfile` instruments one :class:`~docrestore.training.gan.GANTrainer` from outside,
without editing its step: forward hooks on the generator, the discriminator and the recognizers
(time inside a nested module, e.g. the frozen recognizer inside the dual-modal discriminator,
counts for the inner one only), hooks on the optimisers, and a wrapper around
``Tensor.backward`` / ``torch.autograd.grad`` for the duration of the profile. A backward is
charged to the optimiser that steps next (``loss_d.backward()`` -> D, ``loss_g.backward()`` ->
G, ``loss_r.backward()`` -> the co-trained recognizer); within the generator's backward, the time
after the gradient reaches the restored lines is the generator's own backward, the time before it
the backward through the discriminator and the recognizers. What no hook sees (losses, CTC,
metrics, ``.item()`` syncs, Python) is "rest of the step".

Process time, not wall time: on a shared CPU the wall clock counts other processes' turns.
Hook overhead is a few microseconds per call (tens of hooks per step), well below 1 %.
"""

from __future__ import annotations

import time
from collections import defaultdict
from contextlib import contextmanager

import torch

PARTS = (
    "generator forward",
    "discriminator forward",
    "recognizer forward (co-trained)",
    "frozen recognizer forward",
    "D backward",
    "G backward through D and recognizers",
    "G backward (generator itself)",
    "recognizer backward (co-trained)",
    "gradient diagnostics (autograd.grad)",
    "optimizer steps",
    "rest of the step",
)


class StepProfile:
    """``with StepProfile(trainer) as prof: trainer.train_step(batch) ...``; then
    ``prof.seconds`` ({part: CPU s}), ``prof.steps`` and :meth:`shares`."""

    def __init__(self, trainer, clock=time.process_time):
        self.trainer, self.clock = trainer, clock
        self.seconds: dict[str, float] = defaultdict(float)
        self.steps = 0
        self._stack: list[list] = []  # [label, start, child time] of the open intervals
        self._pending_backward = {"before": 0.0, "after": 0.0}
        self._restored_grad_at: float | None = None
        self._handles: list = []
        self._patched: list[tuple[object, str, object]] = []

    # ---------------------------------------------------------------- exclusive intervals
    def _push(self, label: str) -> None:
        self._stack.append([label, self.clock(), 0.0])

    def _pop(self) -> float:
        label, start, child = self._stack.pop()
        total = self.clock() - start
        self.seconds[label] += total - child
        if self._stack:
            self._stack[-1][2] += total
        return total

    # ------------------------------------------------------------------------ hooks
    def _hook_module(self, module: torch.nn.Module, label: str, output_hook=None) -> None:
        def pre(mod, args):
            self._push(label)

        def post(mod, args, out):
            if output_hook is not None:
                output_hook(out)
            self._pop()

        self._handles += [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]

    def _restored_hook(self, out) -> None:
        """The generator's output: when its gradient arrives, the generator's own backward starts."""
        if isinstance(out, torch.Tensor) and out.requires_grad:
            def mark(grad):
                self._restored_grad_at = self.clock()
            out.register_hook(mark)

    def _backward(self, original):
        profile = self

        def backward(tensor, *args, **kwargs):
            profile._restored_grad_at = None
            start = profile.clock()
            try:
                return original(tensor, *args, **kwargs)
            finally:
                end = profile.clock()
                split = profile._restored_grad_at if profile._restored_grad_at is not None else end
                profile._pending_backward["before"] += split - start
                profile._pending_backward["after"] += end - split
                if profile._stack:
                    profile._stack[-1][2] += end - start
        return backward

    def _grad(self, original):
        profile = self

        def grad(*args, **kwargs):
            profile._push("gradient diagnostics (autograd.grad)")
            try:
                return original(*args, **kwargs)
            finally:
                profile._pop()
        return grad

    def _hook_optimizer(self, opt, who: str) -> None:
        def pre(o, args, kwargs):
            before, after = self._pending_backward["before"], self._pending_backward["after"]
            self._pending_backward = {"before": 0.0, "after": 0.0}
            if who == "G":
                self.seconds["G backward through D and recognizers"] += before
                self.seconds["G backward (generator itself)"] += after
            else:
                self.seconds[f"{who} backward" if who == "D" else "recognizer backward (co-trained)"] += before + after
            self._push("optimizer steps")

        def post(o, args, kwargs):
            self._pop()

        self._handles += [opt.register_step_pre_hook(pre), opt.register_step_post_hook(post)]

    def _patch(self, owner, name: str, wrapper) -> None:
        original = getattr(owner, name)
        self._patched.append((owner, name, original))
        setattr(owner, name, wrapper(original))

    def __enter__(self) -> "StepProfile":
        tr = self.trainer
        self._hook_module(tr.generator, "generator forward", self._restored_hook)
        self._hook_module(tr.discriminator, "discriminator forward")
        if tr.frozen_recognizer is not None:
            self._hook_module(tr.frozen_recognizer, "frozen recognizer forward")
        if tr.train_recognizer:
            self._hook_module(tr.recognizer, "recognizer forward (co-trained)")
        self._hook_optimizer(tr.opt_d, "D")
        self._hook_optimizer(tr.opt_g, "G")
        if tr.opt_r is not None:
            self._hook_optimizer(tr.opt_r, "R")
        self._patch(torch.Tensor, "backward", self._backward)
        self._patch(torch.autograd, "grad", self._grad)
        step = tr.train_step

        def train_step(batch):
            self._push("rest of the step")
            try:
                return step(batch)
            finally:
                self._pop()
                self.steps += 1
        tr.train_step = train_step
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        for owner, name, original in reversed(self._patched):
            setattr(owner, name, original)
        self._handles, self._patched = [], []
        del self.trainer.train_step  # back to the class's method

    @property
    def total(self) -> float:
        return sum(self.seconds.values())

    def shares(self) -> dict[str, float]:
        """{part: share of the step's CPU time}, in :data:`PARTS` order (parts that never ran omitted)."""
        total = self.total or 1.0
        return {p: self.seconds[p] / total for p in PARTS if self.seconds.get(p)}


@contextmanager
def cpu_timer(out: dict, key: str, clock=time.process_time):
    """Adds the CPU time of the block to ``out[key]``."""
    t = clock()
    try:
        yield
    finally:
        out[key] = out.get(key, 0.0) + clock() - t
