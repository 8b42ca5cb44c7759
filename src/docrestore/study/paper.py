"""The paper's figures and tables from one command (``make paper-figures``): run the line
experiments the ledger lacks (the plan configs/experiments/paper_<profile>.yaml through the
scheduler), then draw every figure and table (notebook 04) and the DIBCO ones (notebook 05).

    python -m docrestore.study paper-figures --profile quick [--dibco PATH] [--background | --status]
    python -m docrestore.study list --profile quick      # which paper experiments the ledger lacks
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from .. import config as C
from .. import runs as R
from .benchmark import Experiment, auto_profile, entry_name
from .lines import LINES, paper_experiments


def missing_experiments(profile: str, ledger_dir: Path, overrides: list[str] | tuple = (),
                        reasons: dict[str, str] | None = None) -> list[Experiment]:
    """The paper's experiments (one per seed of the seeded arms, named as in the ledger) whose
    entry is missing or stale, by the rule the notebooks reuse entries with
    (:func:`docrestore.study.reuse.decide`: other settings, older fields, other data, or a
    changed fingerprint). A stale entry is never counted as done; ``reasons`` (when given)
    receives why, by entry name."""
    import dataclasses

    head = R.git_info()
    missing = []
    for exp, seed in paper_experiments(profile, seeds=True):
        d = LINES.decide(exp, profile, seed, overrides, True, head, ledger_dir=ledger_dir)
        if d.train:
            missing.append(dataclasses.replace(exp, name=entry_name(exp, seed)))
            if reasons is not None:
                reasons[d.name] = d.reason
    return missing


def prepare(profile: str | None = None, seed: int = 0):
    """Synthesise the data, then pretrain the loss recognizer and the held-out reader side by
    side (two processes). Returns once the loss recognizer is ready, with the reader's process
    still running: the GAN jobs need only the loss recognizer to start, and wait for the reader
    (its cache lock) when they evaluate. Call :func:`wait_reader` on the returned process."""
    from ..data.synth import ensure_dataset
    from ..training.recognizer import ensure_recognizer

    prof = auto_profile(profile)
    cfg = C.load_config(None, [f"seed={seed}"], profile=prof)
    ensure_dataset(cfg)
    # One thread: beside two one-thread GAN jobs on 2 cores, a two-thread reader was over 3x
    # slower (OpenMP threads waiting on each other), not faster (logbook 2026-11-30).
    env = dict(os.environ, DOCRESTORE_THREADS="1", OMP_NUM_THREADS="1")
    reader = subprocess.Popen([sys.executable, "-m", "docrestore.study", "reader", "--profile", prof,
                               "--seed", str(seed)], env=env)
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ensure_recognizer(cfg, "loss")
    except BaseException:
        reader.terminate()
        raise
    finally:
        torch.set_num_threads(threads)
    return reader


def ensure_reader(profile: str, seed: int = 0) -> Path:
    """The held-out reader of ``profile`` (trained now into the recognizer cache when missing), and
    the second one when the profile sets ``eval.reader2_arch``:
    what :func:`prepare` runs in its own process (``python -m docrestore.study reader``)."""
    from ..training.recognizer import ensure_recognizer

    R.setup_logging()
    cfg = C.load_config(None, [f"seed={seed}"], profile=profile)
    path = ensure_recognizer(cfg, "reader")
    if cfg.eval.reader2 or cfg.eval.reader2_arch:  # the second held-out reader, in the same process
        ensure_recognizer(cfg, "reader2")
    return path


def wait_reader(reader) -> None:
    """Wait for :func:`prepare`'s reader process; a failure is said (a job that then needs the
    reader trains it itself, under the same cache lock)."""
    if reader is not None and reader.wait() != 0:
        print(f"paper-figures: pretraining the held-out reader in the background failed (exit "
              f"{reader.returncode}; its log is above)", flush=True)


def page_figures(profile: str, dibco: str | None = None) -> Path | None:
    """Notebook 05 (the DIBCO table and crops) when the page data is there; else one line saying
    where it comes from and how to point at it."""
    import papermill as pm

    from ..data.pages import data_hint, resolve_root

    if not resolve_root(dibco or "auto").is_dir():
        print(f"paper-figures: {data_hint()}" if not dibco else
              f"paper-figures: DIBCO={dibco} is not a folder; no DIBCO table", flush=True)
        return None
    nb = C.PROJECT_ROOT / "notebooks" / "05_real_pages.ipynb"
    out = C.resolve_path("runs") / "notebooks" / f"05_real_pages-{profile}.ipynb"
    out.parent.mkdir(parents=True, exist_ok=True)
    print(f"paper-figures: the DIBCO benchmark (notebook {nb.name}, pages {resolve_root(dibco or 'auto')})", flush=True)
    pm.execute_notebook(str(nb), str(out), parameters={"profile": profile, "data_root": dibco},
                        cwd=str(nb.parent), progress_bar=False)
    return out


def paper_figures(profile: str = "quick", ledger_dir: str | None = None, dibco: str | None = None) -> Path:
    """Run the experiments the ledger lacks (the plan configs/experiments/paper_<profile>.yaml, in
    the foreground, jobs side by side), then execute notebook 04 to draw every figure and table.
    ``ledger_dir`` None: the profile's eval.ledger_dir (paper/results; runs/results for smoke)."""
    import time

    import papermill as pm

    from ..figures.paper import output_dirs, profile_dirs
    from ..scheduler import plan as PL
    from ..scheduler import runner

    R.setup_logging()
    ledger_dir = ledger_dir or C.load_config(profile=profile).eval.ledger_dir
    ledger = C.resolve_path(ledger_dir)
    figures_dir, tables_dir = output_dirs(ledger)
    fig_dir, tab_dir = profile_dirs(figures_dir, tables_dir, profile)
    t0 = time.time()
    why: dict[str, str] = {}
    todo = missing_experiments(profile, ledger, reasons=why)
    for name, reason in why.items():
        print(f"paper-figures: {name}: {reason}", flush=True)
    if todo:
        plan_path = C.CONFIG_DIR / "experiments" / f"paper_{profile}.yaml"
        plan = PL.load_plan(plan_path)  # a missing plan is said before minutes of pretraining
        reader = prepare(profile)
        print(f"paper-figures: {len(todo)} experiment(s) missing from {ledger / profile}: "
              f"{', '.join(e.name for e in todo)}\npaper-figures: running the plan {plan_path.name} "
              f"(job logs under runs/experiments/; follow with `docrestore experiments {plan_path} --status`)",
              flush=True)
        # force: a job whose state says "done" but whose entry was deleted or is stale runs again;
        # its notebook reuses every entry still valid (run_or_reuse), so only the missing ones train.
        try:
            code = runner.run_plan(plan, force=True,
                                   echo=lambda msg: print(f"paper-figures: {msg}", flush=True))
        finally:
            wait_reader(reader)
        still = missing_experiments(profile, ledger)
        if still:
            raise RuntimeError(f"after the plan ran (exit {code}), the ledger still lacks "
                               f"{', '.join(e.name for e in still)}; see the failed jobs' logs with "
                               f"`docrestore experiments {plan_path} --status`")
    out_dir = C.resolve_path("runs") / "notebooks"
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"04_evaluation_figures-{profile}.ipynb"
    nb = C.PROJECT_ROOT / "notebooks" / "04_evaluation_figures.ipynb"
    print(f"paper-figures: drawing figures and tables from the ledger (notebook {nb.name})", flush=True)
    pm.execute_notebook(str(nb), str(out), parameters={"profile": profile, "ledger_dir": ledger_dir},
                        cwd=str(nb.parent), progress_bar=False)
    page_figures(profile, dibco)
    print(f"paper-figures: done in {(time.time() - t0) / 60:.1f} min.\n"
          f"  figures : {fig_dir}\n"
          f"  tables  : {tab_dir}\n"
          f"  notebook: {out}\n  ledger  : {ledger / profile}", flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m docrestore.study")
    sub = p.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("paper-figures", help="run missing experiments, then draw every figure and table")
    f.add_argument("--profile", default="quick", choices=C.PROFILES)
    f.add_argument("--background", action="store_true",
                   help="run detached; log in runs/background/paper-figures-<profile>.log")
    f.add_argument("--status", action="store_true", help="show the background paper-figures job")
    f.add_argument("--dibco", default=None, help="folder of DIBCO page pairs (default ../shared/data/dibco)")
    ls = sub.add_parser("list", help="list the paper's experiments and whether the ledger has them")
    ls.add_argument("--profile", default="quick", choices=C.PROFILES)
    rd = sub.add_parser("reader", help="pretrain the held-out reader into the cache (what paper-figures runs "
                                       "beside the loss recognizer)")
    rd.add_argument("--profile", default="quick", choices=C.PROFILES)
    rd.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.cmd == "paper-figures" and (args.background or args.status):
        from .. import background

        name = f"paper-figures-{args.profile}"
        if args.status:
            print(background.status_text(name))
            print(f"experiment jobs: docrestore experiments configs/experiments/paper_{args.profile}.yaml --status")
        else:
            background.launch(name, [sys.executable, "-m", "docrestore.study", "paper-figures",
                                     "--profile", args.profile] + (["--dibco", args.dibco] if args.dibco else []))
    elif args.cmd == "paper-figures":
        paper_figures(args.profile, dibco=args.dibco or None)
    elif args.cmd == "reader":
        ensure_reader(args.profile, args.seed)
    else:
        ledger = C.resolve_path(C.load_config(profile=args.profile).eval.ledger_dir)
        missing = {e.name for e in missing_experiments(args.profile, ledger)}
        for e in paper_experiments(args.profile):
            print(f"{'missing' if e.name in missing else 'done   '}  {e.name:28s} {e.group:15s} {e.method}")
    return 0
