"""bf16 autocast trains like fp32: the generator's head and sigmoid stay in fp32 (run on the CPU
with bf16 autocast forced by ``device.precision('bf16')``, the path a GPU takes)."""

from __future__ import annotations

import pytest
import torch

from docrestore import config as C
from docrestore import device as D
from docrestore import runs as R
from docrestore.models.generator import UNetGenerator
from docrestore.training import common
from docrestore.training.gan import GANTrainer

CPU = torch.device("cpu")
# Losses of a bf16 run vs an fp32 run over the first three steps, same seed and batches: bf16
# carries 8 bits of mantissa (~0.4 % per rounding), summed over the G, D and recognizer layers.
STEP_RTOL = 0.05


def test_near_white_outputs_keep_their_gradient_under_bf16():
    torch.manual_seed(0)
    g = UNetGenerator(width=0.125, dropout=0.0, output_bias=8.0)  # sigmoid(8) = 0.99966: white paper
    x = torch.rand(2, 1, 32, 64)
    with D.precision("bf16"), D.autocast(CPU):
        out = g(x)
        loss = torch.nn.functional.binary_cross_entropy(out, torch.ones_like(out))
    loss.backward()
    assert out.dtype == torch.float32
    assert (out < 1.0).all() and out.median() > 0.998  # near-white, yet below 1
    assert g.head.bias.grad is not None and g.head.bias.grad.abs().item() > 0
    assert g.head.weight.grad.abs().sum().item() > 0
    # what the fp32 head prevents: the same logits through a bf16 sigmoid are exactly 1.0
    assert torch.sigmoid(torch.full((4,), 8.0).bfloat16()).eq(1.0).all()


def test_autocast_follows_the_precision_setting():
    assert isinstance(D.autocast(CPU), type(D.autocast(CPU)))
    with D.precision("bf16"):
        with D.autocast(CPU):
            assert torch.is_autocast_enabled("cpu")
    with D.precision("fp32"), D.autocast(CPU):
        assert not torch.is_autocast_enabled("cpu")
    with pytest.raises(ValueError, match="precision"):
        with D.precision("fp16"):
            pass


def run_steps(cfg, precision: str, n: int = 3) -> tuple[list[dict], GANTrainer]:
    t = GANTrainer(cfg, R.start_run(cfg, "train"))
    batches = common.EpochBatches(len(t.data.train), cfg.train.batch_size, cfg.seed, 0).batches[:n]
    out = []
    with D.precision(precision):
        for idx in batches:
            torch.manual_seed(t.step)  # the same dropout masks in both runs
            out.append(t.train_step(common.loader(t.data.train, cfg, batch_sampler=[idx]).__iter__().__next__()))
            t.step += 1
    return out, t


def test_a_few_bf16_steps_track_fp32(tmp_path, smoke_dataset, smoke_recognizer):
    # batches of 2 lines: a CPU bf16 step of the smoke models takes about 1 s at 4 lines
    cfg = C.load_config(profile="smoke", overrides=[
        f"runs_dir={tmp_path}/runs", f"data.root={smoke_dataset.parent}", "tracking.enabled=false",
        "device=cpu", f"recognizer.checkpoint={smoke_recognizer}", "train.scenario=S1", "train.ctc.weight=1",
        "train.batch_size=2"])
    fp32, _ = run_steps(cfg, "fp32")
    bf16, t = run_steps(cfg, "bf16")
    for step, (a, b) in enumerate(zip(fp32, bf16)):
        for key in ("train/loss_g", "train/loss_d", "train/pixel", "train/adv", "train/ctc_monitor"):
            assert b[key] == pytest.approx(a[key], rel=STEP_RTOL), (step, key, a[key], b[key])
    with D.precision("bf16"), D.autocast(CPU):
        assert t.generator(torch.rand(1, 1, 32, 256)).dtype == torch.float32
