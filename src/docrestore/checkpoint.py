"""Checkpoints: atomic save, CPU-safe load, and rebuilding models from a checkpoint.

A checkpoint is a plain dict (docs/architecture.md): ``kind`` ("gan" | "recognizer"),
``config`` (the resolved config as a dict), ``charset`` (list of characters), ``step``,
``epoch``, ``models`` {name: state_dict}, ``optimizers`` {name: state_dict}, ``scaler``,
``rng`` (:func:`capture_rng`), ``best`` {metric: value}, ``history`` (validation records).

Only plain data goes in (tensors, numbers, strings, lists, tuples, dicts; NumPy scalars and
arrays, paths and config dataclasses are converted on save), never pickled modules, so a
checkpoint loads with ``torch.load(weights_only=True)`` and without the code that wrote it.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import random
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from . import device as devices
from .config import Config, from_dict, to_dict
from .files import replacing
from .models import build_generator, build_recognizer, unwrap

log = logging.getLogger(__name__)

KINDS = ("gan", "recognizer")
REQUIRED_KEYS = ("kind", "config", "models")
_PLAIN = (type(None), bool, int, float, str, bytes)


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, unreadable or of the wrong kind."""


# ------------------------------------------------------------------------------------ save
def _portable(obj: Any, where: str) -> Any:
    """A copy of ``obj`` made of CPU tensors and plain Python data; raises TypeError otherwise."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return _portable(to_dict(obj), where)
    if isinstance(obj, dict):
        out = OrderedDict() if isinstance(obj, OrderedDict) else {}
        for k, v in obj.items():
            if not isinstance(k, (str, int, float, bool, type(None))):
                raise TypeError(f"checkpoint key {where}[{k!r}] is a {type(k).__name__}; "
                                "use str or int keys")
            out[k] = _portable(v, f"{where}[{k!r}]")
        meta = getattr(obj, "_metadata", None)  # state dicts carry per-module versions (BatchNorm)
        if meta is not None:
            out._metadata = meta  # type: ignore[attr-defined]
        return out
    if isinstance(obj, list):
        return [_portable(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, tuple):
        return tuple(_portable(v, f"{where}[{i}]") for i, v in enumerate(obj))
    if isinstance(obj, _PLAIN):
        return obj
    if isinstance(obj, nn.Module):
        raise TypeError(f"checkpoint entry {where} is a whole module ({type(obj).__name__}); save its "
                        "state_dict() instead (see checkpoint.state_dicts)")
    raise TypeError(f"checkpoint entry {where} is a {type(obj).__name__}, which a weights-only load "
                    "cannot read; store plain data (tensors, numbers, strings, lists, dicts) instead")


def save_checkpoint(path: str | Path, ckpt: dict) -> Path:
    """Write ``ckpt`` to ``path`` atomically: tensors are copied to the CPU, the file is written to
    a temporary file of this writer's own in the same folder (two trainers saving one ``last.pt``
    cannot rename each other's file away), flushed to disk and renamed over ``path``. A crash or
    kill mid-write leaves the previous ``path`` intact. Returns ``path``."""
    path = Path(path)
    if not isinstance(ckpt, dict):
        raise TypeError(f"a checkpoint is a dict, got {type(ckpt).__name__}")
    missing = [k for k in REQUIRED_KEYS if k not in ckpt]
    if missing:
        raise ValueError(f"checkpoint for {path} lacks {missing}; a checkpoint needs at least "
                         f"{list(REQUIRED_KEYS)} (see docs/architecture.md)")
    if ckpt["kind"] not in KINDS:
        raise ValueError(f"checkpoint kind must be one of {list(KINDS)}, got {ckpt['kind']!r}")
    payload = _portable(ckpt, "ckpt")
    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path) as tmp, open(tmp, "wb") as f:
        torch.save(payload, f)
        f.flush()
        os.fsync(f.fileno())
    try:  # make the rename itself durable; not possible on every platform
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass
    return path


def load_checkpoint(path: str | Path) -> dict:
    """Read a checkpoint onto the CPU (``weights_only=True``: plain data only)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path} (check the path, or train/pretrain first)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, not a torch file, foreign pickle ...
        raise CheckpointError(
            f"could not read checkpoint {path}: {type(exc).__name__}: {exc}. The file is corrupt or "
            "truncated (an interrupted copy?) or was not written by docrestore.checkpoint."
            "save_checkpoint; use an intact copy (e.g. last.pt or best_*.pt of the run)") from exc
    if not isinstance(ckpt, dict) or "kind" not in ckpt:
        raise CheckpointError(f"{path} is a torch file but not a docrestore checkpoint (no 'kind' key)")
    return ckpt


def state_dicts(**modules) -> dict[str, dict]:
    """``{name: module.state_dict()}`` for models, optimisers or scalers (``None`` ones skipped);
    a frozen recognizer is saved as the plain recognizer it wraps."""
    return {name: unwrap(m).state_dict() if isinstance(m, nn.Module) else m.state_dict()
            for name, m in modules.items() if m is not None}


