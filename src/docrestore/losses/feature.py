"""Recognition feature loss: make the restored line look like the clean one *to the recognizer*.

As in LPIPS and OCR-VQGAN's perceptual loss from a frozen text network: at each chosen tap the
features of the restored and the clean line are normalised to unit length over the channels at
every position (eps 1e-8), the squared (or absolute) difference is summed over the channels and
averaged over positions and lines, and the taps are combined with their weights. The clean
line's features are a fixed target (no gradient); the restored line's gradient flows through
the frozen recognizer into the generator.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from ..config import FeatureLossConfig
from ..models.recognizer import freeze

NORM_EPS = 1e-8


class FeatureLossOutput(NamedTuple):
    loss: torch.Tensor             # scalar, unweighted by cfg.weight
    restored_logits: torch.Tensor  # (T,B,C) the recognizer's scores on the restored lines


def channel_dim(feature: torch.Tensor) -> int:
    """CNN taps are (B,C,H,W) (channels at 1); the "rnn" tap is (T,B,F) (channels last)."""
    if feature.dim() == 4:
        return 1
    if feature.dim() == 3:
        return 2
    raise ValueError(f"tap features must be (B,C,H,W) or (T,B,F), got shape {tuple(feature.shape)}")


def unit_normalize(feature: torch.Tensor, dim: int, eps: float = NORM_EPS) -> torch.Tensor:
    return feature / (feature.norm(dim=dim, keepdim=True) + eps)


class FeatureLoss:
    """``FeatureLoss(recognizer, cfg.train.feature_loss)``.

    ``loss(restored, clean) -> Tensor`` is ``sum_tap w_tap * mean distance`` (unweighted by
    ``cfg.weight``, which the trainer applies, like ``pixel_weight``). Tap weights default to
    ``1 / len(taps)`` each, so the loss is the average over taps. After each call
    ``last_logits`` holds the recognizer's ``(T,B,C)`` scores on the restored lines, so the
    trainer can monitor their CTC without a second forward; :meth:`compute` returns both.

    The recognizer is frozen in place (eval mode, ``requires_grad=False``, BatchNorm kept in eval
    even if a parent calls ``train()``): pass a ``copy.deepcopy`` if the same recognizer is
    trained elsewhere (scenarios S1/S2). It must already be on the lines' device.
    """

    def __init__(self, recognizer: nn.Module, cfg: FeatureLossConfig):
        self.recognizer = freeze(recognizer)
        taps = list(cfg.taps)
        if not taps:
            raise ValueError("train.feature_loss.taps is empty; name at least one of "
                             f"{list(self.recognizer.TAPS)}")
        unknown = [t for t in taps if t not in self.recognizer.TAPS]
        if unknown:
            raise ValueError(f"train.feature_loss.taps has unknown tap(s) {unknown}; the recognizer "
                             f"offers {list(self.recognizer.TAPS)}")
        if cfg.tap_weights and len(cfg.tap_weights) != len(taps):
            raise ValueError(f"train.feature_loss.tap_weights has {len(cfg.tap_weights)} values for "
                             f"{len(taps)} taps; give one weight per tap or none")
        if cfg.distance not in ("mse", "l1"):
            raise ValueError(f"train.feature_loss.distance must be 'mse' or 'l1', got {cfg.distance!r}")
        self.taps = taps
        self.tap_weights = ([float(w) for w in cfg.tap_weights] if cfg.tap_weights
                            else [1.0 / len(taps)] * len(taps))
        self.distance = cfg.distance
        self.normalize = cfg.normalize
        self.last_logits: torch.Tensor | None = None

    def tap_distance(self, restored_feature: torch.Tensor, clean_feature: torch.Tensor) -> torch.Tensor:
        dim = channel_dim(restored_feature)
        a, b = restored_feature.float(), clean_feature.float()
        if self.normalize:
            a, b = unit_normalize(a, dim), unit_normalize(b, dim)
        diff = a - b
        per_position = (diff * diff if self.distance == "mse" else diff.abs()).sum(dim=dim)
        return per_position.mean()

    def compute(self, restored: torch.Tensor, clean: torch.Tensor) -> FeatureLossOutput:
        with torch.no_grad():
            target = self.recognizer(clean, taps=self.taps).features
        out = self.recognizer(restored, taps=self.taps)
        loss = sum(w * self.tap_distance(out.features[t], target[t])
                   for t, w in zip(self.taps, self.tap_weights))
        self.last_logits = out.logits
        return FeatureLossOutput(loss, out.logits)

    def __call__(self, restored: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
        return self.compute(restored, clean).loss

    def __repr__(self) -> str:
        return (f"FeatureLoss(taps={self.taps}, tap_weights={self.tap_weights}, "
                f"distance={self.distance!r}, normalize={self.normalize})")
