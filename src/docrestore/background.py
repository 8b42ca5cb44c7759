"""Detached runs of long commands (`docrestore train --background`, `make paper-figures
DETACH=1`): start, close the terminal, `tail -f` the log, ask `--status`.

Each kind of job has one slot under ``runs/background/``: ``<name>.log`` (everything the command
prints) and ``<name>.json`` (command, pid, start, and at the end the exit code). A job is started
through this module's ``_wrap`` entry point in its own session, so closing the terminal does not
stop it, and the exit code is recorded when the command ends.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import subprocess
import sys
from pathlib import Path

from . import config as C
from .files import read_json_state, write_json_atomic
from .processes import pid_alive, process_start_id

STATE_DIR = "runs/background"


def _now() -> str:
    return _dt.datetime.now().isoformat(timespec="seconds")


def paths(name: str, state_dir: str | Path | None = None) -> tuple[Path, Path]:
    d = C.resolve_path(state_dir or STATE_DIR)
    return d / f"{name}.log", d / f"{name}.json"


def read_state(name: str, state_dir=None) -> dict:
    return read_json_state(paths(name, state_dir)[1])


def _alive(state: dict) -> bool:
    return pid_alive(state.get("pid"), state.get("pid_start"))


def is_running(name: str, state_dir=None) -> bool:
    st = read_state(name, state_dir)
    return "exit_code" not in st and _alive(st)


def launch(name: str, cmd: list[str], state_dir=None, echo=print) -> subprocess.Popen:
    """Start ``cmd`` detached (own session, no terminal, output to the log) and return at once.
    Refuses while the previous job of this name still runs. The check, the start and the state
    that records it happen under one lock, so two launches at once start one job."""
    log_path, state_path = paths(name, state_dir)
    with _slot_lock(state_path):
        return _launch_locked(name, cmd, state_dir, echo, log_path, state_path)


def _slot_lock(state_path: Path):
    """The lock of one job slot: held by a launch while it checks, starts and records the job,
    and by the job while it records its exit code (which must not be overwritten by the launch)."""
    from .runs import file_lock

    return file_lock(state_path.with_suffix(".lock"))


def _launch_locked(name: str, cmd: list[str], state_dir, echo, log_path: Path, state_path: Path) -> subprocess.Popen:
    if is_running(name, state_dir):
        raise RuntimeError(f"a background {name} job is still running (pid {read_state(name, state_dir)['pid']}); "
                           f"see `tail -f {log_path}`, or stop it with `kill {read_state(name, state_dir)['pid']}` "
                           "(it writes a checkpoint and stops cleanly)")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a", encoding="utf-8") as log:
        log.write(f"\n===== {_now()}: {' '.join(cmd)}\n")
        log.flush()
        proc = subprocess.Popen([sys.executable, "-m", "docrestore.background", str(state_path), "--", *cmd],
                                cwd=C.PROJECT_ROOT, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1", "TQDM_DISABLE": "1"})
    write_json_atomic(state_path, {"name": name, "cmd": cmd, "pid": proc.pid, "pid_start": process_start_id(proc.pid),
                                     "started": _now(), "log": str(log_path)})
    echo(f"{name} started in the background (pid {proc.pid}); it goes on after this terminal closes.")
    echo(f"  follow it : tail -f {log_path}")
    echo(f"  stop it   : kill {proc.pid}   (training writes last.pt and stops; the same command continues)")
    return proc


def status_text(name: str, state_dir=None, tail: int = 8) -> str:
    """The state of the last background job ``name``: running or its exit code, and its log's end."""
    log_path, _ = paths(name, state_dir)
    st = read_state(name, state_dir)
    if not st:
        return f"{name}: no background job has been started (nothing in {log_path.parent})"
    if "exit_code" in st:
        state = f"finished {st.get('finished', '')} with exit code {st['exit_code']}" + (
            " (interrupted; rerun the same command to continue)" if st["exit_code"] in (130, 143) else "")
    elif _alive(st):
        state = f"running (pid {st['pid']}, started {st.get('started', '')})"
    else:
        state = f"stopped without an exit code (pid {st.get('pid')} is gone: killed?)"
    lines = [f"{name}: {state}", f"  command : {' '.join(st.get('cmd', []))}", f"  log     : {log_path}"]
    try:
        text = log_path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        text = []
    if text:
        lines += ["  last lines of the log:"] + [f"    {t}" for t in text[-tail:]]
    return "\n".join(lines)


def _wrap(argv: list[str]) -> int:
    """Child side: run the command, record its exit code. SIGTERM to this process is passed on."""
    import signal

    state_path, cmd = Path(argv[0]), argv[2:]
    box: list = []
    pending: list[int] = []

    def _forward(signum, frame):
        if box:
            box[0].send_signal(signum)
        else:
            pending.append(signum)  # arrived before the command started: pass it on at once

    # Installed before the command starts, so a `kill` right after the launch is not lost.
    signal.signal(signal.SIGTERM, _forward)
    signal.signal(signal.SIGINT, _forward)
    box.append(subprocess.Popen(cmd))
    for signum in pending:
        box[0].send_signal(signum)
    code = box[0].wait()
    with _slot_lock(state_path):  # after the launcher's own write, whatever the timing
        try:
            st = json.loads(state_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            st = {}
        st.update(exit_code=code, finished=_now())
        write_json_atomic(state_path, st)
    return code


if __name__ == "__main__":
    sys.exit(_wrap(sys.argv[1:]))
