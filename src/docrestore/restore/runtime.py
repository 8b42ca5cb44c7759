"""Fast CPU inference: the generator exported to ONNX and run by ONNX Runtime.

``docrestore export --checkpoint CKPT --out model.onnx`` writes the generator of a checkpoint as
an ONNX graph with a dynamic batch, height and width (:func:`export_onnx`), after checking on a
test page that ONNX Runtime gives the same restoration as PyTorch within ``1e-3``
(:func:`max_difference`). :class:`OnnxGenerator` wraps an ONNX Runtime session as a module with
the generator's contract, so the tiled restorer runs it unchanged.

Which runtime ``docrestore restore`` uses: ``restore.runtime`` (``auto`` on a CPU is ONNX Runtime,
measured faster there; see benchmarks/bench_restore.py and the logbook; on a GPU PyTorch).
"""

from __future__ import annotations

import logging
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

log = logging.getLogger("docrestore.restore")

TOLERANCE = 1e-3
OPSET = 17


def export_onnx(generator: nn.Module, path: str | Path, tile: tuple[int, int] = (128, 1024)) -> Path:
    """Write ``generator`` (eval mode) as ONNX with dynamic batch/height/width; returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    was_training = generator.training
    generator.eval()
    dummy = torch.rand(1, 1, *tile)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with warnings.catch_warnings():
            # The shape check in forward() is evaluated once while tracing; the graph is shape-free.
            warnings.simplefilter("ignore")
            torch.onnx.export(generator, (dummy,), str(tmp), input_names=["degraded"],
                              output_names=["restored"], opset_version=OPSET, dynamo=False,
                              dynamic_axes={"degraded": {0: "batch", 2: "height", 3: "width"},
                                            "restored": {0: "batch", 2: "height", 3: "width"}})
        tmp.replace(path)
    finally:
        generator.train(was_training)
        tmp.unlink(missing_ok=True)
    return path


class OnnxGenerator(nn.Module):
    """An ONNX Runtime session with the generator's contract: ``(B,1,H,W)`` float in [0, 1] in,
    the restoration of the same shape out (a CPU tensor)."""

    def __init__(self, path: str | Path, threads: int | None = None):
        super().__init__()
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or torch.get_num_threads()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.path = Path(path)
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        arr = np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)
        return torch.from_numpy(self.session.run(None, {self.input_name: arr})[0])


def max_difference(generator: nn.Module, onnx_model: nn.Module, tiles: torch.Tensor) -> float:
    """Largest absolute difference between the two models' outputs on ``tiles`` (B,1,H,W)."""
    generator.eval()
    with torch.inference_mode():
        ref = generator(tiles).float()
    return float((onnx_model(tiles) - ref).abs().max())


def onnx_for(generator: nn.Module, tile: tuple[int, int], check: torch.Tensor | None = None,
             folder: str | Path | None = None) -> OnnxGenerator:
    """Export ``generator`` to a temporary (or ``folder``) ONNX file and load it, after checking
    that it agrees with PyTorch within :data:`TOLERANCE` on ``check`` tiles (random ones if
    None). Raises ``RuntimeError`` naming the difference when it does not."""
    folder = Path(folder or tempfile.mkdtemp(prefix="docrestore-onnx-"))
    path = export_onnx(generator, folder / "generator.onnx", tile)
    model = OnnxGenerator(path)
    if check is None:
        check = torch.rand(1, 1, *tile, generator=torch.Generator().manual_seed(0))
    diff = max_difference(generator, model, check)
    if not diff <= TOLERANCE:
        raise RuntimeError(f"the ONNX export differs from PyTorch by {diff:.2e} (> {TOLERANCE}); "
                           "restore with restore.runtime=torch")
    log.info("ONNX Runtime generator: %s, max |difference| to PyTorch %.1e", path, diff)
    return model
