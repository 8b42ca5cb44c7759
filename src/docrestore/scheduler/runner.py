"""Run an experiment plan's notebooks headlessly with papermill, in the background, across GPUs.

``docrestore experiments PLAN.yaml`` checks the plan (every parameter name against its
notebook's ``parameters`` cell), then starts a detached scheduler and returns at once. The
scheduler keeps a pool of worker slots (each visible GPU x ``jobs_per_gpu``, or
``cpu_workers`` slots on the CPU) and runs one job per slot, each in its own process group:

    python -m docrestore.scheduler.runner --job runs/experiments/<plan>/<job-id>

which executes the notebook with papermill into ``<job-id>/notebook.ipynb``, its output
going to ``<job-id>/job.log`` and its state to ``<job-id>/status.json``. A GPU job sees only
its GPU (``CUDA_VISIBLE_DEVICES``); every job gets ``DOCRESTORE_PLAN``, ``DOCRESTORE_JOB``,
``DOCRESTORE_JOB_DIR`` and ``MLFLOW_TRACKING_URI`` (the plan's store).

A lock on ``runs/experiments/<plan>/.lock`` keeps two launches of one plan from running the
same jobs; a relaunch skips jobs that are done (with the same parameters) and reruns failed
and interrupted ones; ``--force`` reruns all.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import fcntl
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from .. import config as C
from ..files import write_json_atomic
from ..processes import pid_alive, process_start_id
from . import plan as P
from . import status as S

Echo = Callable[[str], None]
Estimate = Callable[[str, int, int], list[str]]


class PlanBusy(RuntimeError):
    """Another scheduler holds this plan's lock."""


class _Stop(Exception):
    """Raised in the scheduler by SIGTERM so that it stops its jobs before exiting."""


# ------------------------------------------------------------------------------- slots
@dataclass(frozen=True)
class Slot:
    """One place a job can run: a GPU (its CUDA_VISIBLE_DEVICES id) or the CPU."""

    index: int
    gpu_id: str | None = None

    @property
    def label(self) -> str:
        return f"GPU {self.gpu_id}" if self.gpu_id is not None else "cpu"


def count_gpus() -> int:
    from .. import device  # imports torch: only when slots are really needed

    return device.cuda_visible()


def _visible_gpu_ids(n: int) -> list[str]:
    """The ids to pin, honouring a CUDA_VISIBLE_DEVICES already set for this process."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES", "").strip()
    ids = [x.strip() for x in env.split(",") if x.strip()] if env else []
    return ids[:n] if len(ids) >= n else [str(i) for i in range(n)]


def make_slots(plan: P.Plan, gpus: int | None = None, workers: int | None = None) -> tuple[list[Slot], str]:
    """Worker slots and a line describing them; ``workers`` overrides how many run at once."""
    if workers is not None and workers < 1:
        raise P.PlanError(f"--workers must be at least 1, got {workers}")
    gpus = count_gpus() if gpus is None else gpus
    if gpus > 0:
        ids = _visible_gpu_ids(gpus)
        n = workers or gpus * plan.jobs_per_gpu
        slots = [Slot(i, ids[i % gpus]) for i in range(n)]
        return slots, (f"{gpus} GPU(s) visible ({', '.join(ids)}): {n} job(s) at a time, "
                       f"{-(-n // gpus)} per GPU at most, each pinned with CUDA_VISIBLE_DEVICES")
    n = workers or plan.cpu_workers
    return [Slot(i) for i in range(n)], f"no GPU visible: running {n} job(s) at a time on the CPU"


# ---------------------------------------------------------------------------- choosing
@dataclass(frozen=True)
class Decision:
    job: P.Job
    run: bool
    reason: str


def decide(plan: P.Plan, jobs: list[P.Job], force: bool = False) -> list[Decision]:
    """Which jobs to run: new, failed, interrupted and changed ones (and, with force, done ones)."""
    out = []
    for job in jobs:
        st = S.read_status(plan.job_dir(job))
        state = S.effective_state(st)
        same = st.get("fingerprint") == job.fingerprint
        if state == S.RUNNING:
            out.append(Decision(job, False, f"still running (pid {st.get('pid')}) from an earlier launch"))
        elif state == S.DONE and same and not force:
            out.append(Decision(job, False, "done (skipped; --force reruns it)"))
        elif state == S.DONE:
            out.append(Decision(job, True, "rerun: --force" if same else "rerun: its parameters changed since it ran"))
        elif state in (S.FAILED, S.INTERRUPTED):
            out.append(Decision(job, True, f"rerun: {state} last time"))
        else:
            out.append(Decision(job, True, "new"))
    return out


# ---------------------------------------------------------------------------- checking
def check_kernels(jobs: list[P.Job]) -> None:
    """Every notebook's Jupyter kernel must be installed (papermill would fail each job)."""
    from jupyter_client.kernelspec import KernelSpecManager

    specs = KernelSpecManager().find_kernel_specs()
    for nb in sorted({j.notebook for j in jobs}):
        name = P.notebook_kernel(nb)
        if name not in specs:
            raise P.PlanError(f"notebook {nb} asks for the Jupyter kernel '{name}', which is not "
                              f"installed (installed: {', '.join(specs) or 'none'}); `make setup` (or "
                              "`python -m docrestore.notebook kernel`) installs the project's kernel "
                              "'docrestore', or set the notebook's kernel to one of these (Kernel > "
                              "Change Kernel) and save it")


