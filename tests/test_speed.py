"""Training speed tooling: the step profile attributes the step's time and leaves the trainer
as it was; the optimised step computes what the plain one computes (loss equality)."""

from __future__ import annotations

import torch

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
