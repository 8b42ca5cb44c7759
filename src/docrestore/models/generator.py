"""The restoration generator: the U-Net of "Enhance to Read Better" (ERB).

ERB's code follows DE-GAN's U-Net: four encoder levels of two 3x3 conv + BatchNorm + ReLU, each
followed by a 2x2 max-pool, a bottleneck level, dropout at the two deepest levels, and a decoder
that upsamples, convolves, concatenates the skip connection and convolves twice. Counting the
final 1x1 conv, that is the 23 conv layers the paper reports.
"""

from __future__ import annotations

import torch
from torch import nn

from .. import device as D
from ..config import GeneratorConfig

# ERB's encoder filters; the decoder mirrors the first four.
ERB_FILTERS = (64, 128, 256, 256, 512)


def scaled_channels(base: int, width: float, minimum: int = 4) -> int:
    """``base * width`` rounded, never below ``minimum`` (very thin models still need channels)."""
    return max(minimum, int(round(base * width)))


class ConvBNReLU(nn.Sequential):
    """3x3 conv (no bias: BatchNorm follows) + BatchNorm + ReLU, spatial size kept."""

    def __init__(self, cin: int, cout: int, bn_momentum: float):
        super().__init__(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout, momentum=bn_momentum),
            nn.ReLU(inplace=True),
        )


class DoubleConv(nn.Sequential):
    """One U-Net level: two ConvBNReLU."""

    def __init__(self, cin: int, cout: int, bn_momentum: float):
        super().__init__(ConvBNReLU(cin, cout, bn_momentum), ConvBNReLU(cout, cout, bn_momentum))


class UpConv(nn.Sequential):
    """Nearest 2x upsampling + 2x2 conv + BatchNorm + ReLU, as Keras' ``UpSampling2D`` then
    ``Conv2D(k=2, padding='same')`` (Keras pads an even kernel by 0 before and 1 after)."""

    def __init__(self, cin: int, cout: int, bn_momentum: float):
        super().__init__(
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.ZeroPad2d((0, 1, 0, 1)),
            nn.Conv2d(cin, cout, 2, bias=False),
            nn.BatchNorm2d(cout, momentum=bn_momentum),
            nn.ReLU(inplace=True),
        )


class UNetGenerator(nn.Module):
    """ERB / DE-GAN U-Net: ``G(degraded (B,1,H,W) in [0,1]) -> restored (B,1,H,W) in [0,1]``.

    H and W must be multiples of 16 (four 2x2 poolings).

    Args:
        width: multiplier on the filters 64-128-256-256-512 (each at least 4 channels).
        dropout: dropout probability after the two deepest levels (ERB: 0.5).
        bn_momentum: PyTorch BatchNorm momentum (Keras momentum 0.8 is PyTorch 0.2).
        output_bias: initial bias of the output layer. Lines are mostly paper: a bias of 2
            (sigmoid 0.88) starts training from blank paper instead of grey, which short runs
            need (quick profile: 20.5 dB instead of 13.9 dB after 250 pixel-loss steps).
    """

    def __init__(self, width: float = 1.0, dropout: float = 0.5, bn_momentum: float = 0.2,
                 output_bias: float = 0.0):
        super().__init__()
        c = [scaled_channels(f, width) for f in ERB_FILTERS]
        self.channels = tuple(c)
        self.enc1 = DoubleConv(1, c[0], bn_momentum)
        self.enc2 = DoubleConv(c[0], c[1], bn_momentum)
        self.enc3 = DoubleConv(c[1], c[2], bn_momentum)
        self.enc4 = DoubleConv(c[2], c[3], bn_momentum)
        self.bottleneck = DoubleConv(c[3], c[4], bn_momentum)
        self.pool = nn.MaxPool2d(2)
        # DE-GAN/ERB drop after the 4th level (its output is also the skip) and the bottleneck.
        self.drop4 = nn.Dropout(dropout)
        self.drop5 = nn.Dropout(dropout)
        self.up4 = UpConv(c[4], c[3], bn_momentum)
        self.dec4 = DoubleConv(2 * c[3], c[3], bn_momentum)
        self.up3 = UpConv(c[3], c[2], bn_momentum)
        self.dec3 = DoubleConv(2 * c[2], c[2], bn_momentum)
        self.up2 = UpConv(c[2], c[1], bn_momentum)
        self.dec2 = DoubleConv(2 * c[1], c[1], bn_momentum)
        self.up1 = UpConv(c[1], c[0], bn_momentum)
        self.dec1 = DoubleConv(2 * c[0], c[0], bn_momentum)
        self.head = nn.Conv2d(c[0], 1, 1)
        self._init_weights()
        nn.init.constant_(self.head.bias, output_bias)

    def _init_weights(self) -> None:
        # Keras 'he_normal' as in the DE-GAN/ERB code (ReLU everywhere).
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, degraded: torch.Tensor) -> torch.Tensor:
        h, w = degraded.shape[-2:]
        if degraded.dim() != 4 or degraded.shape[1] != 1 or h % 16 or w % 16:
            raise ValueError(f"UNetGenerator expects (B,1,H,W) with H and W multiples of 16, got "
                             f"{tuple(degraded.shape)}; resize or pad the lines (data.height/width)")
        e1 = self.enc1(degraded)
        e2 = self.enc2(self.pool(e1))
        e3 = self.enc3(self.pool(e2))
        e4 = self.drop4(self.enc4(self.pool(e3)))
        b = self.drop5(self.bottleneck(self.pool(e4)))
        d4 = self.dec4(torch.cat([e4, self.up4(b)], dim=1))
        d3 = self.dec3(torch.cat([e3, self.up3(d4)], dim=1))
        d2 = self.dec2(torch.cat([e2, self.up2(d3)], dim=1))
        d1 = self.dec1(torch.cat([e1, self.up1(d2)], dim=1))
        with D.full_precision(d1):  # fp32 head and sigmoid: white paper keeps its gradient under bf16
            return torch.sigmoid(self.head(d1.float()))


