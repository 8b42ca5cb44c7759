"""What the paper's experiments cost: hours of training steps per plan, from the newest training
benchmark (:mod:`docrestore.training.throughput`, written by ``make bench`` / ``make gpu-check``).

The scheduler's dry run prints :func:`plan_estimate` (``docrestore experiments PLAN --dry-run``
hands it in: the scheduler itself knows no recipe).
"""

from __future__ import annotations

from .. import config as C
from ..training import throughput as T


def arm_of(cfg: C.Config) -> str:
    """Which benchmarked kind of training step (:data:`docrestore.training.throughput.ARMS`) an
    arm's resolved config trains (the cGAN arm is timed as S1, an upper bound: it skips the
    recognizer update)."""
    if cfg.discriminator.name == "dual_modal":
        return "dual_modal"
    if cfg.train.feature_loss.weight > 0:
        return "feature_loss"
    if cfg.train.ctc.schedule == "balanced":
        return "balanced"
    if cfg.train.ctc.schedule != "constant":
        return "annealing"
    return "baseline_s2" if cfg.train.scenario == "S2" else "baseline_s1"


def estimate_hours(profile: str, seeds: int, rates: dict[str, float]) -> tuple[float, int]:
    """Hours of training steps for the paper's experiments at ``profile`` x ``seeds`` at ``rates``
    ({arm: lines/s}), and the steps per run (the profile's budget; early stopping only shortens it)."""
    from .lines import make_config, paper_experiments

    cfg = C.load_config(profile=profile)
    steps = C.total_steps(cfg)
    lines = steps * cfg.train.batch_size
    hours = sum(seeds * lines / (rates.get(arm_of(make_config(e, profile))) or min(rates.values())) / 3600
                for e in paper_experiments(profile))
    return hours, steps


def plan_estimate(profile: str, seeds: int, parallel: int = 1) -> list[str]:
    """Lines for a plan's dry run: the estimated wall time of the paper's experiments at
    ``profile`` x ``seeds`` from the newest training benchmark (training steps only)."""
    found = T.newest_results(profile)
    if found is None:
        return [f"# estimate     : no training benchmark for profile {profile} yet; `make bench` (CPU) "
                "or `make gpu-check` (GPU) measures one"]
    path, rates = found
    hours, steps = estimate_hours(profile, seeds, rates)
    parallel = max(1, parallel)
    return [f"# estimate     : {hours:.1f} h of training steps in all ({steps} steps per run, {seeds} seed(s), "
            f"no early stop), ~{hours / parallel:.1f} h with {parallel} job(s) at once; from {path.name}"]
