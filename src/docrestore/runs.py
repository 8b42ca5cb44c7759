"""Run folders that describe themselves: runs/<YYYYmmdd-HHMMSS>-<stage>-<desc>/.

Each holds the resolved config.yaml, git.json (commit and whether the tree was dirty) and
run.log, all written before any work starts.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import logging
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from . import config as C
from .files import write_json_atomic

log = logging.getLogger("docrestore")


# What a result depends on: a change here since an entry's commit makes the entry stale; a change
# elsewhere (paper/, docs, the logbook, the ledger itself) does not.
CODE_PATHS = ("src", "configs", "notebooks", "pyproject.toml", "uv.lock")
COMMIT_ID = re.compile(r"[0-9a-f]{7,40}|[0-9a-f]{64}")  # abbreviated or full SHA-1, full SHA-256


def git_info(root: Path = C.PROJECT_ROOT) -> dict:
    """``{"commit", "dirty"}`` of the checkout; ``dirty`` is about the code under a result
    (:data:`CODE_PATHS`) only: a ledger entry, figure or logbook line written by a job beside this
    one must not make this run's result look unreproducible."""
    def git(*args):
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=20)

    try:
        commit = git("rev-parse", "HEAD")
        if commit.returncode != 0:
            return {"commit": "unknown", "dirty": None}
        status = git("status", "--porcelain", "--untracked-files=no", "--", *CODE_PATHS)
        return {"commit": commit.stdout.strip(), "dirty": bool(status.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"commit": "unknown", "dirty": None}


def code_changed_since(commit: str | None, root: Path = C.PROJECT_ROOT) -> bool:
    """True when the code under a result (:data:`CODE_PATHS`) differs between ``commit`` and the
    working tree, or when that cannot be told (unknown commit, no git).

    ``commit`` comes from a ledger entry, a file anyone can edit: only a hexadecimal commit id is
    passed to git (``--output=FILE`` would be an option that writes FILE)."""
    if not commit or not COMMIT_ID.fullmatch(commit):
        return True
    try:
        r = subprocess.run(["git", "diff", "--quiet", commit, "--", *CODE_PATHS], cwd=root,
                           capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return True
    return r.returncode != 0


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")[:60]


@dataclass
class Run:
    dir: Path
    stage: str
    cfg: C.Config
    git: dict

    @property
    def name(self) -> str:
        return self.dir.name

    def path(self, *parts: str) -> Path:
        p = self.dir.joinpath(*parts)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def write_json(self, name: str, obj) -> Path:
        return write_json_atomic(self.path(name), obj)


def run_dir_name(stage: str, desc: str, now: _dt.datetime | None = None) -> str:
    now = now or _dt.datetime.now()
    parts = [now.strftime("%Y%m%d-%H%M%S"), slug(stage)]
    if desc:
        parts.append(slug(desc))
    return "-".join(parts)



def plan_run_dir(cfg: C.Config, stage: str) -> Path:
    """Where a run of ``stage`` would go (used by dry runs; creates nothing)."""
    return C.resolve_path(cfg.runs_dir) / run_dir_name(stage, cfg.desc or cfg.profile)


def start_run(cfg: C.Config, stage: str) -> Run:
    """Create the run folder, write config.yaml, git.json and start run.log."""
    base = C.resolve_path(cfg.runs_dir)
    try:
        base.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OSError(f"cannot create the runs folder {base}: {exc}. Set runs_dir=... to a writable folder") from exc
    name = run_dir_name(stage, cfg.desc or cfg.profile)
    d, i = base / name, 1
    while True:  # two runs started in the same second (parallel jobs) get their own folder
        try:
            d.mkdir(parents=True)
            break
        except FileExistsError:
            i += 1
            d = base / f"{name}-{i}"
    claim_run(d)  # before any work: no other process may take this folder up
    run = Run(dir=d, stage=stage, cfg=cfg, git=git_info())
    C.save(cfg, d / "config.yaml")
    run.write_json("git.json", run.git)
    attach_log(d / "run.log")
    log.info("run %s (stage %s, profile %s, commit %s%s)", d, stage, cfg.profile,
             run.git["commit"][:10], " dirty" if run.git.get("dirty") else "")
    return run


def reopen_run(dir: str | Path, cfg: C.Config, stage: str) -> Run:
    """An interrupted run's folder, taken up again by the process that continues it: run.log
    grows, config.yaml stays (the same config, by the caller's check). It must be claimed
    (:func:`claim_run`) by this process."""
    if not claim_run(dir):
        raise RuntimeError(f"the run {dir} is being continued by another process; start a new run "
                           "(train.auto_resume=false) or wait for that one")
    run = Run(dir=Path(dir), stage=stage, cfg=cfg, git=git_info())
    attach_log(run.dir / "run.log")
    log.info("continuing the interrupted run %s (commit %s%s)", run.dir, run.git["commit"][:10],
             " dirty" if run.git.get("dirty") else "")
    return run


_CLAIMS: dict[Path, int] = {}  # run folder -> the descriptor whose lock claims it


def claim_run(dir: str | Path) -> bool:
    """Claim the run folder ``dir`` for this process: an exclusive lock on the folder, held until
    :func:`release_run` or the process ends (a killed process loses it too, so no stale claim
    outlives it). False when another process holds it. Where there are no advisory locks
    (fcntl, i.e. Windows) every claim succeeds, as before."""
    d = Path(dir).resolve()
    if d in _CLAIMS:
        return True
    try:
        import fcntl
    except ImportError:
        return True
    fd = os.open(d, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return False
    _CLAIMS[d] = fd
    return True


def release_run(dir: str | Path) -> None:
    """Give up this process's claim on ``dir`` (a finished or stopped run)."""
    fd = _CLAIMS.pop(Path(dir).resolve(), None)
    if fd is not None:
        os.close(fd)


def join_run(dir: str | Path, cfg: C.Config, stage: str, git: dict) -> Run:
    """The :class:`Run` of a folder that another process started (rank 0 under torchrun), for
    the other ranks: it creates and writes nothing."""
    return Run(dir=Path(dir), stage=stage, cfg=cfg, git=git)


@contextlib.contextmanager
def file_lock(path: Path):
    """An exclusive advisory lock held for the block: parallel jobs that need the same dataset or
    recognizer wait for the first to make it. (No-op where fcntl does not exist.)"""
    try:
        import fcntl
    except ImportError:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def progress_disabled() -> bool | None:
    """tqdm's ``disable``: bars in a terminal and in a Jupyter kernel (whose stderr is no TTY but
    shows widgets); none in plain logs (background jobs log a line per validation instead)."""
    try:
        from IPython import get_ipython

        if get_ipython() is not None and "IPKernelApp" in get_ipython().config:
            return False
    except ImportError:
        pass
    return None


# In a kernel every bar refresh becomes a fragment of the cell's output, saved in the executed
# notebook (330 KB for one quick run): refresh there at most this often (callers pass
# refresh=False to set_postfix, so only update() redraws, subject to this interval).
KERNEL_BAR_INTERVAL_S = 30.0


def progress_options(enabled: bool = True) -> dict:
    """tqdm keyword arguments: ``disable`` as :func:`progress_disabled`, and in a Jupyter kernel a
    slow refresh so an executed notebook holds a few bar states, not thousands."""
    disable = progress_disabled() if enabled else True
    return {"disable": disable, "mininterval": KERNEL_BAR_INTERVAL_S if disable is False else 0.1}


def setup_logging(level: int = logging.INFO) -> None:
    root = logging.getLogger("docrestore")
    if not any(isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)
               for h in root.handlers):
        h = logging.StreamHandler(sys.stderr)
        h.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
        root.addHandler(h)
    root.setLevel(level)


def attach_log(path: Path) -> list[logging.Handler]:
    """Send the log to ``path`` (instead of the previous run's file); returns the handlers it
    replaced, for :func:`restore_log` when a run starts another one inside it."""
    root = logging.getLogger("docrestore")
    previous = [h for h in root.handlers if isinstance(h, logging.FileHandler)]
    for h in previous:
        root.removeHandler(h)
        h.close()  # a closed FileHandler reopens its file (append mode) if it is attached again
    fh = logging.FileHandler(path, encoding="utf-8")
    fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(fh)
    if root.level == logging.NOTSET or root.level > logging.INFO:
        root.setLevel(logging.INFO)
    return previous


def restore_log(previous: list[logging.Handler]) -> None:
    """Put back the file handlers that :func:`attach_log` replaced (the outer run's run.log)."""
    root = logging.getLogger("docrestore")
    for h in [h for h in root.handlers if isinstance(h, logging.FileHandler)]:
        root.removeHandler(h)
        h.close()
    for h in previous:
        root.addHandler(h)
