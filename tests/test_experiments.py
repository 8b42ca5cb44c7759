"""Experiment plans: expansion, strict checks, the status table, and real papermill runs.

The notebook runs use tests/assets/notebooks/smoke_job.ipynb (a few seconds each, plus the
MLflow import when `track` is true). Default run: 7 notebook executions; the real kill and the
four-at-once MLflow test are marked slow.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from docrestore import config as C
from docrestore import processes as PR
from docrestore.scheduler import plan as P
from docrestore.scheduler import runner as R
from docrestore.scheduler import status as S

NOTEBOOK = Path(__file__).parent / "assets" / "notebooks" / "smoke_job.ipynb"


def write_plan(tmp_path: Path, name: str = "smoke", seeds=(0, 1), parameters=None, grid=None,
               cpu_workers: int = 2, **extra) -> Path:
    data = {"name": name, "profile": "smoke", "seeds": list(seeds), "cpu_workers": cpu_workers,
            "runs_dir": str(tmp_path / "runs"), "tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}",
            "notebooks": [{"notebook": str(NOTEBOOK), "name": "smoke",
                           "parameters": parameters or {}, "grid": grid or {}}]}
    data.update(extra)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def cli_args(plan: Path, **kw) -> argparse.Namespace:
    base = dict(plan=str(plan), status=False, dry_run=False, force=False, foreground=False, workers=None)
    base.update(kw)
    return argparse.Namespace(**base)


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def mlflow_runs(uri: str, experiment: str = "test-exp"):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"no MLflow experiment {experiment!r} in {uri}"
    return client.search_runs([exp.experiment_id], max_results=100)


def sqlite_ok(db: Path) -> None:
    con = sqlite3.connect(db)
    try:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        con.close()


def max_overlap(statuses: list[dict]) -> int:
    """The most jobs whose [started, finished) intervals overlap at once."""
    import datetime as dt

    spans = [(dt.datetime.fromisoformat(s["started"]), dt.datetime.fromisoformat(s["finished"])) for s in statuses]
    return max(sum(1 for a, b in spans if a <= t < b) for t, _ in spans)


# ------------------------------------------------------------------------ plan and expansion
def test_expand_grid_seeds_and_ids(tmp_path):
    plan = P.load_plan(write_plan(tmp_path, seeds=(0, 1), parameters={"track": False},
                                  grid={"sleep": [0.0, 0.5], "fail": [False]}))
    jobs = P.expand(plan)
    assert [j.id for j in jobs] == [
        "smoke-sleep=0.0-fail=False-seed0", "smoke-sleep=0.5-fail=False-seed0",
        "smoke-sleep=0.0-fail=False-seed1", "smoke-sleep=0.5-fail=False-seed1"]
    assert jobs[1].parameters == {"profile": "smoke", "track": False, "sleep": 0.5, "fail": False, "seed": 0}
    assert [j.id for j in P.expand(plan)] == [j.id for j in jobs]  # deterministic
    assert len({j.fingerprint for j in jobs}) == 4
    assert plan.job_dir(jobs[0]) == tmp_path / "runs" / "experiments" / "smoke" / jobs[0].id
    assert P.notebook_parameters(NOTEBOOK) == {"seed": 0, "sleep": 0.0, "fail": False, "track": True,
                                               "profile": "smoke"}


@pytest.mark.parametrize("change, message", [
    ({"seed": [0]}, "unknown key 'seed' in plan .* Did you mean 'seeds'"),
    ({"profile": "tiny"}, "'profile' must be one of"),
    ({"jobs_per_gpu": 0}, "'jobs_per_gpu' must be a whole number >= 1"),
    ({"name": "a b"}, "'name' must be a short name"),
    ({"notebooks": [{"notebook": "nope/missing.ipynb"}]}, "notebook nope/missing.ipynb not found"),
    ({"notebooks": [{"notebook": str(NOTEBOOK), "gird": {"seed": [1]}}]}, "unknown key 'gird' .* Did you mean 'grid'"),
    ({"notebooks": [{"notebook": str(NOTEBOOK), "parameters": {"seed": 3}}]}, "'seed' is set in parameters/grid and by 'seeds'"),
    ({"notebooks": [{"notebook": str(NOTEBOOK), "grid": {"sleep": 1.0}}]}, r"grid.sleep must be a non-empty list"),
])
def test_plan_schema_errors_name_the_key(tmp_path, change, message):
    path = write_plan(tmp_path)
    data = yaml.safe_load(path.read_text())
    data.update(change)
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(P.PlanError, match=message):
        P.load_plan(path)


def test_misspelt_parameter_fails_the_dry_run_naming_it(tmp_path, capsys):
    path = write_plan(tmp_path, parameters={"sleeep": 1.0}, grid={"fail": [False, True]})
    assert R.main_cli(cli_args(path, dry_run=True)) == 2
    err = capsys.readouterr().err
    assert "parameter 'sleeep' is not in the parameters cell of smoke_job.ipynb" in err
    assert "Did you mean 'sleep'?" in err
    assert "seed, sleep, fail, track, profile" in err
    assert err.count("sleeep") == 1, "a misspelt fixed parameter is reported once, not once per job"
    assert not (tmp_path / "runs").exists(), "a failed check must start nothing"
    # a misspelt grid key and a value of the wrong kind are caught the same way
    path = write_plan(tmp_path, grid={"fial": [True]})
    assert R.main_cli(cli_args(path, dry_run=True)) == 2
    assert "'fial'" in capsys.readouterr().err
    path = write_plan(tmp_path, parameters={"sleep": "long"})
    assert R.main_cli(cli_args(path, dry_run=True)) == 2
    assert "parameter 'sleep' = 'long' is text, but smoke_job.ipynb declares it as a number" in capsys.readouterr().err


def test_dry_run_lists_jobs_parameters_and_devices(tmp_path, monkeypatch):
    plan = P.load_plan(write_plan(tmp_path, seeds=(0, 1, 2), parameters={"track": False}))
    jobs = R.prepare_jobs(plan)
    text = R.dry_run_text(plan, jobs, gpus=0)
    assert "no GPU visible: running 2 job(s) at a time on the CPU" in text
    assert "smoke-seed2  [run: new]" in text
    assert "parameters : profile='smoke', track=False, seed=2" in text
    assert text.count("device     : cpu") == 2 and "the next free slot (cpu)" in text
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    text = R.dry_run_text(plan, jobs, gpus=2)
    assert "device     : GPU 0" in text and "device     : GPU 1" in text
    assert "the next free slot (GPU 0, GPU 1)" in text


def test_slots_and_job_environment(tmp_path, monkeypatch):
    plan = P.load_plan(write_plan(tmp_path, jobs_per_gpu=2))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    slots, text = R.make_slots(plan, gpus=2)
    assert [s.label for s in slots] == ["GPU 3", "GPU 5", "GPU 3", "GPU 5"]
    assert "4 job(s) at a time, 2 per GPU" in text
    assert [s.label for s in R.make_slots(plan, gpus=2, workers=3)[0]] == ["GPU 3", "GPU 5", "GPU 3"]
    job = P.expand(plan)[0]
    env = R.job_env(plan, job, slots[1], len(slots))
    assert env["CUDA_VISIBLE_DEVICES"] == "5"
    assert env["DOCRESTORE_PLAN"] == "smoke" and env["DOCRESTORE_JOB"] == job.id
    assert env["DOCRESTORE_JOB_DIR"] == str(plan.job_dir(job))
    assert env["MLFLOW_TRACKING_URI"] == f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("DOCRESTORE_THREADS", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    cpu_slots, text = R.make_slots(plan, gpus=0)
    assert len(cpu_slots) == 2 and text == "no GPU visible: running 2 job(s) at a time on the CPU"
    env = R.job_env(plan, job, cpu_slots[0], 2)
    assert "CUDA_VISIBLE_DEVICES" not in env
    assert env["DOCRESTORE_THREADS"] == env["OMP_NUM_THREADS"] == "8", "two jobs share 16 cores"


def test_decide_skips_done_and_reruns_the_rest(tmp_path):
    plan = P.load_plan(write_plan(tmp_path, seeds=(0, 1, 2, 3, 4)))
    jobs = P.expand(plan)
    S.update_status(plan.job_dir(jobs[0]), state=S.DONE, fingerprint=jobs[0].fingerprint)
    S.update_status(plan.job_dir(jobs[1]), state=S.DONE, fingerprint="other-settings")
    S.update_status(plan.job_dir(jobs[2]), state=S.FAILED, fingerprint=jobs[2].fingerprint)
    S.update_status(plan.job_dir(jobs[3]), state=S.RUNNING, pid=os.getpid(),
                    pid_start=PR.process_start_id(os.getpid()))
    got = {d.job.id: (d.run, d.reason) for d in R.decide(plan, jobs)}
    assert got[jobs[0].id] == (False, "done (skipped; --force reruns it)")
    assert got[jobs[1].id] == (True, "rerun: its parameters changed since it ran")
    assert got[jobs[2].id] == (True, "rerun: failed last time")
    assert got[jobs[3].id][0] is False and "still running" in got[jobs[3].id][1]
    assert got[jobs[4].id] == (True, "new")
    forced = {d.job.id: d.run for d in R.decide(plan, jobs, force=True)}
    assert forced == {jobs[0].id: True, jobs[1].id: True, jobs[2].id: True, jobs[3].id: False, jobs[4].id: True}


# -------------------------------------------------------------------------- status table
def test_status_table_shows_each_state(tmp_path):
    plan = P.load_plan(write_plan(tmp_path, seeds=(0, 1, 2, 3, 4, 5)))
    jobs = P.expand(plan)
    d = [plan.job_dir(j) for j in jobs]
    fp = [j.fingerprint for j in jobs]
    S.update_status(d[0], state=S.QUEUED, fingerprint=fp[0])
    S.update_status(d[1], state=S.RUNNING, pid=os.getpid(), pid_start=PR.process_start_id(os.getpid()),
                    started=S.now_iso(), cells=8, fingerprint=fp[1], device="GPU 1")
    (d[1] / "job.log").write_text("Executing Cell 2---------\nold line\nExecuting Cell 5---------\n"
                                  "epoch 1\r 40%|####      | 4/10 [00:02<00:03]\r 50%|#####     | 5/10 [00:03<00:02]\n")
    S.update_status(d[2], state=S.DONE, started="2025-01-01T10:00:00", finished="2025-01-01T11:02:03",
                    headline={"val/cer": 0.123456, "psnr": 21.5}, fingerprint=fp[2], device="GPU 0")
    S.update_status(d[3], state=S.FAILED, error="ValueError: asked to fail (seed=3) (notebook cell In [5])",
                    fingerprint=fp[3])
    S.update_status(d[4], state=S.RUNNING, pid=dead_pid(), fingerprint=fp[4])
    text = R.status_text(plan)
    rows = {line.split()[0]: line for line in text.splitlines() if line.startswith("smoke-")}
    assert rows[jobs[0].id].split()[1] == "queued"
    assert rows[jobs[1].id].split()[1] == "running"
    assert "GPU 1" in rows[jobs[1].id] and "cell 5/8: 50%|#####     | 5/10 [00:03<00:02]" in rows[jobs[1].id]
    assert rows[jobs[2].id].split()[1] == "done" and "1:02:03" in rows[jobs[2].id]
    assert "val/cer=0.1235 psnr=21.5" in rows[jobs[2].id]
    assert rows[jobs[3].id].split()[1] == "failed" and "ValueError: asked to fail (seed=3)" in rows[jobs[3].id]
    assert rows[jobs[4].id].split()[1] == "interrupted" and "is gone without recording a result" in rows[jobs[4].id]
    assert rows[jobs[5].id].split()[1:3] == ["not", "started"]
    assert "6 job(s): 1 done, 1 running, 1 queued, 1 failed, 1 interrupted, 1 not started" in text
    assert "scheduler: never started" in text
    assert "4 job(s) not done: `docrestore experiments" in text


def test_record_result_outside_a_plan_does_nothing(tmp_path, monkeypatch):
    monkeypatch.delenv(S.JOB_DIR_ENV, raising=False)
    assert S.record_result({"cer": 0.1}) is None
    monkeypatch.setenv(S.JOB_DIR_ENV, str(tmp_path))
    assert S.record_result({"cer": 0.1}, note="x") == tmp_path / "result.json"
    assert S.read_headline(tmp_path) == ({"cer": 0.1}, "")
    with pytest.raises(TypeError, match="headline must be a dict"):
        S.record_result(0.1)  # type: ignore[arg-type]


def test_two_launches_of_one_plan_are_refused_and_plans_do_not_share_folders(tmp_path, capsys):
    a = P.load_plan(write_plan(tmp_path, name="plan_a"))
    b = P.load_plan(write_plan(tmp_path, name="plan_b"))
    assert {a.job_dir(j) for j in P.expand(a)}.isdisjoint({b.job_dir(j) for j in P.expand(b)})
    with R.plan_lock(a):
        with pytest.raises(R.PlanBusy, match="plan 'plan_a' is already running"):
            R.run_plan(a, gpus=0, echo=lambda m: None)
        assert R.main_cli(cli_args(a.path, foreground=True)) == 1
        assert "already running" in capsys.readouterr().err
        with R.plan_lock(b):  # another plan has its own lock
            pass
    assert not any((a.state_dir / j.id).exists() for j in P.expand(a)), "a refused launch starts no job"


# ------------------------------------------------------------------------------ real runs
@pytest.mark.e2e
def test_four_jobs_two_workers_on_cpu_all_done_and_in_mlflow(tmp_path, capfd):
    path = write_plan(tmp_path, name="four", seeds=(0, 1, 2, 3), parameters={"track": True}, cpu_workers=2)
    plan = P.load_plan(path)
    lines: list[str] = []
    assert R.run_plan(plan, gpus=0, echo=lines.append) == 0
    assert any("no GPU visible: running 2 job(s) at a time on the CPU" in m for m in lines)
    jobs = P.expand(plan)
    statuses = []
    for job in jobs:
        jd = plan.job_dir(job)
        st = S.read_status(jd)
        statuses.append(st)
        assert st["state"] == S.DONE, (job.id, st, (jd / "job.log").read_text()[-2000:])
        assert st["device"] == "cpu" and st["attempt"] == 1
        assert st["headline"] == {"test/value": job.parameters["seed"] * 0.5}
        assert (jd / "notebook.ipynb").is_file() and "MLflow run:" in (jd / "job.log").read_text()
        result = json.loads((jd / "result.json").read_text())
        assert Path(result["python"]).resolve() == Path(sys.executable).resolve(), \
            "the papermill kernel must run the project's virtual environment"
    assert max_overlap(statuses) <= 2
    assert "MLflow run:" not in capfd.readouterr().out, "job output goes to job.log, not the console"
    runs = mlflow_runs(plan.tracking_uri)
    assert len(runs) == 4
    assert {r.data.tags["job"] for r in runs} == {j.id for j in jobs}
    assert {r.data.tags["plan"] for r in runs} == {"four"}
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert sorted(r.data.metrics["test/value"] for r in runs) == [0.0, 0.5, 1.0, 1.5]
    sqlite_ok(tmp_path / "mlflow.db")
    assert "4 job(s): 4 done" in R.status_text(plan)


@pytest.mark.e2e
def test_a_failed_job_does_not_stop_the_others(tmp_path):
    plan = P.load_plan(write_plan(tmp_path, name="failing", seeds=(0,), parameters={"track": False},
                                  grid={"fail": [True, False]}))
    lines: list[str] = []
    assert R.run_plan(plan, gpus=0, echo=lines.append) == 1
    bad, good = P.expand(plan)
    st = S.read_status(plan.job_dir(bad))
    assert st["state"] == S.FAILED
    assert st["error"] == "ValueError: asked to fail (seed=0) (notebook cell In [6])"
    assert (plan.job_dir(bad) / "notebook.ipynb").is_file(), "the failed notebook is kept for reading"
    assert S.read_status(plan.job_dir(good))["state"] == S.DONE
    assert any(m.split()[1:3] == ["failed", bad.id] for m in lines)
    table = R.status_text(plan)
    assert "ValueError: asked to fail (seed=0)" in table and "1 done" in table and "1 failed" in table


@pytest.mark.e2e
def test_an_interrupted_job_is_rerun_and_done_jobs_are_skipped(tmp_path):
    plan = P.load_plan(write_plan(tmp_path, name="resume", seeds=(0, 1), parameters={"track": False}))
    done, killed = P.expand(plan)
    # the state a kill leaves: one job done, the other 'running' under a process that is gone
    S.update_status(plan.job_dir(done), state=S.DONE, fingerprint=done.fingerprint, attempt=1,
                    headline={"test/value": 0.0}, started="2025-01-01T10:00:00", finished="2025-01-01T10:00:09")
    (plan.job_dir(done) / "notebook.ipynb").write_text("untouched")
    S.update_status(plan.job_dir(killed), state=S.RUNNING, pid=dead_pid(), fingerprint=killed.fingerprint, attempt=1)
    assert "interrupted" in R.status_text(plan)
    lines: list[str] = []
    assert R.run_plan(plan, gpus=0, echo=lines.append) == 0
    assert (plan.job_dir(done) / "notebook.ipynb").read_text() == "untouched"
    assert S.read_status(plan.job_dir(done))["attempt"] == 1
    st = S.read_status(plan.job_dir(killed))
    assert st["state"] == S.DONE and st["attempt"] == 2 and st["headline"] == {"test/value": 0.5}
    assert any(f"skip   {done.id}: done" in m for m in lines)
    assert sum(" start " in f" {m} " for m in lines) == 1


@pytest.mark.e2e
def test_background_launch_returns_at_once_and_the_job_goes_on(tmp_path):
    plan = P.load_plan(write_plan(tmp_path, name="detached", seeds=(7,), parameters={"track": False}))
    lines: list[str] = []
    proc = R.launch_background(plan, gpus=0, echo=lines.append)
    try:
        assert proc.poll() is None, "the launcher must not wait for the scheduler"
        assert os.getsid(proc.pid) == proc.pid, "the scheduler runs in its own session (survives the terminal)"
        assert any("tail -f" in m for m in lines) and any("--status" in m for m in lines)
        assert proc.wait(timeout=240) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    job = P.expand(plan)[0]
    assert S.read_status(plan.job_dir(job))["state"] == S.DONE
    log = (plan.state_dir / "scheduler.log").read_text()
    assert "no GPU visible: running 2 job(s) at a time on the CPU" in log and f"done   {job.id}" in log
    assert "scheduler: not running (last one finished at" in R.status_text(plan)


# ----------------------------------------------------------------------------------- slow
@pytest.mark.slow
def test_four_concurrent_jobs_share_one_sqlite_store(tmp_path):
    plan = P.load_plan(write_plan(tmp_path, name="concurrent", seeds=(0, 1, 2, 3),
                                  parameters={"track": True}, cpu_workers=4))
    assert R.run_plan(plan, gpus=0, echo=lambda m: None) == 0
    statuses = [S.read_status(plan.job_dir(j)) for j in P.expand(plan)]
    assert all(s["state"] == S.DONE for s in statuses)
    assert max_overlap(statuses) >= 3, "the jobs should have run (mostly) at the same time"
    runs = mlflow_runs(plan.tracking_uri)
    assert sorted(r.data.tags["job"] for r in runs) == sorted(j.id for j in P.expand(plan))
    assert all(len(r.data.params) > 50 for r in runs), "every run keeps all its parameters"
    sqlite_ok(tmp_path / "mlflow.db")


@pytest.mark.slow
def test_a_job_killed_mid_run_is_rerun_and_the_others_are_not(tmp_path):
    plan = P.load_plan(write_plan(tmp_path, name="kill", seeds=(0,), parameters={"track": False},
                                  grid={"sleep": [0.0, 8.0]}))
    quick, slow = P.expand(plan)
    sched = subprocess.Popen([sys.executable, "-m", "docrestore.scheduler.runner", "--run", str(plan.path),
                              "--gpus", "0"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
    try:
        log = plan.job_dir(slow) / "job.log"
        assert S.wait_for(lambda: log.exists() and "sleeping 8.0 s" in log.read_text(), timeout=180)
        pid = S.read_status(plan.job_dir(slow))["pid"]
        kernels = R._children(pid)
        assert kernels, "the job process should have started a kernel"
        os.killpg(pid, signal.SIGKILL)  # the job process and its group, as `kill -9 -PID` would
        assert sched.wait(timeout=180) == 1
    finally:
        if sched.poll() is None:
            os.killpg(sched.pid, signal.SIGTERM)
    st = S.read_status(plan.job_dir(slow))
    assert st["state"] == S.INTERRUPTED and "killed by signal 9" in st["error"]
    assert S.read_status(plan.job_dir(quick))["state"] == S.DONE
    assert S.wait_for(lambda: not any(PR.pid_alive(k) for k in kernels), timeout=30), \
        "the orphaned kernel must exit once its job process is gone"
    quick_mtime = (plan.job_dir(quick) / "notebook.ipynb").stat().st_mtime
    lines: list[str] = []
    assert R.run_plan(plan, gpus=0, echo=lines.append) == 0
    assert (plan.job_dir(quick) / "notebook.ipynb").stat().st_mtime == quick_mtime
    st = S.read_status(plan.job_dir(slow))
    assert st["state"] == S.DONE and st["attempt"] == 2
    assert any(f"skip   {quick.id}: done" in m for m in lines)
    assert sum(" start " in f" {m} " for m in lines) == 1


def test_example_plan_matches_its_notebook():
    example = P.PLAN_DIR / "example_smoke.yaml"
    notebook = C.PROJECT_ROOT / "notebooks" / "00_data_synthesis.ipynb"
    if not notebook.exists():
        pytest.skip("notebooks/00_data_synthesis.ipynb is not written yet")
    plan = P.load_plan(example)
    jobs = P.expand(plan)
    assert [j.id for j in jobs] == ["synth-n_train=24-seed0", "synth-n_train=48-seed0",
                                    "synth-n_train=24-seed1", "synth-n_train=48-seed1"]
    P.validate_jobs(jobs)  # every parameter name exists in the notebook's parameters cell
