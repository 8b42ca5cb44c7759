"""Real-hand line pairs: ERB's degraded-real protocol on lines `docrestore ingest` cut from pages.

``data.source=real`` turns an ingested manifest (``data.real_lines``: real line crops, no clean
image) into a paired dataset, as ERB did with IAM and KHATT:

- **clean** = the real line crop at ``data.height x data.width`` (see data/dataset.py: scaled to
  the height, padded with paper or squeezed to the width), **background-flattened**: divided by
  its paper (per column, inside the line's polygon, smoothed), then stretched so the darkest ink
  is black and paper above 0.92 of its estimate is white. A restorer should hand an
  archive's reader a line with even white paper, not the scan's yellowing and shading; every
  caption of these pairs says "clean = flattened real line".
- **degraded** = the project's damage model (data/degrade.py) applied to that clean line, at a
  severity drawn in ``[data.severity_min, data.severity_max]``, by a generator seeded from
  ``(data.seed, split, line)``: test lines are damaged by streams no training line used.

Splits are the ingest's (by page), so training pairs come only from training pages. Lines whose
transcription needs more CTC frames than a line of ``data.width`` has (``width / 4``) are left out
and counted (``dataset.json: too_long``), as are lines squeezed to fit (``squeezed``).

The pairs are written once per settings under ``data/real-<hash>/`` (hash of the ingested
manifest's bytes, the geometry, the seed, the severity range and ``paths.PAIRS_VERSION``).
"""

from __future__ import annotations

import copy
import hashlib
import logging
from pathlib import Path

import numpy as np
from scipy import ndimage

from .. import config as C
from ..files import write_json_atomic
from . import manifest as M
from .charset import Charset
from .dataset import ctc_frames_needed, fit, image_size, load_line, save_png
from .degrade import degrade, to_uint8
from .paths import DataError, ensure_writable, pair_settings, pairs_root

log = logging.getLogger("docrestore")

SPLIT_CODE = {"train": 10, "val": 11, "test": 12}  # apart from synth.SPLIT_CODE: other streams
FRAMES_PER_PIXEL = 0.25  # the recognizers output W/4 frames (models/recognizer.py)


