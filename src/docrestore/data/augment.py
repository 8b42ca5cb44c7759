"""Line augmentation for recognizer training: the same text in a slightly different hand.

A CRNN trained on a few thousand synthetic lines learns the rendered fonts' exact stroke widths,
slant and contrast and reads other lines badly (the quick held-out reader read its own clean
validation lines at 35 % CER). Varying what a scribe varies — pen width, size, slant, baseline,
ink contrast — costs nothing on the CPU and leaves the transcription valid, so it is done on the
batch, in torch, with its own generator (the global random stream stays as it was).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def augment_lines(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Randomly thickened/thinned, scaled, slanted, shifted and faded copies of lines ``x``.

    ``x`` is ``(B,1,H,W)`` in [0, 1], ink dark on white paper; the result has the same shape and
    range. Per line: the ink is blended half-way towards a 3x3 dilation (a fifth of the lines) or
    erosion (another fifth); the line is scaled by 0.9-1.1, sheared by up to +-0.3 (slant) and
    moved by up to +-7.5 % of its height; ink contrast is scaled by 0.6-1.0 and Gaussian noise of
    sd 0.03 is added. The scale stays close to 1 so that no character leaves the line.
    """
    if x.dim() != 4 or x.shape[1] != 1:
        raise ValueError(f"augment_lines expects lines (B,1,H,W), got {tuple(x.shape)}")
    b, _, h, w = x.shape
    dev = x.device

    def uniform(*shape):
        return torch.rand(*shape, generator=generator).to(dev)

    # pen width: min-pool thickens dark ink, max-pool thins it
    r = uniform(b).view(b, 1, 1, 1)
    thick = -F.max_pool2d(-x, 3, 1, 1)
    thin = F.max_pool2d(x, 3, 1, 1)
    x = torch.where(r < 0.2, 0.5 * x + 0.5 * thick, x)
    x = torch.where(r > 0.8, 0.5 * x + 0.5 * thin, x)
    # size, slant, baseline; outside the line is paper (1), hence the shift by one around sampling
    theta = torch.zeros(b, 2, 3, device=dev)
    scale = 1 + (uniform(b) - 0.5) * 0.2
    theta[:, 0, 0] = scale
    theta[:, 1, 1] = scale
    theta[:, 0, 1] = (uniform(b) - 0.5) * 0.6 * h / w
    theta[:, 1, 2] = (uniform(b) - 0.5) * 0.15
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x - 1, grid, align_corners=False, padding_mode="zeros") + 1
    # ink contrast and sensor noise
    contrast = 0.6 + 0.4 * uniform(b, 1, 1, 1)
    noise = torch.randn(x.shape, generator=generator).to(dev) * 0.03
    return (1 - (1 - x) * contrast + noise).clamp(0, 1)
