"""Long runs that survive: signals, periodic checkpoints, continuing an interrupted run.

- :class:`StopSignals`: SIGTERM (a cluster's pre-emption, a closed ssh session) and SIGINT (Ctrl-C)
  only set a flag; the trainer finishes the step it is in, writes ``last.pt`` and stops cleanly.
  A second Ctrl-C stops at once (the last checkpoint stays the previous consistent one).
- ``status.json`` in the run folder says whether the run is ``running``, ``interrupted``,
  ``failed`` or ``done``, with its step, pid, MLflow run id and time.
- :func:`find_interrupted`: the run folder of an earlier, unfinished run of the same config
  (``interrupted``, or ``running`` with its process gone: killed without a chance to say so), so
  the same command continues it in the same folder and MLflow run. Every run folder is claimed
  (a lock on it, :func:`runs.claim_run`) by the process that works in it, before any work, so two
  commands started together never continue one run.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import signal
import threading
import time
from pathlib import Path

from .. import config as C
from ..files import read_json_state, write_json_atomic
from ..processes import pid_alive, process_start_id

log = logging.getLogger("docrestore")

STATUS = "status.json"
# The keys that may differ between an interrupted run and the command that continues it.
IGNORED_KEYS = ("train.resume",)


def clock() -> float:
    """Seconds on a monotonic clock (periodic checkpoints; a test replaces it)."""
    return time.monotonic()


class Interrupted(KeyboardInterrupt):
    """Training stopped by a signal after writing a consistent ``last.pt``."""

    def __init__(self, signum: int, step: int, checkpoint: Path):
        self.signum, self.step, self.checkpoint = signum, step, checkpoint
        super().__init__(f"{signal.Signals(signum).name} at step {step}; {checkpoint} written")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # the shell's convention: 130 for SIGINT, 143 for SIGTERM


class StopSignals:
    """Within the block, SIGTERM and SIGINT set :attr:`received` instead of killing the process.

    Only in the main thread (signal handlers cannot be installed elsewhere, e.g. in a notebook's
    worker thread): there the block is a no-op and Ctrl-C raises KeyboardInterrupt as usual."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self):
        self.received: int | None = None
        self._before: dict = {}

    def _handle(self, signum, frame):
        if self.received is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # the second Ctrl-C: stop now
        self.received = signum
        log.warning("%s received: finishing this step, writing last.pt, then stopping "
                    "(Ctrl-C again to stop at once)", signal.Signals(signum).name)

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            for s in self.SIGNALS:
                self._before[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._before.items():
            signal.signal(s, handler)
        self._before.clear()


def write_status(run_dir: Path, state: str, **fields) -> None:
    from .. import runs

    pid = os.getpid()
    write_json_atomic(Path(run_dir) / STATUS, {
        "state": state, "pid": pid, "pid_start": process_start_id(pid),
        "updated": _dt.datetime.now().isoformat(timespec="seconds"), **fields})
    if state != "running":  # done, failed or stopped: another process may take it up now
        runs.release_run(run_dir)


def read_status(run_dir: Path) -> dict:
    return read_json_state(Path(run_dir) / STATUS)


def _alive(status: dict) -> bool:
    """Whether the process that wrote ``status`` still runs (not a later one with its pid)."""
    return pid_alive(status.get("pid"), status.get("pid_start"))


def _comparable(cfg_dict: dict) -> dict:
    flat = C.flatten(cfg_dict)
    return {k: v for k, v in flat.items() if k not in IGNORED_KEYS}


def find_interrupted(cfg: C.Config, stage: str = "train") -> Path | None:
    """The newest run folder of ``stage`` under ``cfg.runs_dir`` whose config equals ``cfg``
    (``train.resume`` aside), that has a ``last.pt`` and did not finish: interrupted by a
    signal, or marked running by a process that no longer exists. None when there is none.

    The folder returned is claimed for this process (:func:`runs.claim_run`), so two commands
    started together never continue one run: the second finds it taken and looks further."""
    import yaml

    from .. import runs

    base = C.resolve_path(cfg.runs_dir)
    if not base.is_dir():
        return None
    want = _comparable(C.to_dict(cfg))
    for d in sorted((p for p in base.iterdir() if p.is_dir() and f"-{stage}" in p.name), reverse=True):
        status = read_status(d)
        state = status.get("state")
        if not (d / "last.pt").exists() or state not in ("interrupted", "running"):
            continue
        if state == "running" and _alive(status):
            continue  # another process is training it right now
        try:  # through the typed tree, so YAML's spelling of a value does not matter
            theirs = C.to_dict(C.from_dict(yaml.safe_load((d / "config.yaml").read_text(encoding="utf-8"))))
        except (OSError, yaml.YAMLError, C.ConfigError, TypeError, ValueError):
            continue  # unreadable, or written by another version of the config tree
        if _comparable(theirs) != want:
            continue
        if runs.claim_run(d):
            return d
        log.info("the interrupted run %s is being continued by another process; not taken", d)
    return None


def progress_text(cfg: C.Config, stage: str = "train") -> str:
    """One line on the newest run of ``stage`` under ``cfg.runs_dir``: state, step, folder."""
    base = C.resolve_path(cfg.runs_dir)
    folders = sorted((p for p in base.iterdir() if p.is_dir() and f"-{stage}" in p.name and (p / STATUS).exists()),
                     reverse=True) if base.is_dir() else []
    if not folders:
        return f"no {stage} run with a status under {base}"
    d, st = folders[0], read_status(folders[0])
    state = st.get("state", "?")
    if state == "running" and not _alive(st):
        state = "stopped (its process is gone; the same command continues it)"
    elif state == "interrupted":
        state = f"interrupted by {st.get('signal', 'a signal')} (the same command continues it)"
    return (f"newest {stage} run: {d}\n  state: {state}, step {st.get('step', '?')} of "
            f"{st.get('total_steps', '?')} (at {st.get('updated', '?')}; updated at every checkpoint)")


def start_or_continue(cfg: C.Config, stage: str = "train"):
    """The run folder for ``stage``: for `train` with ``train.auto_resume`` and no ``train.resume``,
    the folder of an interrupted run of the same config, reopened, with ``cfg.train.resume`` set
    to its last.pt; otherwise a new run folder."""
    from .. import runs

    if stage == "train" and cfg.train.auto_resume and not cfg.train.resume:
        previous = find_interrupted(cfg, stage)
        if previous is not None:
            cfg.train.resume = str(previous / "last.pt")
            log.info("continuing the interrupted run %s from its last.pt (train.auto_resume=false starts "
                     "a new run instead)", previous)
            return runs.reopen_run(previous, cfg, stage)
    return runs.start_run(cfg, stage)
