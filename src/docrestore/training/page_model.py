"""``docrestore page-model`` (``make page-model``): the deployable page model.

The page benchmark (:mod:`docrestore.study.pages`) trains on some DIBCO years and tests on
another. A model for users' pages is tested on none of them, so it trains on every page pair of
``pages.root`` (all sets; ``pages.train_sets`` and ``pages.test_sets`` are replaced by what the
folder holds), with the recipe of ``configs/page_model.yaml``. Its validation pages are scored
during training as a monitor only: they are training pages too, so their numbers say that
training went as expected, not how well the model does on unseen pages (the benchmark says that).

The model installed is the run's ``last.pt`` (a fixed number of steps; no choice is made on the
pages it trained on), copied to ``restore.page_model`` (default ``models/page_model.pt``) with a
sidecar ``<name>.json`` that names the run, its commit, the pages and the wall time.
``docrestore restore`` without ``--checkpoint`` uses that file.
"""

from __future__ import annotations

import datetime as _dt
import logging
import shutil
import time
from pathlib import Path

from .. import config as C
from .. import runs as R
from ..files import write_json_atomic

log = logging.getLogger("docrestore")


def page_model_path(cfg: C.Config) -> Path:
    """Where the deployable page model lives (``restore.page_model``, from the project root)."""
    return C.resolve_path(cfg.restore.page_model)


def make_page_model_hint(path: Path) -> str:
    """The one line `docrestore restore` prints when no --checkpoint is given and no model exists."""
    return (f"no --checkpoint given and no page model at {path}; make it with `make page-model` "
            "(trains on the DIBCO pages in ../shared/data/dibco, about 30 min on a 2-core CPU) or give "
            "--checkpoint runs/<run>/best_*.pt")


def all_sets_splits(cfg: C.Config):
    """Every page pair of ``pages.root`` for training; ``pages.val_pages`` of them (chosen as the
    benchmark chooses its validation pages) also scored as a monitor, not held out; no test pages.
    Sets ``pages.train_sets`` / ``test_sets`` on ``cfg`` to what the run used, so that the run's
    config and the checkpoint say so."""
    from ..data.pages import PageSplits, find_pairs, resolve_root, validation_pages

    root = resolve_root(cfg.pages.root)
    pairs = find_pairs(root, cfg.pages.layout)
    sets = sorted({p.set for p in pairs})
    cfg.pages.train_sets, cfg.pages.test_sets = sets, []
    if cfg.pages.val_pages >= len(pairs):
        raise C.ConfigError(f"'pages.val_pages' = {cfg.pages.val_pages} but {root} holds {len(pairs)} page "
                            "pairs; lower it")
    val = validation_pages({s: [p for p in pairs if p.set == s] for s in sets}, sets, cfg.pages.val_pages)
    for p in pairs:
        p.load()
    return PageSplits(root, pairs, val, [])


def train_page_model(cfg: C.Config, run: R.Run) -> dict:
    """Train on every page pair, then install ``last.pt`` at ``restore.page_model``."""
    from .pages import PageTrainer, apply_page_budget

    apply_page_budget(cfg)
    splits = all_sets_splits(cfg)
    C.save(cfg, run.path("config.yaml"))  # the sets the model trained on, not the benchmark's defaults
    log.info("page model: training on all %d page pairs of %s (%s); validation pages %s are training pages "
             "too (a monitor, not a test)", len(splits.train), splits.root, ", ".join(cfg.pages.train_sets),
             ", ".join(p.name for p in splits.val))
    t0 = time.time()
    result = PageTrainer(cfg, run, splits).fit()
    seconds = time.time() - t0
    dest = page_model_path(cfg)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    shutil.copyfile(result["last"], tmp)
    tmp.replace(dest)  # a restore started meanwhile reads the old model or the new one, never half of one
    record = {
        "model": str(dest), "checkpoint": C.project_relative(result["last"]), "run_dir": C.project_relative(run.dir),
        "mlflow_run_id": result.get("mlflow_run_id"), "git_commit": run.git.get("commit"),
        "git_dirty": run.git.get("dirty"), "profile": cfg.profile, "steps": result["steps"],
        "train_seconds": round(seconds, 1), "pages_root": str(splits.root), "sets": list(cfg.pages.train_sets),
        "train_pages": [p.name for p in splits.train],
        "monitor_pages": [p.name for p in splits.val],
        "monitor_val": result.get("val", {}),
        "note": "monitor_val is measured on pages the model trained on; the DIBCO benchmark (notebook 05) "
                "measures a model on unseen years",
        "date": _dt.datetime.now().isoformat(timespec="seconds"),
    }
    write_json_atomic(dest.with_suffix(".json"), record, sort_keys=True, default=str)
    run.write_json("page_model.json", record)
    log.info("page model: %d steps in %.0f s; installed at %s (from %s); `docrestore restore PAGE --out DIR` "
             "now uses it", result["steps"], seconds, dest, result["last"])
    return record
