"""Job state on disk and the status table.

Each job folder ``runs/experiments/<plan>/<job-id>/`` holds ``status.json``::

    {"state": "queued" | "running" | "done" | "failed" | "interrupted",
     "pid", "pid_start", "started", "finished", "device", "error", "progress",
     "headline", "fingerprint", "attempt", "cells"}

A job recorded as ``running`` whose process is gone (killed, machine rebooted) reads as
``interrupted``; re-running the plan reruns it. A notebook reports its headline metrics with
:func:`record_result`, which writes ``result.json`` into ``$DOCRESTORE_JOB_DIR``.

This module imports neither torch nor papermill, so ``--status`` answers at once.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import time
from pathlib import Path
from typing import Any

from ..files import read_json_state, write_json_atomic
from ..processes import pid_alive

QUEUED, RUNNING, DONE, FAILED, INTERRUPTED = "queued", "running", "done", "failed", "interrupted"
NOT_STARTED = "not started"
STATES = (QUEUED, RUNNING, DONE, FAILED, INTERRUPTED)
JOB_DIR_ENV = "DOCRESTORE_JOB_DIR"


def now_iso() -> str:
    return _dt.datetime.now().isoformat(timespec="seconds")


def read_status(job_dir: Path) -> dict:
    """The job's status.json, or {} when it has none (never started) or it is unreadable."""
    return read_json_state(Path(job_dir) / "status.json")


def update_status(job_dir: Path, **fields: Any) -> dict:
    """Merge ``fields`` into status.json and return the new record."""
    st = read_status(job_dir)
    st.update(fields)
    write_json_atomic(Path(job_dir) / "status.json", st)
    return st


def record_result(headline: dict[str, Any], **extra: Any) -> Path | None:
    """Called from a notebook run by an experiment plan: write ``result.json`` with the
    ``headline`` metrics (shown by ``--status``) into ``$DOCRESTORE_JOB_DIR``.

    Outside a plan (the variable is unset) this does nothing and returns None.
    """
    job_dir = os.environ.get(JOB_DIR_ENV)
    if not job_dir:
        return None
    if not isinstance(headline, dict):
        raise TypeError(f"record_result: headline must be a dict of metric -> value, got {type(headline).__name__}")
    path = Path(job_dir) / "result.json"
    write_json_atomic(path, {"headline": headline, **extra})
    return path


def read_headline(job_dir: Path) -> tuple[dict, str]:
    """(headline dict, problem text) from the job's result.json; ({}, "") when there is none."""
    path = Path(job_dir) / "result.json"
    if not path.exists():
        return {}, ""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return {}, f"result.json is not valid JSON ({exc})"
    head = data.get("headline") if isinstance(data, dict) else None
    if not isinstance(head, dict):
        return {}, "result.json has no 'headline' mapping"
    return head, ""


def effective_state(st: dict) -> str:
    """The state to show and act on: a 'running' job whose process is gone is 'interrupted'."""
    state = st.get("state")
    if not state:
        return NOT_STARTED
    if state == RUNNING and not pid_alive(st.get("pid"), st.get("pid_start")):
        return INTERRUPTED
    return state


# ---------------------------------------------------------------------------- progress
_CELL_RE = re.compile(r"Executing Cell (\d+)-")


def _tail(path: Path, nbytes: int = 65536) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - nbytes))
            return f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


def _clean_lines(text: str) -> list[str]:
    lines = []
    for line in re.split(r"[\r\n]+", text):
        line = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", line).strip()  # ANSI colours
        if line and not line.startswith(("Executing Cell", "Ending Cell")) and set(line) != {"-"}:
            lines.append(line)
    return lines


def progress(job_dir: Path, cells: int | None = None) -> str:
    """'cell i/n: <last output line>' from the job's log (papermill logs each cell's start)."""
    text = _tail(Path(job_dir) / "job.log")
    if not text:
        return "starting"
    matches = list(_CELL_RE.finditer(text))
    where = ""
    if matches:
        where = f"cell {matches[-1].group(1)}" + (f"/{cells}" if cells else "")
        text = text[matches[-1].end():]
    lines = _clean_lines(text)
    last = lines[-1] if lines else ""
    return ": ".join(x for x in (where, last) if x) or "starting"