def prepare_jobs(plan: P.Plan) -> list[P.Job]:
    """Expand the plan and validate every job before anything starts; raises PlanError."""
    jobs = P.expand(plan)
    P.validate_jobs(jobs)
    check_kernels(jobs)
    return jobs


def dry_run_text(plan: P.Plan, jobs: list[P.Job], force: bool = False, workers: int | None = None,
                 gpus: int | None = None, estimate: Estimate | None = None) -> str:
    """The jobs with their resolved parameters and device; what a launch would do; ``estimate``
    (profile, seeds, jobs at once) -> lines of the plan's time (the study layer's)."""
    slots, slots_text = make_slots(plan, gpus, workers)
    decisions = decide(plan, jobs, force)
    n_run = sum(d.run for d in decisions)
    lines = [
        f"# docrestore experiments {C.project_relative(plan.path)} --dry-run",
        f"# plan         : {plan.name}" + (f"  ({plan.description})" if plan.description else ""),
        f"# profile      : {plan.profile or '(not set by the plan)'}",
        f"# state folder : {plan.state_dir}/",
        f"# MLflow store : {plan.tracking_uri}",
        f"# devices      : {slots_text}",
        f"# jobs         : {len(jobs)} in the plan, {n_run} to run, {len(jobs) - n_run} skipped",
        "",
    ]
    labels = sorted({s.label for s in slots})
    i = 0
    for d in decisions:
        if d.run:
            dev = slots[i].label if i < len(slots) else f"the next free slot ({', '.join(labels)})"
            i += 1
        else:
            dev = "-"
        params = ", ".join(f"{k}={v!r}" for k, v in d.job.parameters.items())
        lines += [f"{d.job.id}  [{'run' if d.run else 'skip'}: {d.reason}]",
                  f"    notebook   : {C.project_relative(d.job.notebook)}",
                  f"    device     : {dev}",
                  f"    parameters : {params or '(none)'}"]
    if plan.profile and estimate:  # the time it takes, as the caller that knows the recipes estimates it
        n_gpus = gpus if gpus is not None else count_gpus()
        lines += ["", *estimate(plan.profile, max(1, len(plan.seeds or [0])),
                                n_gpus * plan.jobs_per_gpu if n_gpus else plan.cpu_workers)]
    lines += ["", "# every parameter name matches its notebook's parameters cell; nothing was started"]
    return "\n".join(lines)


