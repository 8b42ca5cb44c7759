"""Manifests: one JSON object a line, image paths relative to the manifest's folder.

A record: ``{"id", "split": train|val|test (or reader), "degraded": path, "clean": path or null, "text",
"font", "severity", "degradations": [{"name", ...params}], "height", "width"}``. Real lines have
``clean: null`` and may leave out the synthesis fields (font, severity, degradations, sizes).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Iterable

from ..files import replacing
from .charset import Charset
from .paths import DataError

log = logging.getLogger("docrestore")

SPLITS = ("train", "val", "test")
# Synthetic lines in every hand that only the held-out reader trains on (data.n_reader).
READER_SPLIT = "reader"
ALL_SPLITS = SPLITS + (READER_SPLIT,)
# Not a split a record has: every line of a manifest (what evaluation reads with eval.split=all).
EVERY_SPLIT = "all"
REQUIRED = ("id", "split", "degraded", "text")
MANIFEST = "manifest.jsonl"
CHARSET = "charset.txt"
META = "dataset.json"


class ManifestError(DataError, ValueError):
    """A manifest that cannot be used: names the file, the line and what is wrong."""


def read_manifest(path: str | Path) -> list[dict]:
    """All records of a manifest.jsonl, in file order (no file checks; see validate_manifest)."""
    p = Path(path)
    if not p.is_file():
        raise ManifestError(f"manifest {p} does not exist; synthesise a dataset (docrestore synth) "
                            f"or set data.manifest to an existing manifest.jsonl")
    records = []
    with p.open(encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ManifestError(f"{p} line {number} is not valid JSON ({exc}); one JSON object a line") from exc
            if not isinstance(rec, dict):
                raise ManifestError(f"{p} line {number} must be a JSON object, got {type(rec).__name__}")
            records.append(rec)
    return records


def record_line(rec: dict) -> str:
    """One manifest line: keys in a fixed order, UTF-8 text kept readable."""
    return json.dumps(rec, ensure_ascii=False, sort_keys=False, separators=(", ", ": "))


def write_manifest(path: str | Path, records: Iterable[dict]) -> Path:
    """Write records to a temporary file and rename it into place, so a manifest is never seen
    half-written."""
    p = Path(path)
    with replacing(p) as tmp, tmp.open("w", encoding="utf-8", newline="\n") as f:
        for rec in records:
            f.write(record_line(rec) + "\n")
    return p


def resolve(manifest: str | Path, rel: str) -> Path:
    """An image path of a record: relative to the manifest's folder unless absolute."""
    p = Path(rel)
    return p if p.is_absolute() else Path(manifest).parent / p


def charset_for(manifest: str | Path, records: list[dict] | None = None) -> Charset:
    """The charset of a dataset: charset.txt next to the manifest, or (real lines without one)
    every character of its texts, sorted."""
    path = Path(manifest).parent / CHARSET
    if path.is_file():
        return Charset.from_file(path)
    records = read_manifest(manifest) if records is None else records
    return Charset.from_texts(r.get("text") or "" for r in records)


def has_transcription(rec: dict) -> bool:
    """Whether a record carries a transcription (evaluation reads only such lines)."""
    text = rec.get("text")
    return isinstance(text, str) and bool(text.strip())


def validate_manifest(manifest: str | Path, charset: Charset | None = None,
                      check_files: bool = True, require_text: bool = True) -> list[dict]:
    """Check every record: required fields, split names, unique ids, that the image files exist
    and that every text is in the charset (charset.txt next to the manifest, else derived).
    ``require_text=False`` (evaluation, which skips such lines) accepts records without a
    transcription. Returns the records; raises ManifestError / CharsetError naming the line."""
    p = Path(manifest)
    records = read_manifest(p)
    if not records:
        raise ManifestError(f"manifest {p} has no records; it needs one JSON object per line image")
    charset = charset or charset_for(p, records)
    seen: set[str] = set()
    for number, rec in enumerate(records, start=1):
        where = f"{p} record {number}"
        missing = [k for k in REQUIRED if k not in rec and (require_text or k != "text")]
        if missing:
            raise ManifestError(f"{where} lacks {', '.join(missing)}; every record needs {', '.join(REQUIRED)}")
        if rec["split"] not in ALL_SPLITS:
            raise ManifestError(f"{where} (id {rec['id']!r}) has split {rec['split']!r}; use one of {list(SPLITS)}")
        if rec["id"] in seen:
            raise ManifestError(f"{where}: id {rec['id']!r} appears twice; ids must be unique")
        seen.add(rec["id"])
        if require_text and (not isinstance(rec["text"], str) or not rec["text"]):
            raise ManifestError(f"{where} (id {rec['id']!r}) has an empty or non-text transcription")
        if check_files:
            for key in ("degraded", "clean"):
                rel = rec.get(key)
                if key == "clean" and rel is None:
                    continue
                if not isinstance(rel, str) or not resolve(p, rel).is_file():
                    raise ManifestError(f"{where} (id {rec['id']!r}): {key} image {resolve(p, str(rel))} "
                                        f"does not exist; fix the path (relative to {p.parent}) or add the file")
        if require_text or has_transcription(rec):
            charset.encode(rec["text"], where=f"{where}, id {rec['id']!r}")  # CharsetError names the char
    return records


def split_counts(records: Iterable[dict]) -> dict[str, int]:
    counts = {s: 0 for s in SPLITS}
    for r in records:
        counts[r["split"]] = counts.get(r["split"], 0) + 1
    return counts


def read_meta(root: str | Path) -> dict | None:
    """dataset.json of a dataset folder, or None when missing or unreadable."""
    p = Path(root) / META
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def manifest_hash(manifest: str | Path) -> str:
    """A short hash of the manifest's bytes: identifies the data a result was measured on (not
    the synthesis settings a dataset folder is named by: :func:`docrestore.data.paths.settings_hash`)."""
    import hashlib

    return hashlib.sha256(Path(manifest).read_bytes()).hexdigest()[:16]
