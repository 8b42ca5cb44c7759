"""Losses: hand-computed GAN and pixel values, CTC, the CTC weight schedules at exact steps,
gradient balancing, and the recognition feature loss."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from docrestore.config import CTCConfig, FeatureLossConfig, RecognizerConfig
from docrestore.losses import (CTCWeightSchedule, FeatureLoss, GANLoss, balanced_scale, ctc_loss,
                               ctc_loss_per_sample, pixel_loss)
from docrestore.models import build_recognizer


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# ------------------------------------------------------------------------------------ GAN
def test_lsgan_is_mse_of_sigmoid_scores():
    gan = GANLoss("lsgan")
    zeros = torch.zeros(2, 1, 2, 4)
    assert gan(zeros, real=True).item() == pytest.approx(0.25)   # (sigmoid(0) - 1)^2
    assert gan(zeros, real=False).item() == pytest.approx(0.25)  # (sigmoid(0) - 0)^2
    s = torch.tensor([2.0, -1.0])
    expected_real = ((torch.sigmoid(s) - 1) ** 2).mean().item()
    assert gan({"image": s}, real=True).item() == pytest.approx(expected_real)
    assert gan(torch.full((3,), 20.0), real=True).item() < 1e-12


def test_vanilla_is_bce_with_logits():
    gan = GANLoss("vanilla")
    assert gan(torch.zeros(5), real=True).item() == pytest.approx(math.log(2))
    assert gan(torch.full((4,), 2.0), real=True).item() == pytest.approx(math.log1p(math.exp(-2)))
    assert gan(torch.full((4,), 2.0), real=False).item() == pytest.approx(math.log1p(math.exp(2)))


def test_gan_loss_weights_branches():
    gan = GANLoss("lsgan")
    scores = {"image": torch.zeros(1, 1, 2, 16), "text": torch.zeros(1, 1)}
    assert gan(scores, real=True).item() == pytest.approx(0.5)
    assert gan(scores, real=True, weights={"image": 1.0, "text": 2.0}).item() == pytest.approx(0.75)
    with pytest.raises(KeyError, match="text"):
        gan(scores, real=True, weights={"image": 1.0})
    with pytest.raises(ValueError, match="lsgan"):
        GANLoss("wgan")


def test_gan_loss_is_float32_and_differentiable_from_half_scores():
    s = torch.zeros(2, 1, 2, 4, dtype=torch.bfloat16, requires_grad=True)
    loss = GANLoss("lsgan")(s, real=True)
    assert loss.dtype == torch.float32
    loss.backward()
    assert s.grad is not None and s.grad.abs().sum() > 0


# ---------------------------------------------------------------------------------- pixel
def test_pixel_losses_by_hand():
    restored = torch.tensor([[[[0.5, 0.25]]]])
    clean = torch.tensor([[[[1.0, 0.0]]]])
    bce = -(math.log(0.5) + math.log(0.75)) / 2
    assert pixel_loss("bce", restored, clean).item() == pytest.approx(bce, rel=1e-6)
    assert pixel_loss("l1", restored, clean).item() == pytest.approx(0.375)
    assert pixel_loss("mse", restored, clean).item() == pytest.approx((0.25 + 0.0625) / 2)


def test_bce_is_finite_at_0_and_1():
    sure = pixel_loss("bce", torch.tensor([0.0, 1.0]), torch.tensor([0.0, 1.0]))
    wrong = pixel_loss("bce", torch.tensor([0.0, 1.0]), torch.tensor([1.0, 0.0]))
    assert 0 <= sure.item() < 1e-6
    # -log(1e-7) = 16.1 (1 - 1e-7 rounds a little in float32, hence the tolerance)
    assert math.isfinite(wrong.item()) and wrong.item() == pytest.approx(-math.log(1e-7), rel=1e-2)
    with pytest.raises(ValueError, match="bce"):
        pixel_loss("ssim", torch.zeros(1), torch.zeros(1))


# ------------------------------------------------------------------------------------ CTC
def test_ctc_loss_matches_torch_and_per_sample_mean():
    logits = torch.randn(16, 3, 6)
    targets = torch.tensor([1, 2, 3, 4, 5, 1, 2, 2])
    lengths = torch.tensor([3, 2, 3])
    expected = F.ctc_loss(logits.log_softmax(2), targets, torch.full((3,), 16), lengths,
                          blank=0, reduction="mean", zero_infinity=True)
    assert ctc_loss(logits, targets, lengths).item() == pytest.approx(expected.item(), rel=1e-5)
    per = ctc_loss_per_sample(logits, targets, lengths)
    assert per.shape == (3,)
    assert per.mean().item() == pytest.approx(expected.item(), rel=1e-5)
    raw = ctc_loss_per_sample(logits, targets, lengths, normalize=False)
    assert torch.allclose(raw / lengths, per)


def test_ctc_sum_reduction_is_erbs_per_line_sum_then_batch_mean():
    # ERB's code: Keras ctc_batch_cost (one negative log-likelihood per line), then the batch mean.
    logits = torch.randn(16, 3, 6)
    targets = torch.tensor([1, 2, 3, 4, 5, 1, 2, 2])
    lengths = torch.tensor([3, 2, 3])
    raw = ctc_loss_per_sample(logits, targets, lengths, normalize=False)
    summed = ctc_loss(logits, targets, lengths, reduction="sum")
    assert summed.item() == pytest.approx(raw.mean().item(), rel=1e-5)
    per_char = ctc_loss(logits, targets, lengths, reduction="per_char")
    assert summed.item() > 2 * per_char.item()  # lengths 2-3: the sum is 2-3x larger
    with pytest.raises(ValueError, match="train.ctc.reduction"):
        ctc_loss(logits, targets, lengths, reduction="mean")


def test_ctc_loss_low_for_the_right_reading_and_zero_for_impossible():
    t = torch.full((8, 1, 4), -10.0)
    for frame, k in enumerate([1, 1, 0, 2, 0, 3, 3, 0]):
        t[frame, 0, k] = 10.0
    good = ctc_loss(t, torch.tensor([1, 2, 3]), torch.tensor([3]))
    bad = ctc_loss(t, torch.tensor([3, 2, 1]), torch.tensor([3]))
    assert good.item() < 1e-3 < bad.item()
    impossible = ctc_loss(torch.randn(2, 1, 4), torch.tensor([1, 2, 3]), torch.tensor([3]))
    assert impossible.item() == 0.0  # zero_infinity, not inf


def test_ctc_loss_runs_in_float32_on_half_logits():
    logits = torch.randn(10, 2, 5).to(torch.bfloat16).requires_grad_(True)
    loss = ctc_loss(logits, torch.tensor([1, 2, 3, 4]), torch.tensor([2, 2]))
    assert loss.dtype == torch.float32 and math.isfinite(loss.item())
    loss.backward()
    assert logits.grad is not None


# ------------------------------------------------------------------------------- schedules
def schedule(kind: str, **kw) -> CTCWeightSchedule:
    base = dict(weight=2.0, schedule=kind, warmup=10, ramp=20, steps=4)
    base.update(kw)
    return CTCWeightSchedule(CTCConfig(**base))


@pytest.mark.parametrize("kind, expected", [
    ("constant", {0: 2.0, 9: 2.0, 10: 2.0, 100: 2.0}),
    ("balanced", {0: 2.0, 15: 2.0, 100: 2.0}),
    ("switch", {0: 0.0, 9: 0.0, 10: 2.0, 11: 2.0, 100: 2.0}),
    ("linear", {0: 0.0, 9: 0.0, 10: 0.0, 15: 0.5, 20: 1.0, 29: 1.9, 30: 2.0, 1000: 2.0}),
    ("cosine", {9: 0.0, 10: 0.0, 15: 1.0 - math.sqrt(0.5), 20: 1.0, 25: 1.0 + math.sqrt(0.5),
                30: 2.0}),
    # 4 stairs of 5 steps from step 10: 0.5, 1.0, 1.5, 2.0
    ("step", {9: 0.0, 10: 0.5, 14: 0.5, 15: 1.0, 19: 1.0, 20: 1.5, 24: 1.5, 25: 2.0, 29: 2.0,
              30: 2.0, 500: 2.0}),
])
def test_schedule_exact_weights(kind, expected):
    s = schedule(kind)
    for step, w in expected.items():
        assert s.weight(step) == pytest.approx(w, abs=1e-12), (kind, step)
    assert kind in s.describe()


@pytest.mark.parametrize("kind", ["linear", "cosine", "step"])
def test_zero_ramp_behaves_as_switch(kind):
    s = schedule(kind, ramp=0)
    assert [s.weight(k) for k in (0, 9, 10, 11)] == [0.0, 0.0, 2.0, 2.0]
    assert "at once" in s.describe()


def test_ramps_are_monotone_and_bounded():
    for kind in ("linear", "cosine", "step"):
        s = schedule(kind, warmup=3, ramp=17, steps=3)
        ws = [s.weight(k) for k in range(40)]
        assert all(a <= b for a, b in zip(ws, ws[1:])), kind
        assert ws[0] == 0.0 and ws[-1] == 2.0


def test_balanced_scale():
    adv = torch.tensor([1.0, 3.0])   # std sqrt(2)
    ctc = torch.tensor([0.0, 1.0])   # std sqrt(1/2)
    assert balanced_scale(adv, ctc, alpha=0.5) == pytest.approx(1.0, rel=1e-6)
    assert balanced_scale([adv[:1], adv[1:]], [ctc, None], alpha=1.0) == pytest.approx(2.0, rel=1e-6)
    assert balanced_scale(adv, torch.tensor([0.0, float("nan")])) == 0.0
    assert balanced_scale(adv, torch.tensor([0.0, float("inf")])) == 0.0
    assert balanced_scale(adv, torch.tensor([1.0])) == 0.0  # no std of one value


# -------------------------------------------------------------------------------- feature
def recognizer(name: str = "crnn") -> nn.Module:
    cfg = RecognizerConfig(name=name, width=0.25, rnn_hidden=16, rnn_layers=1)
    return build_recognizer(cfg, 10, 32)


def text_like(n: int = 2) -> torch.Tensor:
    gen = torch.Generator().manual_seed(3)
    line = torch.ones(n, 1, 32, 128)
    for i in range(n):
        for _ in range(10):
            r = int(torch.randint(6, 22, (1,), generator=gen))
            c = int(torch.randint(0, 120, (1,), generator=gen))
            line[i, 0, r:r + 8, c:c + 2] = 0.1
    return line


@pytest.mark.parametrize("taps, distance", [(["cnn_last"], "mse"), (["cnn2", "cnn_last", "rnn"], "l1")])
def test_feature_loss_zero_for_identical_and_grows_with_noise(taps, distance):
    fl = FeatureLoss(recognizer(), FeatureLossConfig(weight=1.0, taps=taps, distance=distance))
    clean = text_like()
    gen = torch.Generator().manual_seed(4)
    noise = torch.randn(clean.shape, generator=gen)
    same = fl(clean.clone(), clean).item()
    mild = fl((clean + 0.1 * noise).clamp(0, 1), clean).item()
    strong = fl((clean + 0.3 * noise).clamp(0, 1), clean).item()
    assert same == pytest.approx(0.0, abs=1e-6)
    assert 0 < mild < strong


def test_feature_loss_leaves_the_recognizer_untouched():
    rec = recognizer()
    before = {k: v.clone() for k, v in rec.state_dict().items()}
    fl = FeatureLoss(rec, FeatureLossConfig(weight=1.0, taps=["cnn1", "cnn_last"]))
    rec.train()  # a later train() (e.g. of a parent) must not unfreeze BatchNorm
    fl.recognizer.train()
    restored = torch.rand(2, 1, 32, 128, requires_grad=True)
    out = fl.compute(restored, text_like())
    out.loss.backward()
    assert restored.grad is not None and restored.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in rec.parameters())
    after = rec.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # BN running stats included
    assert out.restored_logits.shape == (32, 2, 10)
    assert fl.last_logits is out.restored_logits


def test_feature_loss_tap_weights_and_errors():
    rec = recognizer()
    clean = text_like()
    restored = (clean + 0.2 * torch.randn(clean.shape)).clamp(0, 1)
    one = FeatureLoss(rec, FeatureLossConfig(taps=["cnn1"]))(restored, clean)
    two = FeatureLoss(rec, FeatureLossConfig(taps=["cnn_last"]))(restored, clean)
    mean = FeatureLoss(rec, FeatureLossConfig(taps=["cnn1", "cnn_last"]))(restored, clean)
    weighted = FeatureLoss(rec, FeatureLossConfig(taps=["cnn1", "cnn_last"],
                                                  tap_weights=[2.0, 0.5]))(restored, clean)
    assert mean.item() == pytest.approx((one.item() + two.item()) / 2, rel=1e-5)
    assert weighted.item() == pytest.approx(2 * one.item() + 0.5 * two.item(), rel=1e-5)
    with pytest.raises(ValueError, match="cnn_last"):
        FeatureLoss(rec, FeatureLossConfig(taps=["conv3"]))
    with pytest.raises(ValueError, match="one weight per tap"):
        FeatureLoss(rec, FeatureLossConfig(taps=["cnn1"], tap_weights=[1.0, 2.0]))


def test_normalised_feature_distance_is_bounded():
    """Unit-length features: the per-position squared distance lies in [0, 4]."""
    fl = FeatureLoss(recognizer("crnn_lstm"), FeatureLossConfig(taps=["cnn_last"]))
    a = torch.randn(2, 8, 3, 5)
    assert 0 <= fl.tap_distance(a, -a).item() == pytest.approx(4.0, rel=1e-5)
    assert fl.tap_distance(a, 3 * a).item() == pytest.approx(0.0, abs=1e-6)