class SeparableConv(nn.Sequential):
    """Depthwise 3x3 conv + pointwise 1x1 conv, each followed by BatchNorm + ReLU: about 1/8 of
    a 3x3 conv's multiply-adds at equal channels (MobileNet's block)."""

    def __init__(self, cin: int, cout: int, bn_momentum: float):
        super().__init__(
            nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False),
            nn.BatchNorm2d(cin, momentum=bn_momentum),
            nn.ReLU(inplace=True),
            nn.Conv2d(cin, cout, 1, bias=False),
            nn.BatchNorm2d(cout, momentum=bn_momentum),
            nn.ReLU(inplace=True),
        )


class LightUNetGenerator(nn.Module):
    """A light U-Net for fast CPU restoration (``generator.name=light``), distilled from a trained
    :class:`UNetGenerator` (``docrestore distill``). Same contract: ``(B,1,H,W)`` in [0, 1] in,
    the restoration out. The first conv is a plain 3x3 (one input channel: a separable one would
    see a single channel), every other level one :class:`SeparableConv`, the upsampling nearest
    + 1x1 conv, the skip joined by concatenation as in ERB.

    Args:
        width: multiplier on the ERB filters 64-128-256-256-512 (each at least 4 channels).
        levels: poolings (1-4); H and W must be multiples of ``2**levels``.
        dropout, bn_momentum, output_bias: as :class:`UNetGenerator` (dropout at the bottleneck).
    """

    def __init__(self, width: float = 0.125, levels: int = 3, dropout: float = 0.0,
                 bn_momentum: float = 0.2, output_bias: float = 0.0):
        super().__init__()
        if not 1 <= levels <= 4:
            raise ValueError(f"LightUNetGenerator levels must be 1-4, got {levels}")
        c = [scaled_channels(f, width) for f in ERB_FILTERS[:levels + 1]]
        self.channels = tuple(c)
        self.levels = levels
        self.stem = ConvBNReLU(1, c[0], bn_momentum)
        self.enc = nn.ModuleList([SeparableConv(c[i - 1], c[i], bn_momentum) for i in range(1, levels + 1)])
        self.pool = nn.MaxPool2d(2)
        self.drop = nn.Dropout(dropout)
        self.up = nn.ModuleList([nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                                               nn.Conv2d(c[i], c[i - 1], 1, bias=False),
                                               nn.BatchNorm2d(c[i - 1], momentum=bn_momentum),
                                               nn.ReLU(inplace=True))
                                 for i in range(levels, 0, -1)])
        self.dec = nn.ModuleList([SeparableConv(2 * c[i - 1], c[i - 1], bn_momentum)
                                  for i in range(levels, 0, -1)])
        self.head = nn.Conv2d(c[0], 1, 1)
        UNetGenerator._init_weights(self)
        nn.init.constant_(self.head.bias, output_bias)

    def forward(self, degraded: torch.Tensor) -> torch.Tensor:
        h, w = degraded.shape[-2:]
        m = 2 ** self.levels
        if degraded.dim() != 4 or degraded.shape[1] != 1 or h % m or w % m:
            raise ValueError(f"LightUNetGenerator({self.levels} levels) expects (B,1,H,W) with H and W "
                             f"multiples of {m}, got {tuple(degraded.shape)}")
        skips = [self.stem(degraded)]
        for enc in self.enc:
            skips.append(enc(self.pool(skips[-1])))
        x = self.drop(skips.pop())
        for up, dec in zip(self.up, self.dec):
            x = dec(torch.cat([skips.pop(), up(x)], dim=1))
        with D.full_precision(x):
            return torch.sigmoid(self.head(x.float()))


GENERATORS: dict[str, type[nn.Module]] = {"unet": UNetGenerator, "light": LightUNetGenerator}


def build_generator(cfg: GeneratorConfig) -> nn.Module:
    """The generator named by ``cfg.name`` (see :data:`GENERATORS`)."""
    if cfg.name not in GENERATORS:
        raise ValueError(f"unknown generator {cfg.name!r}; known: {sorted(GENERATORS)}")
    extra = {"levels": cfg.levels} if cfg.name == "light" else {}
    return GENERATORS[cfg.name](width=cfg.width, dropout=cfg.dropout, bn_momentum=cfg.bn_momentum,
                                output_bias=cfg.output_bias, **extra)
