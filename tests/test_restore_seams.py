"""No seams: a generator restored tile by tile must not draw straight lines where tiles meet."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from docrestore import device as D
from docrestore.config import GeneratorConfig
from docrestore.models import build_generator
from docrestore.restore.tiling import restore_image

from test_restore_scale import text_page

CPU = D.pick_device("cpu")


class BorderArtefact(nn.Module):
    """Identity that darkens the outer 2 pixels of every tile, as zero padding makes a conv net
    do at its borders: the worst case for seams."""

    def forward(self, x):
        y = x.clone()
        y[..., :2, :] -= 0.3
        y[..., -2:, :] -= 0.3
        y[..., :, :2] -= 0.3
        y[..., :, -2:] -= 0.3
        return y


def seam_jumps(out: np.ndarray, img: np.ndarray, axis: int) -> float:
    """Largest jump of the output's row (axis=1) or column (axis=0) mean against the mean of its
    two neighbours, beyond the jump the input itself has there (text lines have their own)."""
    m_out, m_in = out.mean(axis=axis), img.mean(axis=axis)

    def jump(m):
        return np.abs(m[1:-1] - 0.5 * (m[:-2] + m[2:]))

    return float((jump(m_out) - jump(m_in)).max())


@pytest.mark.parametrize("model_name", ["border", "unet"])
def test_no_row_or_column_of_the_output_jumps_where_the_input_does_not(model_name):
    _, page = text_page(24, shape=(300, 700))
    if model_name == "border":
        model = BorderArtefact()
    else:  # a real (random, untrained) U-Net: zero padding at every level of every tile
        torch.manual_seed(0)
        model = build_generator(GeneratorConfig(width=0.06)).eval()
    out = restore_image(model, page, CPU, tile=(64, 128), overlap=0.25, batch_size=16)
    # rows and columns well inside the page (a tile alone covers the page's own border)
    inner_out, inner_in = out[4:-4, 4:-4], page[4:-4, 4:-4]
    # 0.003: a line 1 % darker than its neighbours is at the edge of visibility on paper
    assert seam_jumps(inner_out, inner_in, axis=1) < 0.003
    assert seam_jumps(inner_out, inner_in, axis=0) < 0.003
