"""Torch datasets of line images: synthetic triplets or real lines (no clean image).

Every line comes out ``height x width``: an image of another size (real lines) is resized to
the height keeping its aspect ratio, then padded with white paper on the right. A line that is
then wider than ``width`` is never cropped (its transcription would name text that is not in the
image): it is squeezed horizontally to ``width`` so all of its text stays in, and the dataset
counts such lines (``LineDataset.fit_counts``, logged at load). Values are floats in [0, 1], ink
dark on light paper.

A line without a clean image (a real archive line, ``clean: null``) gets a clean tensor of NaN
and ``has_clean`` False: never a fake (black or white) target. Every loss and metric that needs
the clean image must select the lines with ``has_clean``; one that forgets turns NaN instead of
silently learning a wrong target.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from ..files import replacing
from . import manifest as M
from .charset import Charset
from .paths import DataError

log = logging.getLogger("docrestore")


def fitted_width(size: tuple[int, int], height: int) -> int:
    """The width of a ``(width, height)`` image once scaled to ``height`` keeping its aspect ratio."""
    w, h = size
    return max(1, int(round(w * height / max(1, h))))


def fit(size: tuple[int, int], height: int, width: int) -> str:
    """How a line image of ``size`` (width, height) is brought to ``height x width``: 'fits'
    (padded with paper when narrower) or 'squeezed' (wider than ``width`` after scaling to the
    height: resized to fit, keeping all of its text)."""
    return "squeezed" if fitted_width(size, height) > width else "fits"


def save_png(path: Path, image: np.ndarray) -> None:
    """8-bit grayscale PNG, written to a temporary name and renamed (never half a file)."""
    # zlib's Z_RLE strategy (compress_type=3): "almost as fast as Huffman-only but better for PNG
    # data": here 1.5x faster than the default and as small (noise defeats long matches anyway).
    with replacing(path) as tmp:
        Image.fromarray(image).save(tmp, format="PNG", compress_type=3)


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
                # Never cropped: a line wider than `width` is squeezed to it (see the module docstring).
                new_w = min(width, fitted_width(im.size, height))
                im = im.resize((new_w, height), Image.Resampling.BILINEAR)
            arr = np.asarray(im, dtype=np.float32)
    except OSError as exc:
        raise DataError(f"cannot read line image {path}: {exc}. Check the file (and the manifest path)") from exc
    if im.mode == "L":
        arr = arr / 255.0
    if arr.shape[1] != width:
        out = np.ones((height, width), dtype=np.float32)  # white paper on the right
        out[:, :arr.shape[1]] = arr
        arr = out
    return np.clip(arr, 0.0, 1.0)


class LineDataset(Dataset):
    """Lines of one split of a manifest.

    Item: ``{"degraded": (1,H,W), "clean": (1,H,W) (NaN when absent), "has_clean": bool,
    "text": str, "target": LongTensor of class indices, "id": str, "font": str ('' for real lines)}``.
    ``fit_counts``: how many lines fit the width and how many are squeezed to it."""

    def __init__(self, manifest: str | Path, split: str, height: int, width: int, charset: Charset,
                 transcribed_only: bool = False):
        if split not in M.ALL_SPLITS + (M.EVERY_SPLIT,):
            raise DataError(f"split must be one of {list(M.ALL_SPLITS + (M.EVERY_SPLIT,))}, got {split!r}")
        self.manifest = Path(manifest)
        self.split = split
        self.height = height
        self.width = width
        self.charset = charset
        records = M.read_manifest(self.manifest)
        self.records = [r for r in records if split == M.EVERY_SPLIT or r["split"] == split]
        if not self.records:
            raise DataError(f"manifest {self.manifest} has no lines in split {split!r}; "
                            f"counts: {M.split_counts(records)}")
        # Evaluation compares a reading with the transcription: lines without one are skipped, counted.
        self.untranscribed = 0
        if transcribed_only:
            kept = [r for r in self.records if M.has_transcription(r)]
            self.untranscribed = len(self.records) - len(kept)
            if not kept:
                raise DataError(f"manifest {self.manifest}: none of its {len(self.records)} lines in split "
                                f"{split!r} has a transcription (\"text\"), which evaluation compares the "
                                "reading with; transcribe some of them, or restore the lines without "
                                "measuring them (docrestore restore)")
            if self.untranscribed:
                log.info("%s split %r: %d of %d lines have no transcription and are not evaluated",
                         self.manifest, split, self.untranscribed, len(self.records))
            self.records = kept
        # Encode every text now: an unknown character fails here, naming it, not mid-epoch.
        self.targets = [charset.encode(r["text"], where=f"id {r['id']!r} in {self.manifest}")
                        for r in self.records]
        self.fit_counts = fit_counts(self.manifest, self.records, height, width)
        if self.fit_counts["squeezed"]:
            log.info("%s split %r: %d of %d lines are wider than %d px at height %d and are squeezed to "
                     "fit (never cropped: their whole text stays in the image)", self.manifest, split,
                     self.fit_counts["squeezed"], len(self.records), width, height)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict:
        rec = self.records[index]
        degraded = load_line(M.resolve(self.manifest, rec["degraded"]), self.height, self.width)
        has_clean = rec.get("clean") is not None
        if has_clean:
            clean = load_line(M.resolve(self.manifest, rec["clean"]), self.height, self.width)
        else:
            clean = np.full((self.height, self.width), np.nan, dtype=np.float32)  # no fake target
        return {
            "degraded": torch.from_numpy(degraded).unsqueeze(0),
            "clean": torch.from_numpy(clean).unsqueeze(0),
            "has_clean": has_clean,
            "text": rec["text"],
            "target": torch.tensor(self.targets[index], dtype=torch.long),
            "id": rec["id"],
            "font": rec.get("font") or "",
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
        "fonts": [it.get("font", "") for it in items],
        "targets": torch.cat(targets) if targets else torch.zeros(0, dtype=torch.long),
        "target_lengths": torch.tensor([len(t) for t in targets], dtype=torch.long),
    }


def image_size(manifest: str | Path, rec: dict) -> tuple[int, int]:
    """(width, height) of a record's degraded image: from the record when it says, else the file
    header (cheap: the pixels are not decoded)."""
    if rec.get("width") and rec.get("height"):
        return int(rec["width"]), int(rec["height"])
    try:
        with Image.open(M.resolve(manifest, rec["degraded"])) as im:
            return im.size
    except OSError as exc:
        raise DataError(f"cannot read line image {M.resolve(manifest, rec['degraded'])} (id {rec['id']!r}): "
                        f"{exc}. Check the file (and the manifest path)") from exc


def fit_counts(manifest: str | Path, records: list[dict], height: int, width: int) -> dict[str, int]:
    """``{"fits": n, "squeezed": n}`` over ``records`` (see :func:`fit`)."""
    counts = {"fits": 0, "squeezed": 0}
    for rec in records:
        counts[fit(image_size(manifest, rec), height, width)] += 1
    return counts


def readable(batch: dict) -> torch.Tensor:
    """The best image of each line of a batch for a reader to learn from: the clean line where
    there is one, else the degraded line itself (a real line has no other)."""
    mask = batch["has_clean"].to(batch["clean"].device).view(-1, 1, 1, 1)
    return torch.where(mask, batch["clean"], batch["degraded"])


def ctc_frames_needed(target) -> int:
    """Frames CTC needs for a label sequence: one per label plus a blank between repeated labels."""
    t = list(target)
    return len(t) + sum(1 for a, b in zip(t, t[1:]) if a == b)


def check_frames(dataset: LineDataset, frames: int, fatal: bool = True) -> list[str]:
    """Ids of the lines whose transcription needs more CTC frames than the recognizer has for a
    line (``frames``): their CTC would be infinite, which ``zero_infinity`` turns into a silent 0.
    With ``fatal`` that is an error naming them; else a warning. Returns the ids."""
    if not hasattr(dataset, "targets"):  # another kind of dataset (e.g. page crops): nothing to check
        return []
    bad = [r["id"] for r, t in zip(dataset.records, dataset.targets) if ctc_frames_needed(t) > frames]
    if bad:
        msg = (f"{len(bad)} of {len(dataset.records)} lines of split {dataset.split!r} in {dataset.manifest} "
               f"have a transcription longer than the recognizer's {frames} frames at width {dataset.width} "
               f"(e.g. {bad[:5]}); CTC cannot align them. Widen data.width, shorten the lines "
               f"(data.max_chars) or split them")
        if fatal:
            raise DataError(msg)
        log.warning(msg)
    return bad
