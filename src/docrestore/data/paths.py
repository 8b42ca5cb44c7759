"""Where a dataset lives, and the hash that names a synthetic one.

``data.root=auto`` puts a synthetic dataset in ``data/synth-<hash12>`` under the project root,
where the hash covers every setting that changes what is synthesised (and the seed), so two
configs that would make different data never share a folder, and one that would make the same
data finds it already there.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

from .. import config as C

# Bump when a change to the synthesis code changes its output, so old auto folders are not reused.
# 3: a font family with two equally good files (Hamlet, Jessen, Breip, DejaVu) resolves to the
# same file on every machine (fonts._findfont), not to whichever matplotlib's font cache lists first.
PAIRS_VERSION = 2  # data/real_pairs.py: bump when the pairs it makes change
SYNTH_VERSION = 3

# DataConfig fields that do not change the synthesised data (where it goes, how fast, how it is read).
NON_SYNTHESIS_FIELDS = ("root", "manifest", "workers", "loader_workers", "source", "real_lines")


class DataError(Exception):
    """A data problem: the message names the cause and what to do about it."""


class OutputFolderError(DataError, OSError):
    """The dataset folder cannot be created or written."""


def synthesis_settings(cfg: C.Config) -> dict:
    """Every setting that changes the synthesised data: the data section (less where it goes and
    how many processes make it), the seed and the synthesis code version."""
    settings = {k: v for k, v in dataclasses.asdict(cfg.data).items() if k not in NON_SYNTHESIS_FIELDS}
    settings["seed"] = cfg.data.seed
    settings["synth_version"] = SYNTH_VERSION
    if cfg.data.corpus_file:
        # The file's content, not only its name, decides the text.
        corpus = C.resolve_path(cfg.data.corpus_file)
        settings["corpus_file_sha256"] = (hashlib.sha256(corpus.read_bytes()).hexdigest()
                                          if corpus.is_file() else "missing")
    return settings


def settings_hash(cfg: C.Config) -> str:
    """12 hex digits of the SHA-256 of :func:`synthesis_settings`: names a synthetic dataset folder
    (what the bytes of its manifest hash to is :func:`docrestore.data.manifest.manifest_hash`)."""
    blob = json.dumps(synthesis_settings(cfg), sort_keys=True, ensure_ascii=True)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:12]


def dataset_root(cfg: C.Config) -> Path:
    """The dataset folder: the folder of ``data.manifest`` when real lines are given, else
    ``data.root``, or ``PROJECT_ROOT/data/synth-<hash12>`` for ``data.root=auto``."""
    if cfg.data.manifest:
        return C.resolve_path(cfg.data.manifest).parent
    if cfg.data.source == "real":
        return pairs_root(cfg)
    if cfg.data.root in ("", "auto"):
        return C.PROJECT_ROOT / "data" / f"synth-{settings_hash(cfg)}"
    return C.resolve_path(cfg.data.root)


def ensure_writable(folder: Path) -> Path:
    """Create ``folder`` (and parents) and check a file can be written in it."""
    probe = folder / ".write-test"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise OutputFolderError(
            f"cannot write the dataset folder {folder}: {exc}. Set data.root=... to a writable "
            f"folder (or data.root=auto for {C.PROJECT_ROOT / 'data'})") from exc
    return folder


def pair_settings(cfg: C.Config) -> dict:
    """Every setting that changes the real-line pairs of ``data.source=real`` (data/real_pairs.py)."""
    src = C.resolve_path(cfg.data.real_lines)
    if not src.is_file():
        raise DataError(f"data.real_lines={cfg.data.real_lines} does not exist; run `docrestore ingest PAGES "
                        f"--out DIR` first and give DIR/manifest.jsonl")
    d = cfg.data
    return {"real_lines_sha256": hashlib.sha256(src.read_bytes()).hexdigest(), "height": d.height,
            "width": d.width, "seed": d.seed, "severity_min": d.severity_min, "severity_max": d.severity_max,
            "pairs_version": PAIRS_VERSION}


def pairs_root(cfg: C.Config) -> Path:
    """``data.root`` when set, else ``PROJECT_ROOT/data/real-<hash12 of the settings>``."""
    if cfg.data.root not in ("", "auto"):
        return C.resolve_path(cfg.data.root)
    blob = json.dumps(pair_settings(cfg), sort_keys=True).encode()
    return C.PROJECT_ROOT / "data" / f"real-{hashlib.sha256(blob).hexdigest()[:12]}"
