"""Discriminators: the conditional PatchGAN of ERB and the dual-modal (image + text) one.

Every discriminator is called as ``D(candidate, degraded)`` with two ``(B,1,H,W)`` lines in
[0, 1] (the candidate is a clean or a restored line, the degraded line is the condition) and
returns a dict of raw, pre-sigmoid scores per branch. ``D.branch_weights`` gives each branch's
weight for :class:`docrestore.losses.GANLoss`.
"""

from __future__ import annotations

import torch
from torch import nn

from ..config import DiscriminatorConfig
from .generator import scaled_channels
from .recognizer import freeze, rnn_forward

PATCH_FILTERS = (64, 128, 256, 256)


class PatchDiscriminator(nn.Module):
    """Conditional PatchGAN (ERB): ``cat(candidate, degraded)`` -> scores ``(B,1,H/16,W/16)``.

    Four 4x4 stride-2 convs (64, 128, 256, 256 x ``width``), each followed by LeakyReLU(0.2),
    with BatchNorm on all but the first (as pix2pix does), then a 3x3 conv head to one channel
    that keeps the H/16 x W/16 map (8 x 64 patches for 128 x 1024 lines). ERB ends with a
    sigmoid; here the scores stay raw and the loss applies it (see ``GANLoss``).
    """

    def __init__(self, width: float = 1.0, in_channels: int = 2):
        super().__init__()
        ch = [scaled_channels(c, width) for c in PATCH_FILTERS]
        layers: list[nn.Module] = []
        cin = in_channels
        for i, cout in enumerate(ch):
            layers.append(nn.Conv2d(cin, cout, 4, stride=2, padding=1, bias=(i == 0)))
            if i > 0:
                layers.append(nn.BatchNorm2d(cout))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            cin = cout
        self.features = nn.Sequential(*layers)
        self.head = nn.Conv2d(cin, 1, 3, padding=1)
        self.branch_weights = {"image": 1.0}

    def score(self, candidate: torch.Tensor, degraded: torch.Tensor) -> torch.Tensor:
        """The raw patch scores ``(B,1,H/16,W/16)``."""
        if candidate.shape != degraded.shape:
            raise ValueError(f"candidate {tuple(candidate.shape)} and degraded {tuple(degraded.shape)} "
                             "lines must have the same shape")
        h, w = candidate.shape[-2:]
        if h % 16 or w % 16:
            raise ValueError(f"line size {h}x{w} must be a multiple of 16 in both directions")
        return self.head(self.features(torch.cat([candidate, degraded], dim=1)))

    def forward(self, candidate: torch.Tensor, degraded: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"image": self.score(candidate, degraded)}


class TextBranch(nn.Module):
    """Sequence judge over the recognizer's reading: (B,F,T) -> one raw score (B,1).

    1-D conv (local context over frames) -> BiGRU -> mean over time -> linear.
    """

    def __init__(self, in_features: int, hidden: int, normalize_input: bool):
        super().__init__()
        # Tap features have an arbitrary scale; probabilities are already in [0, 1].
        self.norm = nn.LayerNorm(in_features) if normalize_input else nn.Identity()
        self.conv = nn.Conv1d(in_features, hidden, 3, padding=1)
        self.act = nn.LeakyReLU(0.2, inplace=True)
        self.rnn = nn.GRU(hidden, hidden, batch_first=True, bidirectional=True)
        self.out = nn.Linear(2 * hidden, 1)

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        seq = self.norm(seq.transpose(1, 2)).transpose(1, 2)          # (B,F,T)
        h = self.act(self.conv(seq)).transpose(1, 2)                    # (B,T,hidden)
        h = rnn_forward(self.rnn, h)                                    # (B,T,2*hidden)
        return self.out(h.mean(dim=1))                                  # (B,1)


