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
    from ..files import replacing

    try:
        with replacing(path, suffix=".onnx") as tmp, warnings.catch_warnings():
            # The shape check in forward() is evaluated once while tracing; the graph is shape-free.
            warnings.simplefilter("ignore")
            torch.onnx.export(generator, (dummy,), str(tmp), input_names=["degraded"],
                              output_names=["restored"], opset_version=OPSET, dynamo=False,
                              dynamic_axes={"degraded": {0: "batch", 2: "height", 3: "width"},
                                            "restored": {0: "batch", 2: "height", 3: "width"}})
    finally:
        generator.train(was_training)
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


def synthetic_page(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A stained, noisy page with rows of dark stroke clusters, float32 in [0, 1]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    stain = 0.12 * np.sin(yy / 173.0 + 1.3) * np.cos(xx / 241.0)  # slow, blotchy background
    page = 0.82 + stain + rng.normal(0.0, 0.04, (h, w)).astype(np.float32)
    line_h = 80
    for top in range(60, h - line_h, line_h):
        x = int(rng.integers(40, 120))
        while x < w - 60:
            word = int(rng.integers(30, 200))
            for sx in range(x, min(x + word, w - 4), int(rng.integers(6, 14))):
                sy = top + int(rng.integers(10, 25))
                page[sy:sy + int(rng.integers(20, 45)), sx:sx + 3] -= 0.6  # a vertical stroke
            page[top + 40:top + 43, x:x + word] -= 0.5  # a baseline-ish connection
            x += word + int(rng.integers(15, 40))
    return np.clip(page, 0.0, 1.0)


def page_crop(image: np.ndarray, tile: tuple[int, int], tiles: tuple[int, int] = (2, 2)) -> torch.Tensor:
    """A ``tiles`` x ``tile`` crop from the middle of a page (padded with paper when smaller) as a
    (1,1,H,W) tensor: the check input of an export (ink, paper and stains of a real page)."""
    h, w = tile[0] * tiles[0], tile[1] * tiles[1]
    ph, pw = max(h, image.shape[0]), max(w, image.shape[1])
    page = np.pad(image, ((0, ph - image.shape[0]), (0, pw - image.shape[1])), constant_values=1.0)
    y, x = (ph - h) // 2, (pw - w) // 2
    return torch.from_numpy(np.ascontiguousarray(page[y:y + h, x:x + w], dtype=np.float32))[None, None]


def main_cli(args) -> int:
    """``docrestore export --checkpoint CKPT --out model.onnx [--check-page PAGE] [--overwrite]``.

    Writes the generator of ``CKPT`` as ONNX (dynamic batch/height/width) and checks ONNX Runtime
    against PyTorch within :data:`TOLERANCE` on a crop of ``--check-page`` (or a made-up page).
    Exit 0 when written and checked, 2 on a usage error or a failed check (nothing is left at
    ``--out`` then; an existing file is kept unless ``--overwrite``)."""
    import sys

    from .. import checkpoint as CK
    from .io import ImageReadError, read_page

    prog = "docrestore export"

    def fail(msg: str) -> int:
        print(f"{prog}: {msg}", file=sys.stderr)
        return 2

    out = Path(args.out)
    if out.exists() and not getattr(args, "overwrite", False):
        return fail(f"{out} exists; --overwrite replaces it, or choose another --out")
    if out.suffix.lower() != ".onnx":
        return fail(f"--out {out} should end in .onnx")
    try:
        generator, cfg = CK.load_generator(args.checkpoint, torch.device("cpu"))
    except CK.CheckpointError as exc:
        return fail(f"cannot load a generator from {args.checkpoint}: {exc}")
    tile = (cfg.data.height, cfg.data.width)
    if args.check_page:
        try:
            image, _ = read_page(args.check_page)
        except ImageReadError as exc:
            return fail(str(exc))
        check, where = page_crop(image, tile), f"a crop of {args.check_page}"
    else:
        check, where = page_crop(synthetic_page(max(512, tile[0] * 4), max(512, tile[1] * 4)), tile), "a made-up page"
    from ..files import temporary_beside

    with temporary_beside(out, suffix=".check.onnx") as tmp:  # one per writer: two exports never collide
        export_onnx(generator, tmp, tile)
        diff = max_difference(generator, OnnxGenerator(tmp), check)
        if not diff <= TOLERANCE:
            return fail(f"ONNX Runtime differs from PyTorch by {diff:.2e} (> {TOLERANCE}) on {where}; "
                        f"nothing written (restore with restore.runtime=torch)")
        tmp.replace(out)
    print(f"wrote {out} ({cfg.generator.name}, width {cfg.generator.width}); max |ONNX - PyTorch| = "
          f"{diff:.1e} on {where} ({tuple(check.shape[-2:])})")
    return 0
