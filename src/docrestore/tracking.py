"""MLflow tracking with a sqlite store (runs/mlflow.db) and artifacts under runs/.

Concurrent jobs share one sqlite file; sqlite serialises writers, and we retry on
"database is locked" so that no run or metric is lost. A metric, tag or artifact write that is
still refused after all retries does not end the training run: it is kept, logged as a warning,
and sent before the next write; what is still unsent when the run ends is written to
``<run folder>/mlflow_unsent.jsonl``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Iterator

from . import config as C

log = logging.getLogger("docrestore")


def tracking_uri(cfg: C.Config) -> str:
    if cfg.tracking.uri:
        return cfg.tracking.uri
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    db = (C.resolve_path(cfg.runs_dir) / "mlflow.db")
    db.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{db}"


RETRIES = 30  # about 50 s of "database is locked" before a write is kept for later
UNSENT = "mlflow_unsent.jsonl"


def _retry(fn, *args, tries: int | None = None, **kwargs):
    tries = tries or RETRIES
    delay = 0.1
    for i in range(tries):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # sqlite "database is locked" surfaces as several exception types
            if "locked" not in str(exc).lower() and "busy" not in str(exc).lower() or i == tries - 1:
                raise
            time.sleep(delay)
            delay = min(delay * 1.5, 2.0)


class Tracker:
    """A thin wrapper: a no-op when tracking is disabled, MLflow otherwise."""

    def __init__(self, cfg: C.Config, run_dir: Path | None, run_name: str, tags: dict | None = None,
                 run_id: str = ""):
        """``run_id``: continue that MLflow run (an interrupted training run resumed in its folder)."""
        self.enabled = cfg.tracking.enabled
        self.run_id = ""
        self._mlflow = None
        self.run_dir = run_dir
        self.pending: list[tuple[str, tuple, dict]] = []  # writes refused after all retries
        if not self.enabled:
            return
        os.environ.setdefault("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING", "false")
        import logging as _lg
        for noisy in ("mlflow", "alembic", "sqlalchemy"):
            _lg.getLogger(noisy).setLevel(_lg.WARNING)
        import mlflow

        self._mlflow = mlflow
        uri = tracking_uri(cfg)
        mlflow.set_tracking_uri(uri)
        art = (C.resolve_path(cfg.runs_dir) / "mlartifacts").as_uri()
        exp = _retry(mlflow.get_experiment_by_name, cfg.tracking.experiment)
        if exp is None:
            try:
                _retry(mlflow.create_experiment, cfg.tracking.experiment, artifact_location=art)
            except Exception as exc:  # another job created it first
                if "already exists" not in str(exc).lower() and "unique" not in str(exc).lower():
                    raise
        _retry(mlflow.set_experiment, cfg.tracking.experiment)
        all_tags = {"run_dir": str(run_dir) if run_dir else "", "profile": cfg.profile}
        all_tags.update({k: str(v) for k, v in (tags or {}).items()})
        for k in ("DOCRESTORE_PLAN", "DOCRESTORE_JOB"):
            if os.environ.get(k):
                all_tags[k.lower().replace("docrestore_", "")] = os.environ[k]
        if run_id:
            active = _retry(mlflow.start_run, run_id=run_id)
            self.run_id = active.info.run_id
            _retry(mlflow.set_tags, all_tags)
            log.info("MLflow run %s continued at %s", self.run_id, uri)
            return  # its params are logged already (MLflow refuses to change a logged param)
        active = _retry(mlflow.start_run, run_name=run_name, tags=all_tags)
        self.run_id = active.info.run_id
        params = {k: (str(v)[:500]) for k, v in C.flatten(C.to_dict(cfg)).items()}
        items = list(params.items())
        for i in range(0, len(items), 90):
            _retry(mlflow.log_params, dict(items[i:i + 90]))
        log.info("MLflow run %s at %s", self.run_id, uri)

    def _write(self, call: str, *args, **kwargs) -> None:
        """Send the writes kept from before, then this one; a write refused after all retries is
        kept for the next time (a warning says so) instead of ending the run."""
        self.pending.append((call, args, kwargs))
        # While writes are kept the store is known to be failing: a short try, so that training
        # does not wait the whole retry time at every step.
        self._flush(RETRIES if len(self.pending) == 1 else 3)

    def _flush(self, tries: int) -> None:
        while self.pending:
            name, a, kw = self.pending[0]
            try:
                _retry(getattr(self._mlflow, name), *a, tries=tries, **kw)
            except Exception as exc:  # the store stays busy or unreachable: training goes on
                log.warning("MLflow %s failed after %d tries (%s); %d write(s) kept, sent with the next one",
                            name, tries, exc, len(self.pending))
                return
            self.pending.pop(0)

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        if self._mlflow:
            clean = {k: float(v) for k, v in metrics.items() if v is not None}
            self._write("log_metrics", clean, step=step)

    def log_artifact(self, path: str | Path, subdir: str | None = None) -> None:
        if self._mlflow and Path(path).exists():
            self._write("log_artifact", str(path), subdir)

    def set_tags(self, tags: dict[str, Any]) -> None:
        if self._mlflow:
            self._write("set_tags", {k: str(v) for k, v in tags.items()})

    def __enter__(self) -> "Tracker":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        interrupted = exc_type is not None and issubclass(exc_type, KeyboardInterrupt)
        self.end("FINISHED" if exc_type is None else "KILLED" if interrupted else "FAILED")

    def end(self, status: str = "FINISHED") -> None:
        if self._mlflow:
            self._flush(RETRIES)  # one more full try for what was kept
            if self.pending:
                self._keep_unsent()
            try:
                _retry(self._mlflow.end_run, status=status)
            except Exception as exc:  # the run's own files hold its results; MLflow is a view of them
                log.warning("MLflow end_run failed after %d tries (%s); the MLflow run stays open", RETRIES, exc)
            self._mlflow = None

    def _keep_unsent(self) -> None:
        lines = [json.dumps({"call": n, "args": list(a), "kwargs": kw}, default=str) for n, a, kw in self.pending]
        where = Path(self.run_dir or ".") / UNSENT
        with open(where, "a", encoding="utf-8") as f:
            f.write("".join(line + "\n" for line in lines))
        log.warning("%d MLflow write(s) could not be sent; kept in %s", len(lines), where)
        self.pending = []


@contextlib.contextmanager
def tracked(cfg: C.Config, run_dir: Path | None, run_name: str, tags: dict | None = None) -> Iterator[Tracker]:
    t = Tracker(cfg, run_dir, run_name, tags)
    try:
        yield t
    except BaseException:
        t.end("FAILED")
        raise
    else:
        t.end("FINISHED")