class DualModalDiscriminator(nn.Module):
    """Judges a candidate line on two modalities: its image and what a recognizer reads in it.

    * image branch: the conditional :class:`PatchDiscriminator` on ``cat(candidate, degraded)``.
    * text branch: the frozen recognizer reads the candidate; a small sequence model
      (:class:`TextBranch`) scores that reading, either the per-frame class probabilities
      (``text_input="probs"``, softmax over the charset, (B,C,T)) or the recognizer's last CNN
      features averaged over height (``text_input="features"``, (B,C',T)). It sees the candidate
      only, not the degraded line: it judges whether the reading looks like a reading of a clean
      line.

    How this differs from "a recognizer inside the discriminator" (the cGAN [3] baseline row of
    ERB): there the recognizer's CTC loss on the candidate, against the ground-truth
    transcription, is added to the D/G loss, so the text modality only scores readability of a
    known string and needs the transcription. Here the text branch is *learned* and adversarial:
    it is trained, with real/fake labels like the image branch, to tell the recognizer's reading
    of clean lines from its reading of restored lines, so it judges whether the reading is
    distributed like that of clean text (confident, well-formed frame sequences), needs no
    transcription (it works on unlabelled real lines), is judged jointly with the image branch
    (weights ``image_weight`` / ``text_weight``), and its score is differentiable through the
    frozen recognizer into the generator.

    The recognizer is held by reference, not as a submodule: it is in neither
    ``D.parameters()`` nor ``D.state_dict()``, ``D.to(device)`` does not move it (move it
    yourself) and ``D.train()`` does not touch it. It is frozen in place (eval mode,
    ``requires_grad=False``): if the same recognizer is also trained (scenarios S1/S2), pass
    ``copy.deepcopy(recognizer)`` here.
    """

    def __init__(self, cfg: DiscriminatorConfig, recognizer: nn.Module):
        super().__init__()
        if recognizer is None:
            raise ValueError("the dual_modal discriminator needs a recognizer to read the candidate "
                             "lines; pass build_discriminator(cfg.discriminator, recognizer=...)")
        frozen = freeze(recognizer)
        # A tuple hides the recognizer from nn.Module's registration (parameters, state_dict,
        # .to, .train): it is a fixed reader, not part of D.
        self._reader = (frozen,)
        self.text_input = cfg.text_input
        if cfg.text_input == "probs":
            in_features = frozen.num_classes
        elif cfg.text_input == "features":
            in_features = frozen.tap_channels["cnn_last"]
        else:
            raise ValueError(f"discriminator.text_input must be 'probs' or 'features', "
                             f"got {cfg.text_input!r}")
        self.image = PatchDiscriminator(cfg.width)
        self.text = TextBranch(in_features, cfg.text_hidden,
                               normalize_input=cfg.text_input == "features")
        self.branch_weights = {"image": cfg.image_weight, "text": cfg.text_weight}

    @property
    def recognizer(self) -> nn.Module:
        """The frozen recognizer the text branch reads through (not a submodule)."""
        return self._reader[0]

    def reading(self, candidate: torch.Tensor) -> torch.Tensor:
        """What the text branch sees: (B,F,T) probabilities or pooled features of the candidate."""
        rec = self.recognizer
        p = next(rec.parameters(), None)
        if p is not None and p.device != candidate.device:
            raise RuntimeError(f"the dual-modal discriminator's recognizer is on {p.device} but the "
                               f"candidate lines are on {candidate.device}; move the recognizer "
                               "with recognizer.to(device) (D.to() does not move it)")
        if self.text_input == "probs":
            out = rec(candidate)
            return out.logits.float().softmax(dim=2).permute(1, 2, 0)   # (T,B,C) -> (B,C,T)
        out = rec(candidate, taps=("cnn_last",))
        return out.features["cnn_last"].mean(dim=2)                     # (B,C',H',T) -> (B,C',T)

    def forward(self, candidate: torch.Tensor, degraded: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"image": self.image.score(candidate, degraded),
                "text": self.text(self.reading(candidate))}


DISCRIMINATORS: dict[str, type[nn.Module]] = {
    "patch": PatchDiscriminator,
    "dual_modal": DualModalDiscriminator,
}


def build_discriminator(cfg: DiscriminatorConfig, recognizer: nn.Module | None = None) -> nn.Module:
    """The discriminator named by ``cfg.name``; ``dual_modal`` needs the (pretrained) recognizer."""
    if cfg.name == "patch":
        return PatchDiscriminator(cfg.width)
    if cfg.name == "dual_modal":
        if recognizer is None:
            raise ValueError("discriminator.name=dual_modal needs a recognizer for its text branch: "
                             "call build_discriminator(cfg.discriminator, recognizer=R) with the "
                             "pretrained recognizer (or use discriminator.name=patch)")
        return DualModalDiscriminator(cfg, recognizer)
    raise ValueError(f"unknown discriminator {cfg.name!r}; known: {sorted(DISCRIMINATORS)}")
