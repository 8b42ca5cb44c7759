"""Small file helpers every layer shares: whole-file replacement, atomic JSON, state files read.

Every writer gets its own temporary name (``mkstemp`` in the destination's folder), so two
processes or threads replacing one file (two trainers saving ``last.pt``, parallel jobs writing a
cache) never rename each other's half-written file away; a reader sees the old file or the new
one, never half of either; a failed write leaves the old file and no stray temporary.

Imports neither torch nor the config, so status commands that use it answer at once.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# mkstemp makes 0600 files; a replaced file gets the mode a plain open() would give it.
_UMASK = os.umask(0o022)
os.umask(_UMASK)


@contextlib.contextmanager
def temporary_beside(path: str | Path, suffix: str = ".tmp") -> Iterator[Path]:
    """A fresh temporary path of this writer's own in ``path``'s folder (the rename into place
    stays on one file system), removed when the block ends if it is still there."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    tmp = Path(name)
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def replacing(path: str | Path, suffix: str = ".tmp") -> Iterator[Path]:
    """A fresh temporary path beside ``path`` to write; renamed over ``path`` when the block
    ends, removed when it raises. ``suffix``: for writers that pick a format by extension."""
    with temporary_beside(path, suffix) as tmp:
        yield tmp
        os.replace(tmp, path)


def write_text(path: str | Path, text: str) -> Path:
    """Replace ``path`` with ``text`` (UTF-8, ``\\n`` line ends)."""
    with replacing(path) as tmp:
        tmp.write_text(text, encoding="utf-8", newline="\n")
    return Path(path)


def write_json_atomic(path: str | Path, obj: Any, *, sort_keys: bool = False, allow_nan: bool = True,
                      default: Callable[[Any], Any] | None = str) -> Path:
    """Write ``obj`` as indented UTF-8 JSON to a temporary file beside ``path`` and rename it, so
    a reader (or a kill mid-write) never sees half a file; the temporary file never outlives a
    failed write. ``default=str`` writes values JSON lacks as text; the ledgers pass
    ``allow_nan=False, default=None`` so a non-finite or unplain value is an error instead."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=sort_keys, allow_nan=allow_nan,
                      default=default) + "\n"
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")  # its own name per writer
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return p


def read_json_state(path: str | Path) -> dict:
    """A JSON state file (status, launch state) as a dict; {} when it is missing, unreadable or
    not an object (never started, or written by something else)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
