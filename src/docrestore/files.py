"""Small file helpers every layer shares: atomic JSON writes, state files read back.

Imports neither torch nor the config, so status commands that use it answer at once.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def write_json_atomic(path: str | Path, obj: Any, *, sort_keys: bool = False) -> Path:
    """Write ``obj`` as indented JSON to a temporary file beside ``path`` and rename it, so a
    reader (or a kill mid-write) never sees half a file. Values JSON lacks are written as text."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")  # per process: two writers never share one
    tmp.write_text(json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=sort_keys, default=str) + "\n",
                   encoding="utf-8")
    os.replace(tmp, p)
    return p


def read_json_state(path: str | Path) -> dict:
    """A JSON state file (status, launch state) as a dict; {} when it is missing, unreadable or
    not an object (never started, or written by something else)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
