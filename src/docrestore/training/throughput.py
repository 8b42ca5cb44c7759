"""Training throughput: lines/s of full G + D + recognizer steps per arm.

:func:`measure` runs the real :meth:`GANTrainer.train_step` on random lines of the profile's size
with randomly initialised models (speed does not depend on the weights or the text), so it needs
no dataset and no pretrained recognizer. ``benchmarks/bench_train.py`` (``make bench``) and
``benchmarks/gpu_check.py`` (``make gpu-check``) write its numbers to
``benchmarks/results/train-<device kind>-<profile>-<date>.json``; :mod:`docrestore.study.estimate`
reads the newest one for a profile to estimate a plan's wall time.
"""

from __future__ import annotations

import datetime as _dt
import json
import time
from pathlib import Path

import torch

from .. import config as C
from .. import device as D

RESULTS_DIR = "benchmarks/results"

# One entry per kind of training step the paper runs (their cost differs: S2 reads restored
# lines with the trained recognizer, the feature loss and the dual-modal text branch run the
# frozen one). The DDP test runs the same arms.
ARMS: dict[str, list[str]] = {
    "baseline_s1": ["train.scenario=S1", "train.ctc.weight=1"],
    "baseline_s2": ["train.scenario=S2", "train.ctc.weight=1"],
    "annealing": ["train.scenario=S1", "train.ctc.weight=5", "train.ctc.schedule=linear",
                  "train.ctc.warmup=0", "train.ctc.ramp=2"],
    "balanced": ["train.scenario=S1", "train.ctc.weight=1", "train.ctc.schedule=balanced"],
    "feature_loss": ["train.scenario=frozen", "train.ctc.weight=0", "train.feature_loss.weight=5"],
    "dual_modal": ["train.scenario=S1", "train.ctc.weight=1", "discriminator.name=dual_modal"],
}
CHARSET = list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,;:-'")


class RandomLines(torch.utils.data.Dataset):
    """Random degraded/clean lines of ``height`` x ``width`` with random texts of ``chars`` characters."""

    def __init__(self, n: int, height: int, width: int, chars: int, seed: int = 0):
        self.n, self.h, self.w, self.chars, self.seed = n, height, width, chars, seed

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        g = torch.Generator().manual_seed(self.seed * 7919 + i)
        clean = (torch.rand(1, self.h, self.w, generator=g) > 0.1).float()
        degraded = (clean * 0.7 + 0.3 * torch.rand(1, self.h, self.w, generator=g)).clamp(0, 1)
        ids = torch.randint(1, len(CHARSET) + 1, (self.chars,), generator=g)
        return {"degraded": degraded, "clean": clean, "has_clean": True,
                "text": "".join(CHARSET[k - 1] for k in ids.tolist()), "target": ids, "id": f"r{i}"}


def random_recognizer(cfg: C.Config, path: Path) -> Path:
    """A randomly initialised recognizer checkpoint of ``cfg``'s architecture (for timing only)."""
    from .. import checkpoint as CK
    from ..models import build_recognizer

    rec = build_recognizer(cfg.recognizer, num_classes=len(CHARSET) + 1, height=cfg.data.height)
    CK.save_checkpoint(path, {"kind": "recognizer", "config": C.to_dict(cfg), "charset": CHARSET, "step": 0,
                              "epoch": 0, "models": {"recognizer": rec.state_dict()}, "optimizers": {}})
    return path


