"""The ONNX Runtime path of restore: export, agreement with PyTorch, the runtime choice."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from docrestore import device as D
from docrestore.config import GeneratorConfig
from docrestore.models import build_generator
from docrestore.restore.cli import pick_runtime
from docrestore.restore.runtime import OnnxGenerator, export_onnx, max_difference, onnx_for
from docrestore.restore.tiling import restore_image

from test_restore_scale import text_page

CPU = D.pick_device("cpu")


@pytest.fixture(scope="module")
def unet():
    torch.manual_seed(0)
    return build_generator(GeneratorConfig(width=0.06)).eval()


def test_onnx_restores_a_page_as_pytorch_does_within_1e_3(unet, tmp_path):
    _, page = text_page(20, shape=(150, 333))
    model = onnx_for(unet, (32, 64), folder=tmp_path)
    a = restore_image(unet, page, CPU, tile=(32, 64), overlap=0.25, batch_size=8)
    b = restore_image(model, page, CPU, tile=(32, 64), overlap=0.25, batch_size=8)
    assert a.shape == b.shape == page.shape
    assert np.abs(a - b).max() < 1e-3


def test_the_export_has_dynamic_batch_and_size(unet, tmp_path):
    path = export_onnx(unet, tmp_path / "g.onnx", tile=(32, 64))
    model = OnnxGenerator(path)
    x = torch.rand(3, 1, 48, 96)  # another batch and tile size than exported with
    assert tuple(model(x).shape) == (3, 1, 48, 96)
    assert max_difference(unet, model, x) < 1e-3


def test_auto_runtime_is_onnx_on_the_cpu_and_torch_on_a_gpu():
    assert pick_runtime("auto", torch.device("cpu")) == "onnx"
    assert pick_runtime("auto", torch.device("cuda", 0)) == "torch"
    assert pick_runtime("torch", torch.device("cpu")) == "torch"
