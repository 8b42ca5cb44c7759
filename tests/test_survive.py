"""Full runs survive: SIGTERM writes a consistent checkpoint, the same command continues the run
in its folder with the losses of an uninterrupted run; periodic checkpoints; detached runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from docrestore import config as C
from docrestore.checkpoint import load_checkpoint
from docrestore.training import survive

DRIVER = Path(__file__).with_name("survive_driver.py")
TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def train_args(runs_dir, smoke_dataset, recognizer, *extra):
    return ["profile=smoke", "device=cpu", f"runs_dir={runs_dir}", f"data.root={smoke_dataset.parent}",
            "tracking.enabled=false", f"recognizer.checkpoint={recognizer}", "train.scenario=S1",
            "train.ctc.weight=1", "train.max_steps=6", "train.val_every=2", "train.batch_size=4", *extra]


def child(args, **kw):
    env = {k: v for k, v in os.environ.items() if k not in TORCHRUN_ENV}
    env.update(DOCRESTORE_THREADS="1", OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, str(DRIVER), *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


@pytest.mark.e2e
def test_sigterm_then_the_same_command_continues_exactly(tmp_path, smoke_dataset, smoke_recognizer):
    from docrestore import cli

    # The uninterrupted reference, in this process.
    ref_runs = tmp_path / "ref"
    assert cli.main(["train", *train_args(ref_runs, smoke_dataset, smoke_recognizer)]) == 0
    (ref,) = [p for p in ref_runs.iterdir() if p.is_dir()]

    runs = tmp_path / "runs"
    args = train_args(runs, smoke_dataset, smoke_recognizer)
    marker = tmp_path / "at3"
    proc = child(["--pause-after", "3", str(marker), *args])
    deadline = time.monotonic() + 240
    while not marker.exists():
        assert proc.poll() is None, proc.communicate()[1][-4000:]
        assert time.monotonic() < deadline, "the child never reached step 3"
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    marker.with_name(marker.name + ".sent").touch()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err[-4000:]
    assert "rerun the same command to continue" in err
    (run,) = [p for p in runs.iterdir() if p.is_dir()]
    assert survive.read_status(run)["state"] == "interrupted"
    assert load_checkpoint(run / "last.pt")["step"] == 3  # written at the signal, not at step 2's validation

    # The same command again: same folder, steps 4-6, the reference's losses and weights.
    proc = child(args)
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err[-4000:]
    assert [p for p in runs.iterdir() if p.is_dir()] == [run]
    assert survive.read_status(run)["state"] == "done"
    assert "continuing the interrupted run" in (run / "run.log").read_text()
    got, want = load_checkpoint(run / "last.pt"), load_checkpoint(ref / "last.pt")
    assert got["step"] == want["step"] == 6
    assert got["history"] == want["history"]  # every recorded loss, steps 1-6
    for name, sd in want["models"].items():
        for key, value in sd.items():
            assert torch.equal(got["models"][name][key], value), (name, key)


@pytest.mark.usefixtures("plain_sample_grids")
def test_periodic_checkpoint_and_status(tmp_path, smoke_dataset, smoke_recognizer, monkeypatch):
    """checkpoint_minutes writes last.pt between validations; a finished run is not continued."""
    from docrestore import cli
    from docrestore.training import gan

    clock = iter(range(0, 10_000, 61))  # every step looks a minute later
    monkeypatch.setattr(survive, "clock", lambda: float(next(clock)))
    saved = []
    real_save = gan.GANTrainer.save
    monkeypatch.setattr(gan.GANTrainer, "save", lambda self, path: (saved.append((self.step, Path(path).name)),
                                                                     real_save(self, path)))
    args = train_args(tmp_path / "runs", smoke_dataset, smoke_recognizer, "train.val_every=100",
                      "train.max_steps=3", "train.checkpoint_minutes=1")
    assert cli.main(["train", *args]) == 0
    assert (1, "last.pt") in saved and (2, "last.pt") in saved  # by the clock, before any validation
    (run,) = list((tmp_path / "runs").iterdir())
    assert survive.read_status(run)["state"] == "done"
    cfg = C.load_config(overrides=args)
    assert survive.find_interrupted(cfg) is None


def test_find_interrupted_takes_only_the_same_config(tmp_path, smoke_cfg):
    run = Path(smoke_cfg.runs_dir) / "20260101-000000-train-smoke"
    run.mkdir(parents=True)
    C.save(smoke_cfg, run / "config.yaml")
    (run / "last.pt").write_bytes(b"x")
    survive.write_status(run, "interrupted", step=3)
    assert survive.find_interrupted(smoke_cfg) == run
    other = C.load_config(profile="smoke", overrides=[f"runs_dir={smoke_cfg.runs_dir}", f"data.root={smoke_cfg.data.root}",
                                                      "tracking.enabled=false", "train.lr_g=0.001"])
    assert survive.find_interrupted(other) is None
    survive.write_status(run, "running", step=3)  # this very process: alive, so not taken over
    assert survive.find_interrupted(smoke_cfg) is None
    (run / STATUS_FILE).write_text(json.dumps({"state": "running", "pid": 2**22 + 12345}))  # a dead process
    assert survive.find_interrupted(smoke_cfg) == run
    survive.write_status(run, "done", step=6)
    assert survive.find_interrupted(smoke_cfg) is None


STATUS_FILE = survive.STATUS


CLAIMER = """
import sys, time
from docrestore import config as C
from docrestore.training import survive
cfg = C.load_config(profile="smoke", overrides=sys.argv[1:])
print(survive.find_interrupted(cfg), flush=True)
sys.stdin.read()  # holds the run until the test closes stdin
"""


def test_an_interrupted_run_is_claimed_by_one_process_only(tmp_path, smoke_cfg):
    """Two `train` commands with one config both continued the same interrupted run: the folder
    is now claimed (a lock held while the process lives) before any work."""
    run = Path(smoke_cfg.runs_dir) / "20260101-000000-train-smoke"
    run.mkdir(parents=True)
    C.save(smoke_cfg, run / "config.yaml")
    (run / "last.pt").write_bytes(b"x")
    survive.write_status(run, "interrupted", step=3)
    args = [f"runs_dir={smoke_cfg.runs_dir}", f"data.root={smoke_cfg.data.root}", "tracking.enabled=false"]
    first = subprocess.Popen([sys.executable, "-c", CLAIMER, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True)
    try:
        assert first.stdout.readline().strip() == str(run)
        assert survive.find_interrupted(smoke_cfg) is None  # the other process holds it
    finally:
        first.stdin.close()
        first.wait(timeout=60)
    assert survive.find_interrupted(smoke_cfg) == run  # its process ended: free again


def test_a_new_run_folder_is_its_own_even_in_the_same_second(smoke_cfg):
    from docrestore import runs as R

    a, b = R.start_run(smoke_cfg, "train"), R.start_run(smoke_cfg, "train")
    assert a.dir != b.dir and a.dir.is_dir() and b.dir.is_dir()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stop_signals_only_raise_a_flag(sig):
    with survive.StopSignals() as s:
        os.kill(os.getpid(), sig)
        time.sleep(0.01)
        assert s.received == sig
    assert signal.getsignal(sig) is not s._handle


def wait_for_exit(name, state_dir, timeout=60):
    from docrestore import background

    deadline = time.monotonic() + timeout
    while "exit_code" not in background.read_state(name, state_dir):
        assert time.monotonic() < deadline, background.status_text(name, state_dir)
        time.sleep(0.05)
    return background.read_state(name, state_dir)


@pytest.mark.e2e
def test_background_job_log_status_and_stop(tmp_path):
    from docrestore import background

    state = tmp_path / "bg"
    assert "no background job" in background.status_text("job", state)
    background.launch("job", [sys.executable, "-c", "print('hello from the job')"], state, echo=lambda m: None)
    assert wait_for_exit("job", state)["exit_code"] == 0
    text = background.status_text("job", state)
    assert "exit code 0" in text and "hello from the job" in text
    # a running job refuses a second start; `kill <pid>` reaches the command and its code is recorded
    proc = background.launch("job", [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(60)"],
                             state, echo=lambda m: None)
    deadline = time.monotonic() + 60
    while "up" not in (state / "job.log").read_text().splitlines():  # the child's line, not the header
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert "running (pid" in background.status_text("job", state)
    with pytest.raises(RuntimeError, match="still running"):
        background.launch("job", [sys.executable, "-c", "pass"], state, echo=lambda m: None)
    os.kill(proc.pid, signal.SIGTERM)
    assert wait_for_exit("job", state)["exit_code"] == -signal.SIGTERM
    proc.wait(timeout=10)


def test_a_fast_jobs_exit_code_survives_a_slow_launcher(tmp_path, monkeypatch):
    """The launcher wrote its state after starting the job: a job done by then lost its exit code."""
    from docrestore import background

    real = background.write_json_atomic

    def slow(path, obj):
        time.sleep(1.5)  # the job (exit 3) ends meanwhile
        real(path, obj)
    monkeypatch.setattr(background, "write_json_atomic", slow)
    proc = background.launch("fast", [sys.executable, "-c", "raise SystemExit(3)"], tmp_path, echo=lambda m: None)
    proc.wait(timeout=60)
    assert background.read_state("fast", tmp_path)["exit_code"] == 3


def test_two_launches_at_once_start_one_job(tmp_path, monkeypatch):
    """The launcher checked, then started, with a gap: two launches could both start."""
    import threading

    from docrestore import background

    real = background.write_json_atomic

    def slow(path, obj):
        time.sleep(1.0)  # the gap between the start and the state that says so
        real(path, obj)
    monkeypatch.setattr(background, "write_json_atomic", slow)
    cmd = [sys.executable, "-c", "import time; time.sleep(30)"]
    started, refused = [], []

    def go():
        try:
            started.append(background.launch("once", cmd, tmp_path, echo=lambda m: None))
        except RuntimeError as exc:
            refused.append(exc)
    threads = [threading.Thread(target=go) for _ in range(2)]
    for t in threads:
        t.start()
        time.sleep(0.2)
    for t in threads:
        t.join()
    try:
        assert len(started) == 1 and len(refused) == 1 and "still running" in str(refused[0])
    finally:
        for proc in started:
            os.kill(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)


def test_train_status_without_runs(tmp_path, capsys, monkeypatch):
    from docrestore import background, cli

    monkeypatch.setattr(background, "STATE_DIR", str(tmp_path / "bg"))
    assert cli.main(["train", "--status", "profile=smoke", f"runs_dir={tmp_path}/runs"]) == 0
    out = capsys.readouterr().out
    assert "train: no background job" in out and "no train run with a status" in out