def random_data(cfg: C.Config, n: int):
    from ..data.charset import Charset
    from ..data import loading

    charset = Charset(CHARSET)
    chars = max(1, min(cfg.data.max_chars, cfg.data.width // 16))
    lines = RandomLines(n, cfg.data.height, cfg.data.width, chars, cfg.seed)
    return loading.Data(Path("random-lines"), charset, lines, RandomLines(8, cfg.data.height, cfg.data.width, chars, 1),
                       lines, "random")


def arm_config(profile: str, arm: str, device: str, overrides: list[str] = ()) -> C.Config:
    return C.load_config(profile=profile, overrides=[f"device={device}", "tracking.enabled=false",
                                                     *ARMS[arm], *overrides])


def bench_trainer(profile: str, arm: str, device: str = "auto", n_batches: int = 7,
                  workdir: str | Path = "runs/bench", overrides: list[str] = ()):
    """A :class:`GANTrainer` of ``arm`` at ``profile``'s size on random lines, and ``n_batches``
    collated batches for it."""
    from .. import runs as R
    from ..data.dataset import collate_lines
    from .gan import GANTrainer

    cfg = arm_config(profile, arm, device, [f"runs_dir={workdir}", *overrides])
    work = C.resolve_path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    rec = random_recognizer(cfg, work / f"random-recognizer-{profile}.pt")
    bs = cfg.train.batch_size
    data = random_data(cfg, bs * n_batches)
    run = R.join_run(work / f"{arm}-{profile}", cfg, "train", {})
    trainer = GANTrainer(cfg, run, data=data, recognizer_path=rec)
    batches = [collate_lines([data.train[i] for i in range(k * bs, (k + 1) * bs)]) for k in range(n_batches)]
    return trainer, batches


def measure(profile: str, arm: str, device: str = "auto", steps: int = 5, warmup: int = 2,
            workdir: str | Path = "runs/bench", overrides: list[str] = (), precision: str = "auto") -> dict:
    """Lines/s of ``steps`` training steps of ``arm`` at ``profile``'s size, after ``warmup``.
    ``seconds`` is wall time; ``cpu_seconds`` the process's CPU time over the same steps (on a
    shared CPU the wall clock also counts other processes' turns)."""
    trainer, batches = bench_trainer(profile, arm, device, steps + warmup, workdir, overrides)
    cfg, bs = trainer.cfg, trainer.cfg.train.batch_size
    dev = trainer.device
    sync = (lambda: torch.cuda.synchronize(dev)) if D.is_gpu(dev) else (lambda: None)
    if D.is_gpu(dev):
        torch.cuda.reset_peak_memory_stats(dev)
    with D.precision(precision):
        for k, batch in enumerate(batches):
            if k == warmup:
                sync()
                t0, c0 = time.perf_counter(), time.process_time()
            trainer.train_step(batch)
            trainer.step += 1
        sync()
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"arm": arm, "profile": profile, "device": D.describe(dev), "kind": D.kind_of(D.describe(dev)),
            "precision": precision, "batch_size": bs, "height": cfg.data.height, "width": cfg.data.width,
            "steps": steps, "seconds": seconds, "lines_per_s": steps * bs / seconds,
            "cpu_seconds": cpu, "lines_per_cpu_s": steps * bs / cpu,
            "peak_memory_gib": (torch.cuda.max_memory_allocated(dev) / 2**30) if D.is_gpu(dev) else None}


def profile_step(profile: str, arm: str, device: str = "auto", steps: int = 5, warmup: int = 2,
                 workdir: str | Path = "runs/bench") -> dict:
    """CPU seconds per step of each part of ``arm``'s training step (see
    :mod:`docrestore.training.step_profile`), averaged over ``steps`` after ``warmup``."""
    from .step_profile import StepProfile

    trainer, batches = bench_trainer(profile, arm, device, steps + warmup, workdir)
    for batch in batches[:warmup]:
        trainer.train_step(batch)
        trainer.step += 1
    with StepProfile(trainer) as prof:
        for batch in batches[warmup:]:
            trainer.train_step(batch)
            trainer.step += 1
    return {"arm": arm, "profile": profile, "steps": prof.steps,
            "seconds_per_step": prof.total / prof.steps,
            "parts": {k: v / prof.steps for k, v in prof.seconds.items()}, "shares": prof.shares()}


def write_results(results: list[dict], tag: str, out_dir: str | Path | None = None) -> Path:
    """``benchmarks/results/train-<kind>-<profile>-<date>.json`` with the git commit."""
    from ..runs import git_info

    out = C.resolve_path(out_dir or RESULTS_DIR)
    out.mkdir(parents=True, exist_ok=True)
    first = results[0]
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = out / f"train-{first['kind'].lower()}-{first['profile']}-{tag}{stamp}.json"
    git = git_info()
    path.write_text(json.dumps({"date": stamp, "git_commit": git.get("commit"), "git_dirty": git.get("dirty"),
                                "results": results}, indent=2), encoding="utf-8")
    return path


def newest_results(profile: str, out_dir: str | Path | None = None) -> tuple[Path, dict[str, float]] | None:
    """The newest benchmark file for ``profile`` (a GPU one first), as {arm: lines/s}."""
    d = C.resolve_path(out_dir or RESULTS_DIR)
    if not d.is_dir():
        return None
    for kind in ("gpu", "cpu"):
        files = sorted(d.glob(f"train-{kind}-{profile}-*.json"))
        for f in reversed(files):
            try:
                rows = json.loads(f.read_text(encoding="utf-8"))["results"]
            except (OSError, ValueError, KeyError):
                continue
            rates = {r["arm"]: r["lines_per_s"] for r in rows if r.get("lines_per_s")}
            if rates:
                return f, rates
    return None