def last_error_line(job_dir: Path) -> str:
    """The last line of the job's log that names an error, else its last line."""
    lines = _clean_lines(_tail(Path(job_dir) / "job.log"))
    for line in reversed(lines):
        if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit)\b", line) or "Error:" in line:
            return line
    return lines[-1] if lines else ""


# ------------------------------------------------------------------------------- table
def _fmt_value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def format_headline(head: dict) -> str:
    return " ".join(f"{k}={_fmt_value(v)}" for k, v in head.items())


def _duration(st: dict, state: str) -> str:
    try:
        start = _dt.datetime.fromisoformat(st["started"])
    except (KeyError, TypeError, ValueError):
        return ""
    end = None
    if state != RUNNING and st.get("finished"):
        try:
            end = _dt.datetime.fromisoformat(st["finished"])
        except (TypeError, ValueError):
            end = None
    if state == RUNNING:
        end = _dt.datetime.now()
    if end is None:
        return ""
    secs = max(0, int((end - start).total_seconds()))
    h, rem = divmod(secs, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}"


def job_row(job_id: str, job_dir: Path, fingerprint: str | None = None) -> dict:
    """One row of the status table: job, state, device, time, detail."""
    st = read_status(job_dir)
    state = effective_state(st)
    if state == RUNNING:
        detail = progress(job_dir, st.get("cells"))
    elif state == DONE:
        detail = format_headline(st.get("headline") or {}) or "(no headline: the notebook wrote no result.json)"
    elif state in (FAILED, INTERRUPTED):
        detail = st.get("error") or ""
        if state == INTERRUPTED and not detail:
            detail = f"process {st.get('pid')} is gone without recording a result; rerun the plan to rerun it"
    else:
        detail = ""
    if fingerprint and st.get("fingerprint") and st.get("fingerprint") != fingerprint and state != NOT_STARTED:
        detail = "[parameters changed since this ran; rerun the plan] " + detail
    waiting = state in (QUEUED, NOT_STARTED)
    return {"job": job_id, "state": state, "device": "" if waiting else st.get("device", ""),
            "time": "" if waiting else _duration(st, state), "detail": detail,
            "attempt": st.get("attempt", 0)}


def format_table(rows: list[dict], width: int = 160) -> str:
    """A plain-text table; the detail column is cut to keep each row on one line."""
    heads = ("JOB", "STATE", "DEVICE", "TIME", "DETAIL")
    keys = ("job", "state", "device", "time", "detail")
    w = [max([len(h)] + [len(str(r[k])) for r in rows]) for h, k in zip(heads[:-1], keys[:-1])]
    out = ["  ".join(h.ljust(x) for h, x in zip(heads[:-1], w)) + "  " + heads[-1]]
    room = max(20, width - sum(w) - 2 * len(w))
    for r in rows:
        detail = str(r["detail"])
        if len(detail) > room:
            detail = detail[:room - 3] + "..."
        out.append("  ".join(str(r[k]).ljust(x) for k, x in zip(keys[:-1], w)) + "  " + detail)
    return "\n".join(out)


def summary_line(rows: list[dict]) -> str:
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["state"]] = counts.get(r["state"], 0) + 1
    order = (DONE, RUNNING, QUEUED, FAILED, INTERRUPTED, NOT_STARTED)
    parts = [f"{counts[s]} {s}" for s in order if counts.get(s)]
    return f"{len(rows)} job(s): " + ", ".join(parts)


def scheduler_line(state_dir: Path) -> str:
    """Whether the plan's scheduler is alive, from scheduler.json."""
    try:
        info = json.loads((Path(state_dir) / "scheduler.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "scheduler: never started"
    if pid_alive(info.get("pid"), info.get("pid_start")) and not info.get("finished"):
        return (f"scheduler: running (pid {info.get('pid')}, since {info.get('started')}, "
                f"{info.get('slots_text', '')})")
    if info.get("finished"):
        return f"scheduler: not running (last one finished at {info['finished']})"
    return (f"scheduler: not running (pid {info.get('pid')} is gone); queued jobs wait until "
            "the plan is launched again")


def wait_for(predicate, timeout: float, poll: float = 0.2) -> bool:
    """Poll ``predicate`` until true or ``timeout`` seconds pass (for scripts and tests that wait on a job)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(poll)
    return bool(predicate())
