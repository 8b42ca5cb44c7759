"""Adversarial loss (least squares or vanilla) and the pixel loss between restored and clean."""

from __future__ import annotations

from typing import Mapping

import torch
import torch.nn.functional as F

GAN_MODES = ("lsgan", "vanilla")
PIXEL_LOSSES = ("bce", "l1", "mse")
BCE_EPS = 1e-7  # Keras' epsilon: BCE clamps predictions to [eps, 1-eps] so log() stays finite


class GANLoss:
    """Adversarial loss over a discriminator's raw branch scores.

    * ``lsgan`` (the ERB code): ``MSE(sigmoid(score), target)``; ERB's discriminator ends with a
      sigmoid and is trained with a mean squared error.
    * ``vanilla`` (the ERB paper): ``BCEWithLogits(score, target)``.

    ``target`` is 1 for ``real=True`` and 0 otherwise. Each branch's loss is the mean over its
    elements; the result is ``sum_branch weight[branch] * loss[branch]`` (weights default to 1).
    Computed in float32, so it is safe under autocast.
    """

    def __init__(self, mode: str = "lsgan"):
        if mode not in GAN_MODES:
            raise ValueError(f"unknown adversarial loss {mode!r}; choose one of {list(GAN_MODES)} "
                             "(train.adv_loss)")
        self.mode = mode

    def branch_loss(self, score: torch.Tensor, real: bool) -> torch.Tensor:
        score = score.float()
        target = torch.full_like(score, 1.0 if real else 0.0)
        if self.mode == "lsgan":
            return F.mse_loss(torch.sigmoid(score), target)
        return F.binary_cross_entropy_with_logits(score, target)

    def __call__(self, scores: Mapping[str, torch.Tensor] | torch.Tensor, real: bool,
                 weights: Mapping[str, float] | None = None) -> torch.Tensor:
        if isinstance(scores, torch.Tensor):
            scores = {"image": scores}
        if not scores:
            raise ValueError("GANLoss got no discriminator scores (an empty dict)")
        total = None
        for name, score in scores.items():
            if weights is None:
                w = 1.0
            elif name in weights:
                w = float(weights[name])
            else:
                raise KeyError(f"no weight for discriminator branch {name!r}; weights has "
                               f"{sorted(weights)} (pass D.branch_weights)")
            term = w * self.branch_loss(score, real)
            total = term if total is None else total + term
        return total

    def __repr__(self) -> str:
        return f"GANLoss(mode={self.mode!r})"


def pixel_loss(kind: str, restored: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    """Mean pixel loss between ``restored`` and ``clean`` lines in [0, 1], in float32.

    ``bce`` clamps the restored values to [1e-7, 1 - 1e-7] (Keras does the same) so log(0) never
    happens; ``l1`` and ``mse`` are the usual means.
    """
    if restored.shape != clean.shape:
        raise ValueError(f"restored {tuple(restored.shape)} and clean {tuple(clean.shape)} "
                         "differ in shape")
    r, c = restored.float(), clean.float()
    if kind == "bce":
        # Written out (not F.binary_cross_entropy, which refuses to run under autocast).
        r = r.clamp(BCE_EPS, 1.0 - BCE_EPS)
        return -(c * torch.log(r) + (1.0 - c) * torch.log1p(-r)).mean()
    if kind == "l1":
        return (r - c).abs().mean()
    if kind == "mse":
        return ((r - c) ** 2).mean()
    raise ValueError(f"unknown pixel loss {kind!r}; choose one of {list(PIXEL_LOSSES)} "
                     "(train.pixel_loss)")