# ------------------------------------------------------------------------------- lock
@contextlib.contextmanager
def plan_lock(plan: P.Plan) -> Iterator[None]:
    """Hold runs/experiments/<plan>/.lock for the scheduler's life; PlanBusy when taken."""
    plan.state_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(plan.state_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        info = {}
        with contextlib.suppress(OSError, ValueError):
            info = json.loads((plan.state_dir / "scheduler.json").read_text(encoding="utf-8"))
        raise PlanBusy(f"plan '{plan.name}' is already running (scheduler pid {info.get('pid', '?')}, "
                       f"plan file {info.get('plan', '?')}); see `docrestore experiments {C.project_relative(plan.path)} "
                       "--status`, or wait for it to finish before launching it again") from None
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


# ---------------------------------------------------------------------------- tracking
def _sqlite_has_schema(db: Path) -> bool:
    import sqlite3

    if not db.is_file():
        return False
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
        try:
            row = con.execute("SELECT version_num FROM alembic_version").fetchone()
        finally:
            con.close()
    except sqlite3.Error:
        return False
    return bool(row)


def prepare_tracking_store(uri: str) -> None:
    """Create a sqlite store (schema migrations) once, before jobs race to create it."""
    if not uri.startswith("sqlite:///"):
        return
    db = Path(uri[len("sqlite:///"):])
    db.parent.mkdir(parents=True, exist_ok=True)
    if _sqlite_has_schema(db):
        return  # already created: skip importing mlflow (seconds)
    # two plans launched together on a fresh store must not both create the schema
    fd = os.open(db.parent / f".{db.name}.init-lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        if _sqlite_has_schema(db):
            return
        os.environ.setdefault("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING", "false")
        for noisy in ("mlflow", "alembic", "sqlalchemy"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        from mlflow.tracking import MlflowClient

        from ..tracking import _retry

        _retry(MlflowClient(tracking_uri=uri).search_experiments, max_results=1)
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


# ----------------------------------------------------------------------------- running
def job_env(plan: P.Plan, job: P.Job, slot: Slot, n_slots: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "DOCRESTORE_PLAN": plan.name,
        "DOCRESTORE_JOB": job.id,
        S.JOB_DIR_ENV: str(plan.job_dir(job)),
        "MLFLOW_TRACKING_URI": plan.tracking_uri,
        "PYTHONUNBUFFERED": "1",
    })
    if slot.gpu_id is not None:
        env["CUDA_VISIBLE_DEVICES"] = slot.gpu_id
    # parallel jobs share the cores instead of each taking all of them (oversubscribed OpenMP
    # threads make small convolutions several times slower); docrestore.device reads the first
    share = str(max(1, (os.cpu_count() or 1) // n_slots))
    for var in ("DOCRESTORE_THREADS", "OMP_NUM_THREADS"):
        if var not in os.environ:
            env[var] = share
    return env


def _cells(notebook: Path) -> int:
    cells = P.read_notebook(notebook)["cells"]
    injected = any("parameters" in (c.get("metadata", {}).get("tags") or []) for c in cells)
    return len(cells) + int(injected)


def start_job(plan: P.Plan, job: P.Job, slot: Slot, n_slots: int) -> subprocess.Popen:
    """Start the job's process (its own process group, detached from any terminal)."""
    jd = plan.job_dir(job)
    jd.mkdir(parents=True, exist_ok=True)
    for stale in ("notebook.ipynb", "result.json"):
        (jd / stale).unlink(missing_ok=True)
    attempt = int(S.read_status(jd).get("attempt") or 0) + 1
    write_json_atomic(jd / "job.json", {**job.to_dict(), "device": slot.label,
                                          "tracking_uri": plan.tracking_uri, "plan_file": str(plan.path)})
    write_json_atomic(jd / "status.json", {
        "state": S.RUNNING, "pid": None, "pid_start": None, "started": S.now_iso(), "finished": None,
        "device": slot.label, "error": "", "progress": "", "headline": {}, "attempt": attempt,
        "fingerprint": job.fingerprint, "cells": _cells(job.notebook)})
    with open(jd / "job.log", "w", encoding="utf-8") as log:
        log.write(f"# job {job.id} of plan {plan.name}, attempt {attempt}, on {slot.label}, "
                  f"started {S.now_iso()}\n")
        log.flush()
        proc = subprocess.Popen(
            [sys.executable, "-m", "docrestore.scheduler.runner", "--job", str(jd)],
            cwd=C.PROJECT_ROOT, env=job_env(plan, job, slot, n_slots), stdin=subprocess.DEVNULL,
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    st = S.read_status(jd)
    if st.get("state") == S.RUNNING and not st.get("pid"):
        S.update_status(jd, pid=proc.pid, pid_start=process_start_id(proc.pid))
    return proc


def finish_job(plan: P.Plan, job: P.Job, proc: subprocess.Popen) -> dict:
    """Record a job whose process ended without saying how (killed, crashed)."""
    jd = plan.job_dir(job)
    st = S.read_status(jd)
    rc = proc.returncode
    if st.get("state") == S.RUNNING:
        why = f"was killed by signal {-rc}" if rc < 0 else f"exited with code {rc}"
        last = S.last_error_line(jd)
        st = S.update_status(
            jd, state=S.INTERRUPTED if rc < 0 else S.FAILED, finished=S.now_iso(),
            error=f"the job process {why} before recording a result" + (f"; last log line: {last}" if last else ""))
    return st


def _stop_process_group(proc: subprocess.Popen, grace: float = 10.0) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _stamp(echo: Echo) -> Echo:
    return lambda msg: echo(f"{time.strftime('%H:%M:%S')} {msg}")


def run_plan(plan: P.Plan, force: bool = False, workers: int | None = None, gpus: int | None = None,
             echo: Echo = print, poll: float = 0.5) -> int:
    """The scheduler, in this process: run the plan's pending jobs, ``len(slots)`` at a time.

    Returns 0 when every job of the plan is done, 1 when one failed or was interrupted, 130 when
    stopped by SIGTERM / Ctrl-C (running jobs are stopped and marked interrupted).
    Raises PlanError (bad plan) or PlanBusy (the plan is already running).
    """
    say = _stamp(echo)
    jobs = prepare_jobs(plan)
    with plan_lock(plan):
        slots, slots_text = make_slots(plan, gpus, workers)
        info = {"pid": os.getpid(), "pid_start": process_start_id(os.getpid()), "started": S.now_iso(),
                "finished": None, "plan": str(plan.path), "slots_text": slots_text}
        write_json_atomic(plan.state_dir / "scheduler.json", info)
        say(f"plan {plan.name} ({C.project_relative(plan.path)}); jobs in {plan.state_dir}/")
        say(slots_text)
        decisions = decide(plan, jobs, force)
        for d in decisions:
            if not d.run:
                say(f"skip   {d.job.id}: {d.reason}")
        todo = [d for d in decisions if d.run]
        for d in todo:
            S.update_status(plan.job_dir(d.job), state=S.QUEUED, pid=None, pid_start=None, started=None,
                            finished=None, device="", error="", progress="", headline={},
                            fingerprint=d.job.fingerprint, queued=S.now_iso())
        say(f"{len(todo)} job(s) to run, {len(decisions) - len(todo)} skipped; MLflow store {plan.tracking_uri}")
        if todo:
            prepare_tracking_store(plan.tracking_uri)
        pending = collections.deque(d.job for d in todo)
        running: dict[int, tuple[subprocess.Popen, P.Job]] = {}
        old_term = None
        if threading.current_thread() is threading.main_thread():
            def _on_term(signum, frame):
                raise _Stop()
            old_term = signal.signal(signal.SIGTERM, _on_term)
        code = 0
        try:
            while pending or running:
                for slot in slots:
                    if slot.index not in running and pending:
                        job = pending.popleft()
                        running[slot.index] = (start_job(plan, job, slot, len(slots)), job)
                        say(f"start  {job.id} on {slot.label}  (log: {plan.job_dir(job) / 'job.log'})")
                time.sleep(poll)
                for idx, (proc, job) in list(running.items()):
                    if proc.poll() is None:
                        continue
                    del running[idx]
                    st = finish_job(plan, job, proc)
                    row = S.job_row(job.id, plan.job_dir(job))
                    say(f"{st.get('state', '?'):<6} {job.id} ({row['time']}) {row['detail']}".rstrip())
        except (KeyboardInterrupt, _Stop):
            say(f"stopping: {len(running)} running job(s) are stopped and marked interrupted; "
                f"{len(pending)} queued job(s) stay queued; launch the plan again to go on")
            for proc, job in running.values():
                _stop_process_group(proc)
                st = S.read_status(plan.job_dir(job))
                if st.get("state") in (S.RUNNING, S.QUEUED):
                    S.update_status(plan.job_dir(job), state=S.INTERRUPTED, finished=S.now_iso(),
                                    error="stopped with the scheduler (SIGTERM or Ctrl-C)")
            code = 130
        finally:
            if old_term is not None:
                signal.signal(signal.SIGTERM, old_term)
            write_json_atomic(plan.state_dir / "scheduler.json", {**info, "finished": S.now_iso()})
        rows = [S.job_row(j.id, plan.job_dir(j), j.fingerprint) for j in jobs]
        say(f"plan {plan.name}: {S.summary_line(rows)}")
        if code == 0 and any(r["state"] != S.DONE for r in rows):
            code = 1
        return code


def launch_background(plan: P.Plan, force: bool = False, workers: int | None = None,
                      gpus: int | None = None, echo: Echo = print) -> subprocess.Popen:
    """Start the scheduler detached (own session, no terminal) and return its process at once."""
    jobs = prepare_jobs(plan)
    with plan_lock(plan):  # raises PlanBusy, naming the scheduler's pid, when the plan runs
        pass
    gpus = count_gpus() if gpus is None else gpus
    slots, slots_text = make_slots(plan, gpus, workers)
    decisions = decide(plan, jobs, force)
    n_run = sum(d.run for d in decisions)
    plan.state_dir.mkdir(parents=True, exist_ok=True)
    log_path = plan.state_dir / "scheduler.log"
    cmd = [sys.executable, "-m", "docrestore.scheduler.runner", "--run", str(plan.path), "--gpus", str(gpus)]
    if force:
        cmd.append("--force")
    if workers:
        cmd += ["--workers", str(workers)]
    with open(log_path, "a", encoding="utf-8") as log:
        log.write(f"\n===== launch {S.now_iso()}: {' '.join(cmd)}\n")
        log.flush()
        proc = subprocess.Popen(cmd, cwd=C.PROJECT_ROOT, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
    plan_arg = C.project_relative(plan.path)
    echo(f"plan {plan.name}: {n_run} job(s) to run, {len(jobs) - n_run} skipped")
    echo(slots_text)
    echo(f"scheduler started in the background (pid {proc.pid}); it goes on after this terminal closes.")
    echo(f"  follow it : tail -f {log_path}")
    echo(f"  one job   : tail -f {plan.state_dir}/<job-id>/job.log")
    echo(f"  the table : docrestore experiments {plan_arg} --status")
    echo(f"  stop it   : kill {proc.pid}   (running jobs are stopped and marked interrupted)")
    return proc


# -------------------------------------------------------------------------------- status
def status_text(plan: P.Plan) -> str:
    """The status table of a plan: one row per job (and rows for folders of jobs no longer in it)."""
    try:
        jobs = P.expand(plan)
    except P.PlanError:
        jobs = []
    rows = [S.job_row(j.id, plan.job_dir(j), j.fingerprint) for j in jobs]
    known = {j.id for j in jobs}
    if plan.state_dir.is_dir():
        for d in sorted(plan.state_dir.iterdir()):
            if d.is_dir() and d.name not in known and (d / "status.json").exists():
                row = S.job_row(d.name, d)
                row["detail"] = "[not in the plan any more] " + row["detail"]
                rows.append(row)
    sched = S.scheduler_line(plan.state_dir)
    left = sum(r["state"] in (S.QUEUED, S.FAILED, S.INTERRUPTED, S.NOT_STARTED) for r in rows)
    hint = []
    if left and not sched.startswith("scheduler: running"):
        hint = [f"{left} job(s) not done: `docrestore experiments {C.project_relative(plan.path)}` runs them "
                "(done jobs are skipped)"]
    return "\n".join([
        f"plan {plan.name} ({C.project_relative(plan.path)}): {plan.state_dir}/",
        sched,
        "",
        S.format_table(rows),
        "",
        S.summary_line(rows),
        f"logs: tail -f {plan.state_dir}/<job-id>/job.log",
        *hint,
    ])


# ------------------------------------------------------------------------- one job (child)
def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            raw = stat.read_text()
            if int(raw[raw.rfind(")") + 2:].split()[1]) == pid:
                out.append(int(stat.parent.name))
    return out


def _kill_kernels(sig: int = signal.SIGTERM, wait: float = 3.0) -> None:
    """Stop this process's children (the kernel runs in its own session, so it is not in
    our process group and would otherwise keep running until it notices we are gone)."""
    kids = _children(os.getpid())
    for k in kids:
        with contextlib.suppress(OSError):
            if os.getpgid(k) == k:
                os.killpg(k, sig)
            else:
                os.kill(k, sig)
    end = time.monotonic() + wait
    while time.monotonic() < end and any(pid_alive(k) for k in kids):
        time.sleep(0.1)
    for k in kids:
        if pid_alive(k):
            with contextlib.suppress(OSError):
                os.kill(k, signal.SIGKILL)


def run_job(job_dir: str | Path) -> int:
    """Execute one job's notebook with papermill (the child process of the scheduler).

    Reads ``job.json``, re-checks the parameter names, runs papermill (output notebook
    ``notebook.ipynb``, cell outputs logged to stdout = job.log) and records done/failed with
    the last error line and the headline of ``result.json`` in ``status.json``.
    """
    jd = Path(job_dir).resolve()
    spec = json.loads((jd / "job.json").read_text(encoding="utf-8"))
    notebook, params = Path(spec["notebook"]), spec["parameters"]
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout, force=True)
    S.update_status(jd, state=S.RUNNING, pid=os.getpid(), pid_start=process_start_id(os.getpid()))

    def _on_term(signum, frame):
        _kill_kernels()
        S.update_status(jd, state=S.INTERRUPTED, finished=S.now_iso(),
                        error=f"stopped by signal {signum} (the scheduler was stopped or the job killed)")
        print(f"job stopped by signal {signum}", flush=True)
        os._exit(128 + signum)

    signal.signal(signal.SIGTERM, _on_term)
    state, error, headline = S.FAILED, "", {}
    try:
        problems = P.check_parameters(params, P.notebook_parameters(notebook), notebook, spec["id"])
        if problems:
            raise P.PlanError("; ".join(problems))
        import papermill as pm

        print(f"papermill {notebook} -> {jd / 'notebook.ipynb'}; parameters {params}", flush=True)
        try:
            pm.execute_notebook(str(notebook), str(jd / "notebook.ipynb"), parameters=params,
                                cwd=str(notebook.parent), log_output=True, progress_bar=False)
        except pm.PapermillExecutionError as exc:
            print(str(exc), flush=True)
            first = (str(exc.evalue).strip().splitlines() or [""])[0]
            error = f"{exc.ename}: {first} (notebook cell In [{exc.exec_count}])"
        else:
            headline, problem = S.read_headline(jd)
            if problem:
                print(f"warning: {problem}", flush=True)
            state = S.DONE
    except Exception as exc:  # noqa: BLE001 - every failure is recorded, not raised
        traceback.print_exc()
        sys.stdout.flush()
        first = (str(exc).strip().splitlines() or [""])[0]
        error = f"{type(exc).__name__}: {first}"
    S.update_status(jd, state=state, finished=S.now_iso(), error=error, headline=headline,
                    progress=S.progress(jd, S.read_status(jd).get("cells")))
    print(f"job {state}" + (f": {error}" if error else ""), flush=True)
    return 0 if state == S.DONE else 1


# ----------------------------------------------------------------------------- commands
def main_cli(args, estimate: Estimate | None = None) -> int:
    """``docrestore experiments PLAN [--status | --dry-run | --foreground] [--force] [--workers N]``;
    ``estimate`` adds the plan's time to the dry run."""
    try:
        plan = P.load_plan(args.plan)
        if getattr(args, "status", False):
            print(status_text(plan))
            return 0
        workers = getattr(args, "workers", None)
        gpus = getattr(args, "gpus", None)
        force = bool(getattr(args, "force", False))
        if getattr(args, "dry_run", False):
            print(dry_run_text(plan, prepare_jobs(plan), force=force, workers=workers, gpus=gpus,
                               estimate=estimate))
            return 0
        if getattr(args, "foreground", False):
            return run_plan(plan, force=force, workers=workers, gpus=gpus)
        launch_background(plan, force=force, workers=workers, gpus=gpus)
        return 0
    except P.PlanError as exc:
        print(f"docrestore: plan error: {exc}", file=sys.stderr)
        return 2
    except PlanBusy as exc:
        print(f"docrestore: {exc}", file=sys.stderr)
        return 1


def _main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m docrestore.scheduler.runner",
                                 description="internal: the detached scheduler (--run) and one job (--job)")
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--run", metavar="PLAN", help="run the plan's scheduler in this process")
    g.add_argument("--job", metavar="JOB_DIR", help="execute one job folder's notebook")
    ap.add_argument("--force", action="store_true")
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--gpus", type=int, default=None, help="GPUs to use (default: all visible)")
    a = ap.parse_args(argv)
    if a.job:
        return run_job(a.job)
    try:
        return run_plan(P.load_plan(a.run), force=a.force, workers=a.workers, gpus=a.gpus,
                        echo=lambda m: print(m, flush=True))
    except (P.PlanError, PlanBusy) as exc:
        print(f"docrestore: {exc}", flush=True)
        return 2


if __name__ == "__main__":
    sys.exit(_main())
