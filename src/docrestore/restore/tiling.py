"""Restore images of any size with a generator trained on fixed-size line crops.

The generator sees tiles of its training size (e.g. 128 x 1024). A page is cut into overlapping
tiles; each tile's output is weighted by a smooth window (flat in the middle, a raised-cosine ramp
across the overlap) and the weighted outputs are divided by the summed weights. Neighbouring
ramps add up to one, so seams fade over the whole overlap instead of showing a grid, and every
pixel's value is a normalised weighted mean (an identity generator returns the page unchanged).

The first and last tile of each row and column sit flush with the image edges, so every pixel is
covered without padding. Only an image smaller than a tile is padded, with white paper (1.0), to
the tile size and cropped back afterwards. Why white rather than reflection: the generator was
trained on single lines with paper margins, so a short line inside white margins looks like
its training data, while a reflected border mirrors strokes into backwards text (and, for an
image much smaller than a tile, repeats it many times), which it never saw.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePath

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from .. import device as D
from ..config import RestoreConfig
from .io import (SIDECAR_KIND, ImageReadError, PageInfo, PageInput, existing_output, output_clashes,
                 read_page, write_image, write_text)
from . import scale as S

log = logging.getLogger("docrestore.restore")

# The U-Net generator halves the resolution four times: tiles must be multiples of 16.
TILE_MULTIPLE = 16
# Smallest blending weight: keeps the image-border pixels (seen only by a tile's edge) well
# conditioned when dividing by the summed weights, without changing the blend noticeably.
_MIN_WEIGHT = 1e-3


@dataclass
class RestoreReport:
    """What :func:`restore_files` did: ``ok`` holds ``(input, output)`` pairs, ``failed``
    ``(input, reason)`` pairs for pages that were skipped."""

    ok: list[tuple[Path, Path]] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    seconds: float = 0.0
    tiles: int = 0
    scales: dict[Path, S.ScaleDecision] = field(default_factory=dict)
    kept: list[tuple[Path, Path]] = field(default_factory=list)  # outputs that existed, left alone


def tile_positions(length: int, tile: int, overlap: float) -> list[int]:
    """Start offsets of tiles of size ``tile`` along an axis of ``length`` (>= ``tile``).

    Tiles advance by ``tile - round(overlap * tile)`` (at least 1 pixel); the last one is moved
    back to end exactly at ``length`` so the edge is covered without padding.
    """
    if length < tile:
        raise ValueError(f"axis of {length} px is shorter than the tile ({tile} px); pad it first")
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    stride = max(1, tile - round(overlap * tile))
    starts = list(range(0, length - tile + 1, stride))
    if starts[-1] != length - tile:
        starts.append(length - tile)
    return starts


def blend_window(size: int, overlap: float) -> np.ndarray:
    """1-D blending weights for a tile of ``size`` pixels, never exactly 0.

    Across the first and last ``ramp = round(overlap * size)`` pixels: a margin of ``ramp // 8``
    pixels at (almost) zero weight, then a raised-cosine rise sampled at pixel centres, then flat
    1.0. A convolutional generator sees zero padding at a tile's border and its outermost pixels
    come out different (darker or lighter); even a small weight there draws a faint straight line
    where tiles meet, so the margin leaves them to the neighbour. The falling side of one tile and
    the rising side of its neighbour (which starts where the overlap starts) still add up to one.
    """
    ramp = min(round(overlap * size), size // 2)
    w = np.ones(size, dtype=np.float64)
    if ramp > 0:
        margin = ramp // 8
        rise_len = ramp - 2 * margin
        rise = np.concatenate([np.zeros(margin),
                               0.5 - 0.5 * np.cos(np.pi * (np.arange(rise_len) + 0.5) / rise_len),
                               np.ones(margin)])
        w[:ramp] = rise
        w[size - ramp:] = rise[::-1]
    return np.maximum(w, _MIN_WEIGHT)


def count_tiles(shape: tuple[int, int], tile: tuple[int, int], overlap: float) -> int:
    """How many tiles :func:`restore_image` runs for an image of ``shape`` (H, W)."""
    th, tw = tile
    h, w = max(shape[0], th), max(shape[1], tw)
    return len(tile_positions(h, th, overlap)) * len(tile_positions(w, tw, overlap))


def check_tile(tile: tuple[int, int], multiple: int = TILE_MULTIPLE) -> None:
    """Raise ``ValueError`` unless both tile sides are positive multiples of ``multiple``."""
    for name, side in zip(("tile_height", "tile_width"), tile):
        if side <= 0 or side % multiple:
            down = max(multiple, side // multiple * multiple)
            raise ValueError(
                f"restore.{name}={side} is not a positive multiple of {multiple}, which the U-Net "
                f"generator needs; use e.g. restore.{name}={down} or {down + multiple}")


@torch.inference_mode()
def restore_image(model: nn.Module, image: np.ndarray, device: torch.device,
                  tile: tuple[int, int] = (128, 1024), overlap: float = 0.25, batch_size: int = 8,
                  progress: Callable[[int], object] | None = None,
                  pad_value: float = 1.0) -> np.ndarray:
    """Restore a gray ``(H, W)`` image of any size; returns a ``float32`` array of the same shape.

    ``model`` maps ``(B, 1, th, tw)`` to ``(B, 1, th, tw)`` and already lives on ``device``; it is
    run in eval mode (its previous mode is restored afterwards) under ``torch.inference_mode`` and the
    device's autocast, ``batch_size`` tiles at a time. ``progress(n)`` is called after each batch
    with the number of tiles just done (pass a tqdm bar's ``update``). An image smaller than a
    tile is centred on a ``pad_value`` canvas (white paper) and cropped back. The output is not
    clipped: it is whatever the model gives, blended.
    """
    img = np.asarray(image)
    if img.ndim != 2 or img.size == 0:
        raise ValueError(f"restore_image expects a non-empty gray (H, W) array, got shape {img.shape}")
    if not np.issubdtype(img.dtype, np.floating):
        raise ValueError(f"restore_image expects floats in [0, 1], got {img.dtype}; read files with "
                         "docrestore.restore.read_image (or divide 8-bit data by 255)")
    th, tw = int(tile[0]), int(tile[1])
    if th <= 0 or tw <= 0:
        raise ValueError(f"tile sides must be positive, got {tile}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    h, w = img.shape
    ph, pw = max(h, th), max(w, tw)
    top, left = (ph - h) // 2, (pw - w) // 2
    canvas = np.full((ph, pw), pad_value, dtype=np.float32)
    canvas[top:top + h, left:left + w] = img

    ys, xs = tile_positions(ph, th, overlap), tile_positions(pw, tw, overlap)
    window = torch.from_numpy(np.outer(blend_window(th, overlap), blend_window(tw, overlap))
                              .astype(np.float32)).to(device)
    page = torch.from_numpy(canvas).to(device)
    acc = torch.zeros_like(page)
    weight = torch.zeros_like(page)
    starts = [(y, x) for y in ys for x in xs]

    was_training = model.training
    model.eval()  # BatchNorm running stats and no dropout: the trained generator, deterministic
    try:
        for b in range(0, len(starts), batch_size):
            chunk = starts[b:b + batch_size]
            batch = torch.stack([page[y:y + th, x:x + tw] for y, x in chunk]).unsqueeze(1)
            with D.autocast(device):
                out = model(batch)
            if tuple(out.shape) != tuple(batch.shape):
                raise ValueError(f"the generator returned shape {tuple(out.shape)} for tiles of shape "
                                 f"{tuple(batch.shape)}; it must keep the input shape (B, 1, H, W)")
            out = out.float()[:, 0]
            for i, (y, x) in enumerate(chunk):
                acc[y:y + th, x:x + tw] += out[i] * window
                weight[y:y + th, x:x + tw] += window
            if progress is not None:
                progress(len(chunk))
    finally:
        model.train(was_training)
    restored = (acc / weight)[top:top + h, left:left + w]
    return restored.cpu().numpy().astype(np.float32, copy=False)


class _PageError(Exception):
    """A page that was read but could not be restored."""


def restore_scaled(model: nn.Module, image: np.ndarray, device: torch.device, restore_cfg: RestoreConfig,
                   factor: float = 1.0, progress: Callable[[int], object] | None = None) -> np.ndarray:
    """Restore ``image`` resized by ``factor`` (so its writing has the size the generator was
    trained at) and resize the result back: the output always has the input's shape."""
    tile = (restore_cfg.tile_height, restore_cfg.tile_width)
    work = image if factor == 1.0 else S.resize(image, S.scaled_shape(image.shape, factor))
    out = restore_image(model, work, device, tile=tile, overlap=restore_cfg.overlap,
                        batch_size=restore_cfg.batch_size, progress=progress)
    if restore_cfg.flip_vote:  # ERB's vote: the mirrored page restored, mirrored back, averaged
        mirrored = restore_image(model, np.ascontiguousarray(work[:, ::-1]), device, tile=tile,
                                 overlap=restore_cfg.overlap, batch_size=restore_cfg.batch_size, progress=progress)
        out = 0.5 * (out + mirrored[:, ::-1])
    return out if factor == 1.0 else S.resize(out, image.shape)


def restore_files(model: nn.Module, paths: Sequence[str | Path | PageInput], out_dir: str | Path,
                  device: torch.device, restore_cfg: RestoreConfig,
                  progress: bool = True, text_height: str | float = "off",
                  trained_height: float | None = None, on_pages: bool = False,
                  overwrite: bool = False, keep_depth: bool = False,
                  provenance: dict | None = None) -> RestoreReport:
    """Restore each image into ``out_dir`` (same size as the input), with a JSON sidecar.

    ``paths``: :class:`io.PageInput` items (from :func:`io.find_inputs`: the output mirrors
    their relative path) or plain paths (output named after the file alone). Names follow
    :func:`io.output_name` (``folio.tif`` -> ``folio.tif.png``); two inputs that would share an
    output are a ValueError naming both, before any page is computed.

    The output keeps the input's resolution (DPI) and a gray ICC profile; it is 8-bit gray, or
    16-bit when ``keep_depth`` and the input is 16-bit (or float). Beside it,
    ``<input name>.json`` (:func:`io.sidecar_name`) records the input (path, sha256, size, mode,
    depth, DPI), the output, the page's text-size decision and ``provenance`` (the run's
    checkpoint, its sha256, settings and docrestore version, see ``restore/cli.py``).

    ``text_height`` (``"auto"``, ``"off"`` or the pages' text height in px), ``trained_height``
    (the checkpoint's text height, :func:`scale.trained_text_height`) and ``on_pages`` (a
    checkpoint trained on pages: native scale) decide per page how it is resized before
    restoring (:func:`scale.decide`); each decision is logged and kept in ``report.scales``.

    ``out_dir`` is checked writable before any page is computed (ValueError naming it). An
    output (PNG and sidecar, :func:`io.existing_output`) that already exists is kept (listed in
    ``report.kept``) unless ``overwrite``; one whose sidecar is missing is made again; a file of
    its name that docrestore did not write is left alone (the page is reported failed, naming
    it) unless ``overwrite``. Each page of a multi-page TIFF is restored on its own.

    ``restore_cfg`` is a ``RestoreConfig`` (tile_height, tile_width, overlap, batch_size). Pages
    are processed one at a time, tiles in batches, so memory stays that of one page. A file that
    cannot be read, a page whose output is not finite, a page that does not fit in memory, or an
    output that cannot be written is logged by name and reported in ``failed``; the other pages
    go on.
    """
    check_tile((restore_cfg.tile_height, restore_cfg.tile_width))
    pages = [p if isinstance(p, PageInput) else PageInput(Path(p), PurePath(Path(p).name)) for p in paths]
    out_dir = Path(out_dir)
    _check_targets(pages, out_dir)
    check_writable(out_dir)
    scaling = _Scaling(text_height, trained_height, on_pages, restore_cfg.min_scale)
    report = RestoreReport()
    t0 = time.perf_counter()
    with _bars_and_logs(progress):
        bar_pages = tqdm(pages, unit="page", desc="restore", disable=not progress)
        for page in bar_pages:
            p, target = page.path, out_dir / page.output
            bar_pages.set_postfix_str(p.name, refresh=False)
            if not overwrite and _leave_alone(page, target, out_dir / page.sidecar, report):
                continue
            try:
                done = _restore_page(model, page, device, restore_cfg, scaling, progress, report)
                out, bits = _write_page(page, target, out_dir, done, keep_depth, provenance or {})
            except (ImageReadError, _PageError, torch.OutOfMemoryError, MemoryError, OSError) as exc:
                _fail(report, p, _failure_reason(exc, target, device, restore_cfg))
                continue
            report.ok.append((p, out))
            report.tiles += done.tiles
            h, w = done.image_shape
            log.info("restored %s -> %s (%d x %d, %d tiles, %d-bit%s)", p, out, h, w, done.tiles, bits,
                     f", {done.info.dpi[0]:g} dpi" if done.info.dpi else "")
    report.seconds = time.perf_counter() - t0
    return report


@dataclass(frozen=True)
class _Scaling:
    """How :func:`restore_files` decides each page's resize (the arguments of :func:`scale.decide`)."""

    text_height: str | float
    trained_height: float | None
    on_pages: bool
    min_scale: float

    def decide(self, image: np.ndarray) -> S.ScaleDecision:
        return S.decide(image, self.text_height, self.trained_height, self.on_pages, self.min_scale)


@dataclass
class _RestoredPage:
    """One page read, resized by its decision, restored and checked finite (not yet written)."""

    restored: np.ndarray
    image_shape: tuple[int, int]
    info: PageInfo
    decision: S.ScaleDecision
    tiles: int


def _check_targets(pages: list[PageInput], out_dir: Path) -> None:
    """Refuse, before any page is computed, two inputs sharing one output and an output that
    would overwrite an input (ValueError naming the files and what to do)."""
    clashes = output_clashes(pages)
    if clashes:
        first, second, name = clashes[0]
        raise ValueError(f"{first} and {second} would both be restored to {out_dir / name}; restore "
                         "them into separate --out folders, or restore their parent folder with "
                         "--recursive so the output mirrors the sub-folders")
    inputs = {page.path.resolve() for page in pages}
    for page in pages:
        for name in (page.output, page.sidecar):
            if (out_dir / name).resolve() in inputs:
                raise ValueError(f"restoring {page.path} into {out_dir} would overwrite the input file "
                                 f"{name}; choose another --out folder")


def _leave_alone(page: PageInput, target: Path, sidecar: Path, report: RestoreReport) -> bool:
    """Whether what stands at ``target`` stays as it is (without ``--overwrite``): a complete
    output is kept, a file docrestore did not write is named as the page's failure."""
    state = existing_output(target, sidecar)
    if state == "complete":
        log.info("kept %s: it exists (--overwrite replaces it)", target)
        report.kept.append((page.path, target))
        return True
    if state == "incomplete":
        log.info("%s lacks its sidecar or its image (a run stopped between the two?): made again", target)
        return False
    if state != "none":
        _fail(report, page.path, f"{state}; left untouched (--overwrite replaces it, or choose another --out)")
        return True
    return False


def _restore_page(model: nn.Module, page: PageInput, device: torch.device, restore_cfg: RestoreConfig,
                  scaling: _Scaling, progress: bool, report: RestoreReport) -> _RestoredPage:
    """Read ``page``, decide its scale (logged and kept in ``report.scales``) and restore it."""
    path = page.path
    image, info = read_page(path, max(0, page.frame - 1))
    decision = scaling.decide(image)
    log.info("%s: %s", path.name, decision.reason)
    report.scales[path] = decision
    tile = (restore_cfg.tile_height, restore_cfg.tile_width)
    n_tiles = count_tiles(S.scaled_shape(image.shape, decision.factor), tile, restore_cfg.overlap)
    n_tiles *= 2 if restore_cfg.flip_vote else 1
    with tqdm(total=n_tiles, unit="tile", leave=False, disable=not progress) as bar:
        restored = restore_scaled(model, image, device, restore_cfg, decision.factor, progress=bar.update)
    if not np.isfinite(restored).all():
        raise _PageError("the generator produced NaN or infinite values on this page "
                         "(a broken checkpoint?)")
    return _RestoredPage(restored, image.shape, info, decision, n_tiles)


def _write_page(page: PageInput, target: Path, out_dir: Path, done: _RestoredPage, keep_depth: bool,
                provenance: dict) -> tuple[Path, int]:
    """Write the restored image to ``target`` and its JSON sidecar; returns the output and its bits."""
    info = done.info
    bits = 16 if keep_depth and info.bits == 16 else 8
    icc = info.icc if info.icc_space == "GRAY" else None
    out = write_image(target, done.restored, bits=bits, dpi=info.dpi, icc=icc)
    record = sidecar(page, out, done.image_shape, info, bits, done.decision, provenance)
    write_text(out_dir / page.sidecar, json.dumps(record, indent=2) + "\n")
    return out, bits


def _failure_reason(exc: Exception, target: Path, device: torch.device, restore_cfg: RestoreConfig) -> str:
    """The reason :func:`restore_files` reports for a page that failed with ``exc``."""
    if isinstance(exc, ImageReadError):
        return exc.reason
    if isinstance(exc, _PageError):
        return str(exc)
    if isinstance(exc, torch.OutOfMemoryError):
        return f"out of memory on {device} with {restore_cfg.batch_size} tiles per batch; lower restore.batch_size"
    if isinstance(exc, MemoryError):
        return ("out of memory reading or restoring this page; free memory, lower restore.batch_size, "
                "or split the scan")
    return f"cannot write the output {target}: {exc}"  # OSError: disk full, permissions


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """The sha256 of a file's bytes (hex), read in chunks (checkpoints can be large)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sidecar(page: PageInput, out: Path, shape: tuple[int, int], info: PageInfo, bits: int,
            decision: S.ScaleDecision, provenance: dict) -> dict:
    """The JSON record written beside one output: ``provenance`` (checkpoint, settings, version)
    plus what is known about this page: input, output and the text-size decision."""
    if info.icc is None:
        icc = "none in the input"
    elif info.icc_space == "GRAY":
        icc = "kept (GRAY)"
    else:
        icc = f"dropped ({info.icc_space} profile; the output is gray)"
    return {
        "kind": SIDECAR_KIND,
        **provenance,
        "input": {"path": str(page.path), "relative": page.rel.as_posix(),
                  "sha256": sha256_file(page.path), "height": int(shape[0]), "width": int(shape[1]),
                  "format": info.format, "mode": info.mode, "bits": info.bits,
                  "dpi": list(info.dpi) if info.dpi else None,
                  "page": max(1, page.frame), "pages": page.frames},
        "output": {"file": out.name, "relative": page.output.as_posix(), "format": "PNG",
                   "bits": bits, "dpi": list(info.dpi) if info.dpi else None, "icc_profile": icc},
        "text_height": {"factor": decision.factor, "estimated_px": decision.estimated,
                        "trained_px": decision.trained, "reason": decision.reason},
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def check_writable(out_dir: Path) -> None:
    """Create ``out_dir`` and write a probe file into it, so a read-only or impossible output
    folder stops the run before any page is computed (ValueError naming it)."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / f".docrestore-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ValueError(f"cannot write into the output folder {out_dir} ({exc.strerror or exc}); "
                         "choose another --out or fix its permissions") from None


def _bars_and_logs(progress: bool):
    """While bars are drawn, send docrestore's console log lines through ``tqdm.write`` so they
    do not tear the bars apart; left alone when it has no console handler (no lines to move)."""
    root = logging.getLogger("docrestore")
    console = any(isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)
                  for h in root.handlers)
    return logging_redirect_tqdm(loggers=[root]) if progress and console else contextlib.nullcontext()


def _fail(report: RestoreReport, path: Path, reason: str) -> None:
    log.warning("failed %s: %s", path, reason)
    report.failed.append((path, reason))
