"""Data-parallel training of one run on several GPUs (or CPU processes), launched by ``torchrun``.

``torchrun --standalone --nproc-per-node N -m docrestore.cli train --config ...`` starts N copies
of the same command; torchrun sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` in each one's
environment. No process group code of our own: :func:`init_from_env` reads that environment and
calls ``torch.distributed.init_process_group`` (NCCL on GPUs, gloo on CPUs, chosen in
``docrestore.device``); without it (a plain ``docrestore train``, a notebook, a test) nothing is
initialised and everything is a single process, world size 1.

The split: every rank draws the same global batch of ``train.batch_size`` lines from
``EpochBatches`` (a function of seed and epoch) and keeps its share, ``indices[rank::world]``
(:func:`shard`), so all ranks take the same number of steps and a step still means one global
batch. DistributedDataParallel averages the gradients; rank 0 alone validates, writes
checkpoints and the run folder, and logs to MLflow.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from .. import device as D

log = logging.getLogger("docrestore")

# How long a rank waits in a collective: the others wait this long while rank 0 synthesises the
# dataset or pretrains the recognizer at the start of a run (NCCL's default is 10 minutes).
TIMEOUT_ENV = "DOCRESTORE_DIST_TIMEOUT_MIN"
DEFAULT_TIMEOUT_MIN = 60


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    is_main: bool = True

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


SINGLE = DistInfo()


def env_world_size() -> int:
    """WORLD_SIZE as torchrun sets it (1 when absent)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 1


def _info_from_env() -> DistInfo:
    rank = int(os.environ.get("RANK", "0"))
    return DistInfo(rank=rank, world_size=env_world_size(), local_rank=int(os.environ.get("LOCAL_RANK", "0")),
                    is_main=rank == 0)


def local_device(requested: str, info: DistInfo) -> torch.device:
    """This process's device: ``cuda:<local_rank>`` under torchrun on GPUs, else as ``requested``."""
    return D.pick_device(requested, local_rank=info.local_rank if info.distributed else None)


def init_from_env(requested_device: str = "auto") -> DistInfo:
    """Join torchrun's process group when the environment says WORLD_SIZE > 1; else one process.

    Idempotent: a second call returns the same answer without initialising again."""
    if env_world_size() <= 1:
        return SINGLE
    info = _info_from_env()
    if not dist.is_initialized():
        device = local_device(requested_device, info)
        backend = D.distributed_backend(device)
        minutes = int(os.environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT_MIN))
        kwargs = {"device_id": device} if D.is_gpu(device) else {}
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(minutes=minutes), **kwargs)
        log.info("rank %d of %d (local rank %d) on %s, backend %s", info.rank, info.world_size,
                 info.local_rank, D.describe(device), backend)
    return info


def broadcast_object(obj, info: DistInfo):
    """Rank 0's ``obj`` on every rank (picklable objects; ``obj`` itself in one process)."""
    if not info.distributed:
        return obj
    box = [obj if info.is_main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def shard(batch_indices: list[int], info: DistInfo) -> list[int]:
    """This rank's share of one global batch: ``indices[rank::world]``."""
    if not info.distributed:
        return list(batch_indices)
    if len(batch_indices) < info.world_size:
        raise ValueError(f"a batch of {len(batch_indices)} lines cannot be split over {info.world_size} "
                         "processes; set train.batch_size to at least the number of processes")
    return list(batch_indices)[info.rank::info.world_size]


def across_ranks(value: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """The sum of ``value`` over all ranks (``value`` in one process). Finite only when every
    rank's value is finite, so a step is skipped on all ranks or on none."""
    if not info.distributed:
        return value
    total = value.detach().float().clone()
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return total


def global_std(values: torch.Tensor, info: DistInfo) -> float:
    """The (unbiased) standard deviation of ``values`` concatenated over all ranks."""
    if not info.distributed:
        return values.detach().std().item()
    x = values.detach().double().flatten()
    sums = torch.stack([torch.tensor(float(x.numel()), dtype=torch.float64), x.sum().cpu(), (x * x).sum().cpu()])
    sums = sums.to(values.device)
    dist.all_reduce(sums, op=dist.ReduceOp.SUM)
    n, s, ss = sums.tolist()
    if n < 2:
        return float("nan")
    return max(0.0, (ss - s * s / n) / (n - 1)) ** 0.5


def max_across_ranks(values: list[int], info: DistInfo, device: torch.device) -> list[int]:
    """Each of ``values`` maximised over the ranks (``values`` in one process): a flag raised on
    any rank (a signal) is raised on all."""
    if not info.distributed:
        return list(values)
    t = torch.tensor(values, dtype=torch.int64, device=device)  # NCCL reduces GPU tensors only
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return [int(v) for v in t.tolist()]


def wrap(module: torch.nn.Module, device: torch.device, info: DistInfo) -> torch.nn.Module:
    """``module`` in DistributedDataParallel under torchrun; ``module`` itself in one process.
    Keep the plain module for validation and state dicts (checkpoints stay as in one process)."""
    if not info.distributed:
        return module
    from torch.nn.parallel import DistributedDataParallel

    # broadcast_buffers=False: DDP would otherwise copy rank 0's BatchNorm statistics into every
    # module in place at each forward, and the discriminator runs twice (real, fake) before one
    # backward, the pattern behind "modified by an inplace operation" failures on some
    # PyTorch/NCCL versions. The buffers are averaged once per step instead (sync_buffers).
    return DistributedDataParallel(module, device_ids=[device.index] if D.is_gpu(device) else None,
                                   broadcast_buffers=False)


def sync_buffers(modules, info: DistInfo) -> None:
    """Average the floating-point buffers (BatchNorm running statistics) of ``modules`` over the
    ranks, outside any autograd graph, so every rank holds the same model after a step.
    Integer buffers (``num_batches_tracked``) advance in step on every rank and are left alone."""
    if not info.distributed:
        return
    with torch.no_grad():
        for module in modules:
            for buf in module.buffers():
                if buf.is_floating_point():
                    dist.all_reduce(buf, op=dist.ReduceOp.SUM)
                    buf.div_(info.world_size)


@contextlib.contextmanager
def main_first(info: DistInfo):
    """Rank 0 runs the block first (it may write: synthesise data, pretrain a recognizer), the
    other ranks run it after, when they find the results ready."""
    if info.distributed and not info.is_main:
        dist.barrier()
    yield
    if info.distributed and info.is_main:
        dist.barrier()


def cleanup() -> None:
    """Leave the process group (nothing to do in one process)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
