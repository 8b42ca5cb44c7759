"""MLflow tracking with a sqlite store (runs/mlflow.db) and artifacts under runs/.

Concurrent jobs share one sqlite file; sqlite serialises writers, and we retry on
"database is locked" so that no run or metric is lost.
"""

from __future__ import annotations

import contextlib
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


def _retry(fn, *args, tries: int = 30, **kwargs):
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

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        if self._mlflow:
            clean = {k: float(v) for k, v in metrics.items() if v is not None}
            _retry(self._mlflow.log_metrics, clean, step=step)

    def log_artifact(self, path: str | Path, subdir: str | None = None) -> None:
        if self._mlflow and Path(path).exists():
            _retry(self._mlflow.log_artifact, str(path), subdir)

    def set_tags(self, tags: dict[str, Any]) -> None:
        if self._mlflow:
            _retry(self._mlflow.set_tags, {k: str(v) for k, v in tags.items()})

    def __enter__(self) -> "Tracker":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        interrupted = exc_type is not None and issubclass(exc_type, KeyboardInterrupt)
        self.end("FINISHED" if exc_type is None else "KILLED" if interrupted else "FAILED")

    def end(self, status: str = "FINISHED") -> None:
        if self._mlflow:
            _retry(self._mlflow.end_run, status=status)
            self._mlflow = None


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
