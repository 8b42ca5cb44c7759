"""The one place that decides the device, the autocast context and the seeds.

No other module names a device string: everything else receives a ``torch.device``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

# torch is imported inside the functions that use it: the config's check of a device request
# (is_valid_request) runs in every process that loads a config, and most of those (the CLI's
# --status, the experiment scheduler, a stage that fails its checks) never need torch, whose
# import costs about 2 s of CPU.

log = logging.getLogger(__name__)


DEVICE_CHOICES = "auto, cpu, cuda or cuda:N"


def is_valid_request(requested: str) -> bool:
    """Whether ``requested`` is a device the config may ask for (checked before any run)."""
    return requested in ("auto", "cpu", "cuda") or (requested.startswith("cuda:") and requested[5:].isdigit())


def kind_of(description: str) -> str:
    """'GPU' or 'CPU' from a device description as written by :func:`describe`."""
    d = description.lower()
    if d.startswith("cuda") or "gpu" in d:
        return "GPU"
    return "CPU" if d.startswith("cpu") else description.split()[0]


def configure_threads() -> None:
    """CPU threads per process: $DOCRESTORE_THREADS when set (the experiment runner sets it to
    cores / jobs, because oversubscribed OpenMP threads make small convolutions 5x slower)."""
    import torch

    n = os.environ.get("DOCRESTORE_THREADS")
    if n and n.isdigit() and int(n) > 0 and torch.get_num_threads() != int(n):
        torch.set_num_threads(int(n))


def pick_device(requested: str = "auto", local_rank: int | None = None) -> torch.device:
    """``auto`` takes the first CUDA GPU when there is one and says why it falls back to CPU.

    ``local_rank`` (set only under ``torchrun`` with more than one process): ``auto`` and ``cuda``
    take ``cuda:<local_rank>``, one GPU per process, and make it the current CUDA device."""
    import torch

    configure_threads()
    if requested == "cpu":
        return torch.device("cpu")
    if local_rank is not None and requested in ("auto", "cuda") and torch.cuda.is_available():
        if local_rank >= torch.cuda.device_count():
            raise RuntimeError(f"LOCAL_RANK={local_rank} but only {torch.cuda.device_count()} GPU(s) are "
                               "visible; start no more processes per node than GPUs (--nproc-per-node)")
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    if local_rank is not None and requested.startswith("cuda:"):
        raise ValueError(f"device={requested!r} pins one GPU, but under torchrun every process takes its "
                         "own GPU (cuda:<LOCAL_RANK>); use device=auto or device=cuda")
    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        log.info("device=auto: no CUDA GPU is visible (torch.cuda.is_available() is False); using the CPU")
        return torch.device("cpu")
    if requested.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RuntimeError(f"device={requested!r} was asked for but no CUDA GPU is visible; "
                               "use device=auto or device=cpu")
        idx = int(requested.split(":")[1]) if ":" in requested else 0
        if idx >= torch.cuda.device_count():
            raise RuntimeError(f"device={requested!r}: only {torch.cuda.device_count()} GPU(s) visible")
        return torch.device("cuda", idx)
    raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {requested!r}")


def is_gpu(device: torch.device) -> bool:
    return device.type == "cuda"


def distributed_backend(device: torch.device) -> str:
    """The torch.distributed backend for processes training on ``device``: NCCL between GPUs,
    gloo between CPU processes."""
    return "nccl" if is_gpu(device) else "gloo"


def has_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def describe(device: torch.device) -> str:
    import torch

    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return f"cpu ({torch.get_num_threads()} threads)"


# "auto": bf16 autocast on GPU, fp32 on CPU; "bf16": bf16 autocast on any device (the CPU tests of
# the bf16 path, gpu-check); "fp32": no autocast anywhere (gpu-check's fp32 reference).
PRECISIONS = ("auto", "bf16", "fp32")
_precision = "auto"


@contextlib.contextmanager
def precision(name: str):
    """Within the block, :func:`autocast` follows ``name`` (one of :data:`PRECISIONS`)."""
    global _precision
    if name not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {name!r}")
    before, _precision = _precision, name
    try:
        yield
    finally:
        _precision = before


def autocast(device: torch.device):
    """bf16 autocast on GPU; a null context on CPU (CPU autocast is slower than fp32 here).
    :func:`precision` changes that for a block."""
    import torch

    if _precision == "fp32" or (_precision == "auto" and device.type != "cuda"):
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def full_precision(x: torch.Tensor):
    """A block computed in fp32 even inside :func:`autocast` (the generator's last layer and
    sigmoid: bf16 rounds outputs above ~0.998 to exactly 1.0, where the sigmoid's gradient is 0)."""
    import torch

    return torch.autocast(device_type=x.device.type, enabled=False)


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)


def seed_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: derive NumPy/random seeds from torch's per-worker seed."""
    import torch

    s = torch.initial_seed() % 2**32
    np.random.seed(s)
    random.seed(s)


def generator(seed: int) -> torch.Generator:
    """A CPU torch.Generator for DataLoader shuffling, so data order is reproducible."""
    import torch

    g = torch.Generator()
    g.manual_seed(seed)
    return g


def cuda_visible() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0
