"""Shared fixtures: a smoke config in a temporary folder and one synthesised smoke dataset.

Keep these stable: every part's tests build on them. The smoke profile writes with DejaVu Sans /
DejaVu Serif (shipped with matplotlib), so no test needs the Debian handwriting fonts.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# One CPU thread in every process the tests start too (notebook kernels, training and scheduler
# subprocesses): they inherit this environment, and two of them at once on a 2-core machine
# with a thread per core each burn twice the CPU time (OpenMP threads spin while they wait).
# docrestore.device reads DOCRESTORE_THREADS; an explicit setting from outside wins.
os.environ.setdefault("DOCRESTORE_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

from docrestore import config as C  # noqa: E402


@pytest.fixture
def smoke_cfg(tmp_path) -> C.Config:
    """The smoke profile with runs and data under ``tmp_path`` and MLflow off."""
    return C.load_config(profile="smoke", overrides=[f"runs_dir={tmp_path}/runs", f"data.root={tmp_path}/data",
                                                     "tracking.enabled=false"])


def shared_dir(tmp_path_factory, name: str) -> Path:
    """A folder shared by every worker of this test run: under pytest-xdist each worker's base
    temp is ``<run>/popen-gwN``, so the run's folder is its parent; without xdist, the base temp.
    Session fixtures built here are made once per run, not once per worker: the library's own
    file locks (synthesis, the recognizer cache) make the other workers wait for the first and
    then reuse what it made."""
    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    path = root / name
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def smoke_dataset(tmp_path_factory) -> Path:
    """The manifest path of one smoke dataset, synthesised once per test run (all workers).

    Made with the plain smoke profile (seed 0, no data overrides), so a test config of the smoke
    profile with ``data.root=<smoke_dataset.parent>`` finds it complete and reuses it."""
    from docrestore.data.synth import ensure_dataset

    tmp = shared_dir(tmp_path_factory, "smoke-dataset")
    cfg = C.load_config(profile="smoke", overrides=[f"runs_dir={tmp}/runs", f"data.root={tmp}/data",
                                                    "tracking.enabled=false"])
    return ensure_dataset(cfg)


@pytest.fixture(scope="session")
def smoke_recognizer(smoke_dataset, tmp_path_factory) -> Path:
    """A pretrained smoke recognizer (the `loss` role), made once per test run (all workers)."""
    from docrestore.training.recognizer import ensure_recognizer

    runs = shared_dir(tmp_path_factory, "rec-runs")
    cfg = C.load_config(profile="smoke", overrides=[f"runs_dir={runs}", f"data.root={smoke_dataset.parent}",
                                                   "tracking.enabled=false"])
    return ensure_recognizer(cfg, "loss")


@pytest.fixture(scope="session")
def smoke_reader(smoke_dataset, tmp_path_factory) -> Path:
    """The smoke profile's held-out reader (the `reader` role), made once per test run (all
    workers); give it as ``eval.reader=`` to a test that evaluates but does not test the reader."""
    from docrestore.training.recognizer import ensure_recognizer

    runs = shared_dir(tmp_path_factory, "rec-runs")
    cfg = C.load_config(profile="smoke", overrides=[f"runs_dir={runs}", f"data.root={smoke_dataset.parent}",
                                                   "tracking.enabled=false"])
    return ensure_recognizer(cfg, "reader")


@pytest.fixture
def plain_sample_grids(monkeypatch):
    """Validation writes each sample grid as a 1 x 1 PNG instead of drawing it with matplotlib
    (about 0.6 s of CPU a validation, most of a few-step smoke run). For tests of training that
    do not look at the grids; tests/test_training.py::test_run_writes_checkpoints_samples_and_history
    checks the real ones."""
    from PIL import Image

    from docrestore.training import common

    def save_grid(rows, texts, path, title=""):
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("L", (1, 1), 255).save(path)
        return path

    monkeypatch.setattr(common, "save_grid", save_grid)


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """Tests run two to a 2-core machine (pytest -n 2): one torch thread each is faster than two
    threads fighting for a core (small convolutions were 5x slower oversubscribed)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def project_kernel() -> str:
    """The Jupyter kernel the notebooks declare, installed into this environment when missing
    (`make setup` installs it; a bare `pytest` after `uv sync` may not have)."""
    from jupyter_client.kernelspec import KernelSpecManager

    from docrestore import notebook as NB

    if NB.KERNEL_NAME not in KernelSpecManager().find_kernel_specs():
        NB.install_kernel()
    return NB.KERNEL_NAME


# Files whose tests share an expensive module-scoped fixture (every figure drawn, the original
# fingerprints, the whole paper ledger): one worker runs each of them whole, so the fixture is
# made once per run. Every other test goes to whichever worker is free: under `--dist loadfile`
# the three notebook tests, or the four scheduler runs, waited for each other on one worker.
ONE_WORKER_FILES = ("tests/test_figures.py", "tests/test_fingerprint.py", "tests/test_paper_pipeline.py")


@pytest.hookimpl(optionalhook=True, tryfirst=True)
def pytest_xdist_make_scheduler(config, log):
    """`--dist loadgroup` (the Makefile's): test by test, but ONE_WORKER_FILES file by file.

    xdist's own loadgroup reads `xdist_group` marks from suffixed node ids, which pytest 9 no
    longer lets a plugin change (pytest-xdist issue #1386): the marks were silently ignored."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class FileGroups(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return path if path in ONE_WORKER_FILES else nodeid

    return FileGroups(config, log)

