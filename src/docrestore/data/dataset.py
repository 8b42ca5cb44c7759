"""Torch datasets of line images: synthetic triplets or real lines (no clean image).

Every line comes out ``height x width``: an image of another size (real lines) is resized to
the height keeping its aspect ratio, then padded with white paper on the right or cropped to
the width. Values are floats in [0, 1], ink dark on light paper.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from . import manifest as M
from .charset import Charset
from .paths import DataError


def load_line(path: str | Path, height: int, width: int) -> np.ndarray:
    """A grayscale line image as float32 (height, width) in [0, 1]; see the module docstring."""
    try:
        with Image.open(path) as im:
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(im, dtype=np.float32)
                arr = arr / (65535.0 if arr.max() > 255 else 255.0)
                im = Image.fromarray(arr.astype(np.float32))
            elif im.mode != "L":
                im = im.convert("L")
            if im.size != (width, height):
                new_w = max(1, int(round(im.width * height / im.height)))
                im = im.resize((new_w, height), Image.Resampling.BILINEAR)
            arr = np.asarray(im, dtype=np.float32)
    except OSError as exc:
        raise DataError(f"cannot read line image {path}: {exc}. Check the file (and the manifest path)") from exc
    if im.mode == "L":
        arr = arr / 255.0
    if arr.shape[1] != width:
        out = np.ones((height, width), dtype=np.float32)  # white paper
        w = min(width, arr.shape[1])
        out[:, :w] = arr[:, :w]
        arr = out
    return np.clip(arr, 0.0, 1.0)


class LineDataset(Dataset):
    """Lines of one split of a manifest.

    Item: ``{"degraded": (1,H,W), "clean": (1,H,W) (zeros when absent), "has_clean": bool,
    "text": str, "target": LongTensor of class indices, "id": str}``."""

    def __init__(self, manifest: str | Path, split: str, height: int, width: int, charset: Charset):
        if split not in M.SPLITS:
            raise DataError(f"split must be one of {list(M.SPLITS)}, got {split!r}")
        self.manifest = Path(manifest)
        self.split = split
        self.height = height
        self.width = width
        self.charset = charset
        self.records = [r for r in M.read_manifest(self.manifest) if r["split"] == split]
        if not self.records:
            raise DataError(f"manifest {self.manifest} has no lines in split {split!r}; "
                            f"counts: {M.split_counts(M.read_manifest(self.manifest))}")
        # Encode every text now: an unknown character fails here, naming it, not mid-epoch.
        self.targets = [charset.encode(r["text"], where=f"id {r['id']!r} in {self.manifest}")
                        for r in self.records]

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict:
        rec = self.records[index]
        degraded = load_line(M.resolve(self.manifest, rec["degraded"]), self.height, self.width)
        has_clean = rec.get("clean") is not None
        if has_clean:
            clean = load_line(M.resolve(self.manifest, rec["clean"]), self.height, self.width)
        else:
            clean = np.zeros((self.height, self.width), dtype=np.float32)
        return {
            "degraded": torch.from_numpy(degraded).unsqueeze(0),
            "clean": torch.from_numpy(clean).unsqueeze(0),
            "has_clean": has_clean,
            "text": rec["text"],
            "target": torch.tensor(self.targets[index], dtype=torch.long),
            "id": rec["id"],
        }


def collate_lines(items: list[dict]) -> dict:
    """Batch items: images stacked to (B,1,H,W), targets concatenated for CTC."""
    targets = [it["target"] for it in items]
    return {
        "degraded": torch.stack([it["degraded"] for it in items]),
        "clean": torch.stack([it["clean"] for it in items]),
        "has_clean": torch.tensor([bool(it["has_clean"]) for it in items], dtype=torch.bool),
        "texts": [it["text"] for it in items],
        "ids": [it["id"] for it in items],
        "targets": torch.cat(targets) if targets else torch.zeros(0, dtype=torch.long),
        "target_lengths": torch.tensor([len(t) for t in targets], dtype=torch.long),
    }