def flatten_background(line: np.ndarray) -> np.ndarray:
    """``line`` (float (H, W), ink dark on paper) divided by its paper, ink stretched to black.

    The paper of each column is the 90th percentile of the column's pixels inside the line's
    polygon (ingest leaves pure white outside it, which must not count as paper, else the scan's
    darker paper shows as a grey fringe along the cut), smoothed over a line height; dividing by it
    removes yellowing and shading. Then the darkest ink is stretched to black and paper within 8 %
    of its estimate becomes white."""
    h, w = line.shape
    inside = line < 0.999
    if inside.sum() < 3:
        return np.ones_like(line, dtype=np.float32)
    # 90th percentile of each column's inside pixels: sort with the outside first (-1), then index
    # past it (nanpercentile does the same ten times slower).
    counts = inside.sum(axis=0)
    ordered = np.sort(np.where(inside, line, -1.0), axis=0)
    rank = np.minimum(h - 1, (h - counts) + np.floor(0.9 * np.maximum(counts - 1, 0)).astype(int))
    paper = np.where(counts >= 3, np.take_along_axis(ordered, rank[None, :], axis=0)[0], np.nan)
    known = np.flatnonzero(np.isfinite(paper))
    if not len(known):
        paper = np.full(w, float(np.percentile(line[inside], 90)))
    else:  # columns with (almost) no inside pixels take their neighbours' paper
        paper = np.interp(np.arange(w), known, paper[known])
    paper = ndimage.uniform_filter1d(paper, max(3, h), mode="nearest")
    ratio = np.where(inside, np.clip(line / np.maximum(paper[None, :], 1e-3), 0.0, 1.0), 1.0)
    lo = float(np.percentile(ratio[inside], 0.5))
    hi = 0.92
    if hi - lo < 0.05:  # nothing darker than the paper: a blank crop stays white
        return np.ones_like(line, dtype=np.float32)
    return np.clip((ratio - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


def make_pair(src: Path, rec: dict, index: int, seed: int, height: int, width: int, severity_range,
              bleed_rec: dict | None = None) -> tuple[dict, np.ndarray, np.ndarray]:
    """(record, clean uint8, degraded uint8) of one real line ``rec`` of the manifest ``src``."""
    rng = np.random.default_rng([seed % 2**64, SPLIT_CODE[rec["split"]], index])
    clean = flatten_background(load_line(M.resolve(src, rec["degraded"]), height, width))
    severity = float(rng.uniform(*severity_range))

    def bleed() -> np.ndarray:  # another line of the same split shows through the page
        return flatten_background(load_line(M.resolve(src, bleed_rec["degraded"]), height, width))

    degraded, spec = degrade(clean, rng, severity, bleed=bleed if bleed_rec is not None else None)
    safe = rec["id"].replace("/", "__")
    out = {"id": rec["id"], "split": rec["split"],
           "degraded": f"images/{rec['split']}/{safe}_degraded.png",
           "clean": f"images/{rec['split']}/{safe}_clean.png", "text": rec["text"],
           "page": rec.get("page", ""), "set": rec.get("set", ""), "font": "",
           "severity": round(severity, 4), "degradations": spec, "height": height, "width": width,
           "fit": fit(image_size(src, rec), height, width), "real_line": str(M.resolve(src, rec["degraded"]))}
    return out, to_uint8(clean), to_uint8(degraded)


def ensure_pairs(cfg: C.Config) -> Path:
    """The manifest of the real-line pairs of ``cfg`` (made when missing); see the module docstring."""
    root = pairs_root(cfg)
    settings = pair_settings(cfg)
    manifest = root / M.MANIFEST
    meta = M.read_meta(root)
    if meta and meta.get("complete") and meta.get("settings") == settings and manifest.is_file():
        return manifest
    src = C.resolve_path(cfg.data.real_lines)
    records = [r for r in M.validate_manifest(src) if r["split"] in M.SPLITS]
    h, w = cfg.data.height, cfg.data.width
    frames = int(w * FRAMES_PER_PIXEL)
    too_long = [r["id"] for r in records if ctc_frames_needed(r["text"]) > frames]
    keep = [r for r in records if ctc_frames_needed(r["text"]) <= frames]
    if not keep:
        raise DataError(f"no line of {src} fits {frames} CTC frames at data.width={w}; widen data.width")
    ensure_writable(root)
    for split in M.SPLITS:
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
    by_split = {s: [r for r in keep if r["split"] == s] for s in M.SPLITS}
    out = []
    log.info("making %d real-line pairs (%s) from %s into %s", len(keep), M.split_counts(keep), src, root)
    for split, recs in by_split.items():
        for i, rec in enumerate(recs):
            other = recs[(i * 7919 + 1) % len(recs)] if len(recs) > 1 else None
            pair, clean, degraded = make_pair(src, rec, i, cfg.data.seed, h, w,
                                              (cfg.data.severity_min, cfg.data.severity_max), other)
            save_png(root / pair["clean"], clean)
            save_png(root / pair["degraded"], degraded)
            out.append(pair)
    Charset.from_texts(r["text"] for r in out).to_file(root / M.CHARSET)
    M.write_manifest(manifest, out)
    squeezed = {s: sum(1 for r in out if r["split"] == s and r["fit"] == "squeezed") for s in M.SPLITS}
    write_json_atomic(root / M.META, {
        "complete": True, "kind": "real_pairs", "settings": settings, "real_lines": str(src),
        "counts": M.split_counts(out), "too_long": len(too_long), "too_long_ids": too_long,
        "squeezed": squeezed, "ctc_frames": frames,
        "hash": hashlib.sha256(manifest.read_bytes()).hexdigest()[:16],
        "clean": "real line crop, background-flattened (data/real_pairs.py)",
        "degraded": "data/degrade.py at data.severity_min..max, seeds per (data.seed, split, line)"})
    log.info("real-line pairs: %s; %d lines too long for %d CTC frames left out; squeezed to width %d: %s",
             M.split_counts(out), len(too_long), frames, w, squeezed)
    return manifest


REAL_ASPECT = 16  # real lines are width = 16 x height: quick 32 x 512, full 128 x 2048 (configs/real_lines.yaml)


def notebook_pairs(cfg: C.Config, real_lines: str | None) -> Path | None:
    """The real-hand pairs the data notebook shows beside the font lines of ``cfg``: its profile's
    line height, width ``REAL_ASPECT`` times that; None when no ``real_lines`` manifest is given."""
    if not real_lines:
        return None
    real = copy.deepcopy(cfg)
    real.data.source, real.data.real_lines, real.data.root = "real", str(real_lines), "auto"
    real.data.width = REAL_ASPECT * cfg.data.height
    return ensure_pairs(C.validate(real))