# ------------------------------------------------------------------------------------- RNG
def capture_rng() -> dict:
    """The states of Python's, NumPy's and torch's (CPU and every GPU) random generators."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {"name": str(name), "keys": [int(k) for k in keys], "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(),
        "gpu": [],
    }
    if devices.has_gpu():
        state["gpu"] = list(torch.cuda.get_rng_state_all())
    return state


def restore_rng(state: dict) -> None:
    """Put back the generator states of :func:`capture_rng` (e.g. on resume)."""
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    np_state = state["numpy"]
    np.random.set_state((np_state["name"], np.asarray(np_state["keys"], dtype=np.uint32),
                         np_state["pos"], np_state["has_gauss"], np_state["cached_gaussian"]))
    torch.set_rng_state(state["torch"].cpu())
    gpu = state.get("gpu") or []
    if gpu and devices.has_gpu():
        if len(gpu) == devices.cuda_visible():
            torch.cuda.set_rng_state_all([s.cpu() for s in gpu])
        else:
            log.warning("checkpoint has RNG states for %d GPU(s) but %d are visible; GPU random "
                        "streams are not restored", len(gpu), devices.cuda_visible())


# ------------------------------------------------------------------------------ rebuilding
def _config(ckpt: dict, path: Path) -> Config:
    try:
        return from_dict(ckpt["config"])
    except Exception as exc:
        raise CheckpointError(f"the config stored in {path} does not fit this version of docrestore: "
                              f"{exc}") from exc


def _load_weights(model: nn.Module, state: dict, what: str, path: Path) -> None:
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError(f"the {what} weights in {path} do not match the {what} its config "
                              f"describes: {exc}") from exc


def load_generator(path: str | Path, device: torch.device) -> tuple[nn.Module, Config]:
    """The generator of a GAN checkpoint, on ``device`` in eval mode, and the run's config."""
    path = Path(path)
    ckpt = load_checkpoint(path)
    models = ckpt.get("models") or {}
    if "generator" not in models:
        raise CheckpointError(
            f"{path} holds no generator (kind={ckpt.get('kind')!r}, models: {sorted(models)}); "
            "load_generator needs a GAN checkpoint (kind 'gan', from the train stage). For a "
            "recognizer checkpoint use load_recognizer")
    cfg = _config(ckpt, path)
    generator = build_generator(cfg.generator)
    _load_weights(generator, models["generator"], "generator", path)
    return generator.to(device).eval(), cfg


def init_generator(generator: nn.Module, path: str | Path, generator_cfg) -> None:
    """Start ``generator`` from the generator weights of the GAN checkpoint ``path``
    (``train.init_from``); its architecture (name, width) must equal ``generator_cfg``'s."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"train.init_from={path}: file not found; give a GAN checkpoint (best_*.pt or last.pt)")
    ckpt = load_checkpoint(path)
    if "generator" not in (ckpt.get("models") or {}):
        raise CheckpointError(f"train.init_from={path} holds no generator (kind={ckpt.get('kind')!r}); "
                              "give a GAN checkpoint of the train stage")
    theirs = _config(ckpt, path).generator
    if (theirs.name, theirs.width) != (generator_cfg.name, generator_cfg.width):
        raise CheckpointError(f"train.init_from={path} holds a {theirs.name} generator of width {theirs.width} but "
                              f"this run builds {generator_cfg.name} of width {generator_cfg.width}; set "
                              f"generator.width={theirs.width}")
    _load_weights(generator, ckpt["models"]["generator"], "generator", path)


def load_recognizer(path: str | Path, device: torch.device) -> tuple[nn.Module, list[str], Config]:
    """The recognizer of a checkpoint (a pretrained recognizer, or one trained in a GAN run), on
    ``device`` in eval mode, its charset characters (index 1 first) and the run's config.
    The architecture is ``config.recognizer``; classes = len(charset) + 1 (the blank)."""
    path = Path(path)
    ckpt = load_checkpoint(path)
    models = ckpt.get("models") or {}
    if "recognizer" not in models:
        raise CheckpointError(
            f"{path} holds no recognizer (kind={ckpt.get('kind')!r}, models: {sorted(models)}); "
            "load_recognizer needs a checkpoint of the pretrain stage (kind 'recognizer')")
    charset = list(ckpt.get("charset") or [])
    if not charset:
        raise CheckpointError(f"{path} has no charset; a recognizer checkpoint must store its "
                              "characters under 'charset'")
    cfg = _config(ckpt, path)
    recognizer = build_recognizer(cfg.recognizer, num_classes=len(charset) + 1, height=cfg.data.height)
    _load_weights(recognizer, models["recognizer"], "recognizer", path)
    return recognizer.to(device).eval(), charset, cfg
