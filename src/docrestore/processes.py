"""Whether a recorded process still runs: pid plus the kernel's start time, so a reused pid is
not mistaken for the recorded one. Used by the scheduler's jobs, background launches and the
training status files. Imports neither torch nor the config."""

from __future__ import annotations

import os
from pathlib import Path


def process_start_id(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (so a reused pid is not mistaken for our job);
    None where /proc is unavailable or the process is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rfind(")") + 2:].split()
    return fields[19] if len(fields) > 19 else None


def pid_alive(pid: int | None, start_id: str | None = None) -> bool:
    """Whether ``pid`` runs and is the same process that was recorded (zombies count as dead)."""
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    except (OSError, ValueError):
        return False
    stat = Path(f"/proc/{pid}/stat")
    if stat.exists():
        try:
            raw = stat.read_text()
            state = raw[raw.rfind(")") + 2:].split()[0]
        except (OSError, IndexError):
            return False
        if state in ("Z", "X"):
            return False
        if start_id and process_start_id(int(pid)) != start_id:
            return False
    return True
