"""Training speed tooling: the step profile attributes the step's time and leaves the trainer
as it was; the optimised step computes what the plain one computes (loss equality)."""

from __future__ import annotations

import contextlib

import pytest
import torch

from docrestore.training import speed
from docrestore.training import step_profile as SP
from docrestore.training import throughput as T


def test_step_profile_attributes_every_part_and_unhooks(tmp_path):
    backward, grad = torch.Tensor.backward, torch.autograd.grad
    r = T.profile_step("smoke", "baseline_s1", "cpu", steps=2, warmup=1, workdir=tmp_path)
    assert r["steps"] == 2
    shares = r["shares"]
    assert abs(sum(shares.values()) - 1.0) < 1e-9
    assert set(shares) <= set(SP.PARTS)
    # S1 runs every part but the frozen recognizer (CTC and its step use the co-trained one)
    for part in ("generator forward", "discriminator forward", "recognizer forward (co-trained)",
                 "D backward", "G backward (generator itself)", "recognizer backward (co-trained)",
                 "optimizer steps"):
        assert shares.get(part, 0) > 0, part
    assert torch.Tensor.backward is backward and torch.autograd.grad is grad


def test_step_profile_charges_nested_modules_once(tmp_path):
    r = T.profile_step("smoke", "dual_modal", "cpu", steps=1, warmup=1, workdir=tmp_path)
    # the dual-modal D reads through the frozen recognizer: that time is the recognizer's
    assert r["shares"]["frozen recognizer forward"] > 0 and r["shares"]["discriminator forward"] > 0
    assert abs(sum(r["parts"].values()) - r["seconds_per_step"]) < 1e-9


# 16 x 64 lines: 50 steps of two trainers in seconds; equality does not depend on the size
TINY = ["data.height=16", "data.width=64"]


def train_steps(arm: str, steps: int, workdir, plain: bool, overrides=()):
    """``steps`` training steps of ``arm`` on random smoke-size lines, with or without the
    speed-ups; returns every step's metrics and the trainer."""
    torch.manual_seed(0)  # the random loss recognizer is drawn before the trainer seeds itself
    with speed.plain() if plain else contextlib.nullcontext():
        trainer, batches = T.bench_trainer("smoke", arm, "cpu", steps, workdir, overrides)
        rows = []
        for batch in batches:
            rows.append(trainer.train_step(batch))
            trainer.step += 1
    return rows, trainer


def assert_same_training(arm: str, tmp_path, steps: int = 50, overrides=()):
    plain_rows, plain = train_steps(arm, steps, tmp_path / "plain", True, overrides)
    fast_rows, fast = train_steps(arm, steps, tmp_path / "fast", False, overrides)
    assert len(fast_rows) == steps
    for k, (a, b) in enumerate(zip(plain_rows, fast_rows)):
        assert a == b, f"{arm}: step {k} differs: " + str({m: (a[m], b.get(m)) for m in a if a[m] != b.get(m)})
    for module in ("generator", "discriminator", "recognizer"):
        for (name, p), q in zip(getattr(plain, module).state_dict().items(),
                                getattr(fast, module).state_dict().values()):
            assert torch.equal(p, q), f"{arm}: {module} {name} differs after {steps} steps"


# 50 steps in the slow suite, 8 in the fast one
STEPS = [8, pytest.param(50, marks=pytest.mark.slow)]


@pytest.mark.parametrize("steps", STEPS)
def test_co_trained_recognizer_without_weight_grads_trains_bit_identically(tmp_path, steps):
    # S1: the generator's loss reads through the co-trained recognizer, whose weights now take no
    # gradient from it; every train/* metric of every step and all weights stay bit-equal.
    assert_same_training("baseline_s1", tmp_path, steps, overrides=TINY)


@pytest.mark.parametrize("steps", STEPS)
def test_ctc_monitor_reading_the_feature_loss_pass_trains_bit_identically(tmp_path, steps):
    # feature loss at CTC weight 0: the monitor's CTC comes from the feature loss's forward
    # through the frozen recognizer instead of a second one; the same numbers, step by step.
    assert_same_training("feature_loss", tmp_path, steps, overrides=TINY)


def test_feature_loss_step_reads_the_restored_lines_once(tmp_path):
    def forwards(plain: bool) -> int:
        _, trainer = train_steps("feature_loss", 1, tmp_path / str(plain), plain, TINY)
        calls = []
        trainer.frozen_recognizer.register_forward_hook(lambda *a: calls.append(1))
        _, batches = T.bench_trainer("smoke", "feature_loss", "cpu", 1, tmp_path / "b", TINY)
        with speed.plain() if plain else contextlib.nullcontext():
            trainer.train_step(batches[0])
        return len(calls)

    # plain: the monitor, the clean target and the restored lines; shared: the last two
    assert (forwards(True), forwards(False)) == (3, 2)


def test_bench_prints_each_arm_beside_the_baseline(tmp_path):
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "bench_train", Path(__file__).resolve().parents[1] / "benchmarks" / "bench_train.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    base_file = tmp_path / "base.json"
    # an older file has no CPU figures: those cells say so instead of dividing by nothing
    base_file.write_text('{"results": [{"arm": "baseline_s1", "lines_per_s": 5.0, "lines_per_cpu_s": 8.0},'
                         ' {"arm": "dual_modal", "lines_per_s": 4.0}]}')
    now = [{"arm": "baseline_s1", "lines_per_s": 6.0, "lines_per_cpu_s": 12.0},
           {"arm": "dual_modal", "lines_per_s": 5.0, "lines_per_cpu_s": 9.0},
           {"arm": "balanced", "lines_per_s": 7.0, "lines_per_cpu_s": 10.0}]
    lines = bench.comparison(now, bench.read_baseline(base_file), "base.json")
    assert "| baseline_s1 | 8.0 | 12.0 | 1.50 | 5.0 | 6.0 | 1.20 |" in lines
    assert "| dual_modal | - | 9.0 | - | 4.0 | 5.0 | 1.25 |" in lines
    assert "| balanced | - | 10.0 | - | - | 7.0 | - |" in lines
    with pytest.raises(SystemExit, match="not a training benchmark file"):
        bench.read_baseline(tmp_path / "missing.json")
