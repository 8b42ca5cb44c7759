"""MLflow writes that fail for a while are kept and sent later; they never end a training run."""

from __future__ import annotations

import json

from docrestore import config as C
from docrestore import tracking as T


class FlakyMlflow:
    """Stands in for the mlflow module: the first ``failures`` writes say the database is locked."""

    def __init__(self, failures: int):
        self.failures, self.metrics, self.ended = failures, [], None

    def log_metrics(self, metrics, step):
        if self.failures > 0:
            self.failures -= 1
            raise RuntimeError("(sqlite3.OperationalError) database is locked")
        self.metrics.append((step, dict(metrics)))

    def end_run(self, status):
        self.ended = status


def _tracker(tmp_path, fake, monkeypatch):
    monkeypatch.setattr(T.time, "sleep", lambda s: None)
    cfg = C.load_config(profile="smoke", overrides=["tracking.enabled=false"])
    t = T.Tracker(cfg, tmp_path, "run")
    t._mlflow, t.run_dir = fake, tmp_path
    return t


def test_a_write_that_exhausts_its_retries_is_kept_and_sent_with_the_next(tmp_path, monkeypatch):
    fake = FlakyMlflow(failures=getattr(T, "RETRIES", 30) + 1)
    t = _tracker(tmp_path, fake, monkeypatch)
    t.log_metrics({"train/loss_g": 1.0}, step=1)  # raised before: the training run ended here
    assert fake.metrics == [] and len(t.pending) == 1
    t.log_metrics({"train/loss_g": 0.5}, step=2)
    assert fake.metrics == [(1, {"train/loss_g": 1.0}), (2, {"train/loss_g": 0.5})] and not t.pending
    t.end()
    assert fake.ended == "FINISHED"


def test_writes_never_sent_are_kept_in_the_run_folder(tmp_path, monkeypatch):
    fake = FlakyMlflow(failures=10**6)
    t = _tracker(tmp_path, fake, monkeypatch)
    t.log_metrics({"val/cer": 0.25}, step=4)
    t.end()
    kept = [json.loads(line) for line in (tmp_path / T.UNSENT).read_text().splitlines()]
    assert kept == [{"call": "log_metrics", "args": [{"val/cer": 0.25}], "kwargs": {"step": 4}}]
