"""Loading line data: a config's dataset as train/val/test :class:`LineDataset` splits with its
charset and manifest hash (:func:`open_data`), batches in a fixed order (:func:`loader`), the
fixed validation subset, and batches back to numpy images. Training and evaluation both read
their lines through here."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from .. import config as C
from .. import device as D
from . import manifest as M
from .charset import Charset
from .dataset import LineDataset, collate_lines


@dataclass
class Data:
    """A line dataset's train/val/test splits, its charset and the hash of its manifest."""

    manifest: Path
    charset: object  # docrestore.data.charset.Charset
    train: object
    val: object
    test: object
    data_hash: str


def open_data(cfg: C.Config) -> Data:
    """The dataset of ``cfg`` (synthesised first when missing) as train/val/test LineDatasets."""
    from .synth import ensure_dataset

    manifest = Path(ensure_dataset(cfg))
    charset = Charset.from_file(manifest.parent / "charset.txt")
    h, w = cfg.data.height, cfg.data.width
    splits = {s: LineDataset(manifest, s, h, w, charset) for s in ("train", "val", "test")}
    return Data(manifest, charset, splits["train"], splits["val"], splits["test"], M.manifest_hash(manifest))


def loader(dataset, cfg: C.Config, batch_sampler=None, batch_size: int | None = None) -> DataLoader:
    workers = cfg.data.loader_workers
    # Its own generator: creating a DataLoader iterator draws a seed, which must not come from the
    # global RNG, or a resumed run (which creates one iterator more) would drift from the original.
    kwargs = dict(num_workers=workers, collate_fn=collate_lines, worker_init_fn=D.seed_worker,
                  persistent_workers=False, pin_memory=False, generator=D.generator(cfg.seed))
    if batch_sampler is not None:
        return DataLoader(dataset, batch_sampler=batch_sampler, **kwargs)
    return DataLoader(dataset, batch_size=batch_size or cfg.train.batch_size, shuffle=False, **kwargs)


def subset(dataset, n: int):
    """The first ``n`` items (validation uses a fixed subset so curves are comparable)."""
    if n <= 0 or n >= len(dataset):
        return dataset
    return torch.utils.data.Subset(dataset, list(range(n)))


def to_numpy_images(x: torch.Tensor) -> np.ndarray:
    return x.detach().float().clamp(0, 1).cpu().numpy()[:, 0]
