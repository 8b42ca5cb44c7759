"""Models: shapes at the profiles' sizes, the recognizer's taps and transposition, the frozen
recognizer, the dual-modal discriminator's gradient path, and a generator that can overfit."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from docrestore.config import Config, RecognizerConfig, load_config
from docrestore.losses import pixel_loss
from docrestore.models import (CRNNLSTM, DISCRIMINATORS, GENERATORS, RECOGNIZERS,
                               DualModalDiscriminator, FrozenRecognizer, GatedCRNN,
                               PatchDiscriminator, RecognizerOutput, UNetGenerator,
                               build_discriminator, build_generator, build_recognizer, freeze,
                               greedy_decode, to_frames)

NUM_CLASSES = 12


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="module")
def smoke() -> Config:
    return load_config(profile="smoke")


def small_recognizer(name: str = "crnn", width: float = 0.25, hidden: int = 16) -> nn.Module:
    cfg = RecognizerConfig(name=name, width=width, rnn_hidden=hidden, rnn_layers=1)
    return build_recognizer(cfg, NUM_CLASSES, 32)


# ------------------------------------------------------------------------------ generator
@pytest.mark.parametrize("width", [0.125, 0.25])
def test_generator_keeps_shape_and_range_at_smoke_size(width):
    g = UNetGenerator(width=width)
    x = torch.rand(2, 1, 32, 256)
    with torch.no_grad():
        y = g(x)
    assert y.shape == x.shape
    assert y.min().item() >= 0.0 and y.max().item() <= 1.0


def test_generator_channels_follow_erb_filters():
    assert UNetGenerator(1.0).channels == (64, 128, 256, 256, 512)
    assert UNetGenerator(0.125).channels == (8, 16, 32, 32, 64)
    assert UNetGenerator(0.03).channels == (4, 4, 8, 8, 15)  # at least 4 channels each


def test_generator_conv_count_matches_erb_paper():
    convs = [m for m in UNetGenerator(0.125).modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 23


def test_generator_full_size_forward():
    g = UNetGenerator(width=0.125).eval()
    with torch.no_grad():
        y = g(torch.rand(1, 1, 128, 1024))
    assert y.shape == (1, 1, 128, 1024)


def test_generator_rejects_sizes_not_multiple_of_16():
    with pytest.raises(ValueError, match="multiples of 16"):
        UNetGenerator(0.125)(torch.rand(1, 1, 30, 256))


def test_build_generator_from_profiles(smoke):
    assert set(GENERATORS) == {"unet", "light"}  # light: the distilled student (docrestore distill)
    g = build_generator(smoke.generator)
    assert isinstance(g, UNetGenerator) and g.channels[0] == 8
    quick = load_config(profile="quick").generator
    assert build_generator(quick).channels[0] == round(64 * quick.width)


def stroke_lines(n: int, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(clean, degraded): dark strokes on white paper (a binary target BCE can drive to 0),
    degraded by lowering the contrast and adding noise."""
    gen = torch.Generator().manual_seed(1)
    clean = torch.ones(n, 1, h, w)
    for i in range(n):
        for _ in range(w // 20):
            r = int(torch.randint(2, h - 6, (1,), generator=gen))
            c = int(torch.randint(0, w - 8, (1,), generator=gen))
            clean[i, 0, r:r + 3, c:c + 8] = 0.0
    degraded = (0.6 * clean + 0.3 + 0.1 * torch.rand(clean.shape, generator=gen)).clamp(0, 1)
    return clean, degraded


def overfit_ratio(n, h, w, width, dropout, steps, lr) -> tuple[float, float]:
    """(first, final) pixel BCE of a generator trained with Adam on one fixed batch."""
    clean, degraded = stroke_lines(n, h, w)
    g = UNetGenerator(width=width, dropout=dropout)
    opt = torch.optim.Adam(g.parameters(), lr=lr)
    first = None
    for _ in range(steps):
        loss = pixel_loss("bce", g(degraded), clean)
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    g.eval()  # the learned BatchNorm statistics must serve too
    with torch.no_grad():
        final = pixel_loss("bce", g(degraded), clean).item()
    return first, final


def test_generator_overfits_one_tiny_batch_fast():
    first, final = overfit_ratio(2, 16, 64, width=0.125, dropout=0.0, steps=40, lr=1e-2)
    assert final * 4 <= first, (first, final)  # measured: 1.10 -> 0.16


@pytest.mark.slow
def test_generator_overfits_one_tiny_batch():
    """ERB's settings (width 0.25, dropout 0.5), Adam 1e-3: 300 steps on 4 lines of 32x128.
    (150 steps give about 4.4x: the sigmoid's logits grow at most ~lr per weight per step.)"""
    first, final = overfit_ratio(4, 32, 128, width=0.25, dropout=0.5, steps=300, lr=1e-3)
    assert final * 5 <= first, (first, final)  # measured: 1.23 -> 0.13


# -------------------------------------------------------------------------- discriminators
@pytest.mark.parametrize("size", [(32, 256), (128, 1024)])
def test_patch_discriminator_patch_map(size):
    h, w = size
    d = PatchDiscriminator(width=0.125)
    with torch.no_grad():
        scores = d(torch.rand(2, 1, h, w), torch.rand(2, 1, h, w))
    assert set(scores) == {"image"}
    assert scores["image"].shape == (2, 1, h // 16, w // 16)
    assert d.branch_weights == {"image": 1.0}


def test_patch_discriminator_layers_as_pix2pix():
    d = PatchDiscriminator(width=1.0)
    convs = [m for m in d.features if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 128, 256, 256]
    assert all(c.kernel_size == (4, 4) and c.stride == (2, 2) for c in convs)
    assert convs[0].in_channels == 2
    assert isinstance(d.features[1], nn.LeakyReLU)  # no BatchNorm after the first conv
    assert sum(isinstance(m, nn.BatchNorm2d) for m in d.features) == 3


def test_build_discriminator_patch_and_missing_recognizer(smoke):
    assert set(DISCRIMINATORS) == {"patch", "dual_modal"}
    assert isinstance(build_discriminator(smoke.discriminator), PatchDiscriminator)
    cfg = load_config(profile="smoke", overrides=["discriminator.name=dual_modal"])
    with pytest.raises(ValueError, match="needs a recognizer"):
        build_discriminator(cfg.discriminator)


@pytest.mark.parametrize("text_input", ["probs", "features"])
def test_dual_modal_text_branch_reaches_the_image_and_hides_the_recognizer(text_input):
    cfg = load_config(profile="smoke", overrides=["discriminator.name=dual_modal",
                                                   f"discriminator.text_input={text_input}",
                                                   "discriminator.text_weight=0.5"])
    rec = small_recognizer()
    d = build_discriminator(cfg.discriminator, recognizer=rec)
    assert isinstance(d, DualModalDiscriminator)
    assert d.branch_weights == {"image": 1.0, "text": 0.5}

    rec_params = {id(p) for p in rec.parameters()}
    assert rec_params.isdisjoint(id(p) for p in d.parameters())
    assert not any(k.startswith(("_reader", "recognizer")) for k in d.state_dict())
    assert len(d.state_dict()) == len(PatchDiscriminator(0.125).state_dict()) + len(d.text.state_dict())

    candidate = torch.rand(2, 1, 32, 256, requires_grad=True)
    degraded = torch.rand(2, 1, 32, 256)
    before = [p.detach().clone() for p in rec.parameters()]
    d.train()  # must not put the recognizer back in training mode
    assert not rec.training
    scores = d(candidate, degraded)
    assert scores["image"].shape == (2, 1, 2, 16)
    assert scores["text"].shape == (2, 1)

    scores["text"].sum().backward()
    assert candidate.grad is not None and candidate.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in rec.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, rec.parameters()))


def test_dual_modal_text_score_depends_only_on_the_candidate():
    cfg = load_config(profile="smoke", overrides=["discriminator.name=dual_modal"])
    d = build_discriminator(cfg.discriminator, recognizer=small_recognizer()).eval()
    cand = torch.rand(1, 1, 32, 256)
    a = d(cand, torch.zeros_like(cand))
    b = d(cand, torch.ones_like(cand))
    assert torch.equal(a["text"], b["text"])
    assert not torch.equal(a["image"], b["image"])


# ------------------------------------------------------------------------------ recognizers
@pytest.mark.parametrize("name", ["crnn", "crnn_lstm"])
@pytest.mark.parametrize("size", [(32, 256), (128, 1024)])
def test_recognizer_logits_taps_and_frames(name, size):
    h, w = size
    cfg = RecognizerConfig(name=name, width=0.25, rnn_hidden=16, rnn_layers=2)
    rec = build_recognizer(cfg, NUM_CLASSES, h)
    assert isinstance(rec, RECOGNIZERS[name])
    with torch.no_grad():
        out = rec(torch.rand(2, 1, h, w), taps=rec.TAPS)
    assert isinstance(out, RecognizerOutput)
    assert out.logits.shape == (w // 4, 2, NUM_CLASSES)  # T = W/4 >= 2*max_chars+1
    assert set(out.features) == set(rec.TAPS)
    assert out.features["cnn_last"] is out.features["cnn5"]
    assert out.features["rnn"].shape == (w // 4, 2, 32)
    for tap, feat in out.features.items():
        assert feat.shape[1 if feat.dim() == 4 else 2] == rec.tap_channels[tap], tap
    assert out.features["cnn_last"].shape[-2:] == (h // 8, w // 4)


def test_recognizer_returns_only_requested_taps_and_rejects_unknown():
    rec = small_recognizer()
    assert rec(torch.rand(1, 1, 32, 64)).features == {}
    assert set(rec(torch.rand(1, 1, 32, 64), taps=("cnn2",)).features) == {"cnn2"}
    with pytest.raises(ValueError, match="cnn_last"):
        rec(torch.rand(1, 1, 32, 64), taps=("cnn9",))


def test_architectures_differ():
    gated, plain = small_recognizer("crnn"), small_recognizer("crnn_lstm")
    assert isinstance(gated, GatedCRNN) and isinstance(gated.rnn, nn.GRU)
    assert isinstance(plain, CRNNLSTM) and isinstance(plain.rnn, nn.LSTM)


def test_recognizer_normalises_its_input():
    rec = small_recognizer()
    assert torch.equal(rec.normalize(torch.tensor([0.0, 0.5, 1.0])), torch.tensor([-1.0, 0.0, 1.0]))


def test_to_frames_is_a_real_transpose():
    feat = torch.arange(2 * 3 * 2 * 5, dtype=torch.float32).reshape(2, 3, 2, 5)  # (B,C,H,W)
    frames = to_frames(feat)
    assert frames.shape == (5, 2, 6)
    for t in range(5):
        for b in range(2):
            assert torch.equal(frames[t, b], feat[b, :, :, t].flatten())
    # The ERB bug, a memory reinterpretation, gives a different (scrambled) sequence.
    assert not torch.equal(frames, feat.reshape(5, 2, 6))


@pytest.mark.parametrize("name", ["crnn", "crnn_lstm"])
def test_recognizer_reads_width_as_time(name):
    """A dark column at x changes only the frames near x/4 fed to the RNN (real permute)."""
    rec = small_recognizer(name).eval()
    seen = {}
    rec.rnn.register_forward_pre_hook(lambda m, args: seen.__setitem__("seq", args[0].detach()))
    line = torch.ones(1, 1, 32, 256)
    with torch.no_grad():
        rec(line)
        base = seen["seq"]
        marked = line.clone()
        marked[..., 128:130] = 0.0
        rec(marked)
    changed = (seen["seq"] - base).abs().amax(dim=(1, 2)) > 1e-6   # (T,)
    frames = changed.nonzero().flatten().tolist()
    assert 32 in frames
    assert min(frames) >= 32 - 16 and max(frames) <= 32 + 16, frames


def test_greedy_decode_collapses_repeats_and_drops_blanks():
    class Chars:
        chars = list("abc")

        def decode(self, ids):
            return "".join(self.chars[i - 1] for i in ids)

    best = [[1, 1, 0, 1, 2, 2, 0, 0, 3], [0, 0, 0, 0, 0, 0, 0, 0, 0]]  # per line, per frame
    logits = torch.full((9, 2, 4), -5.0)
    for b, row in enumerate(best):
        for t, k in enumerate(row):
            logits[t, b, k] = 5.0
    assert greedy_decode(logits, Chars()) == ["aabc", ""]


def test_freeze_keeps_eval_and_passes_gradients():
    rec = small_recognizer()
    frozen = freeze(rec)
    assert isinstance(frozen, FrozenRecognizer) and freeze(frozen) is frozen
    parent = nn.ModuleDict({"r": frozen})
    parent.train()
    assert not frozen.training and not rec.training
    assert all(not m.training for m in rec.modules())
    assert frozen.TAPS == rec.TAPS and frozen.num_classes == NUM_CLASSES
    x = torch.rand(1, 1, 32, 64, requires_grad=True)
    frozen(x).logits.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in rec.parameters())


def test_frozen_recognizer_under_autocast_gives_float32_scores_and_gradients():
    """Autocast (bf16 on the GPU; here on the CPU) must not break the frozen reading path."""
    rec = freeze(small_recognizer())
    x = torch.rand(1, 1, 32, 64, requires_grad=True)
    with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16):
        logits = rec(x).logits
    assert logits.dtype == torch.float32
    logits.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_recognizer_rejects_bad_construction():
    with pytest.raises(ValueError, match="blank"):
        build_recognizer(RecognizerConfig(), 1, 32)
    with pytest.raises(ValueError, match="multiple of 16"):
        build_recognizer(RecognizerConfig(), 10, 40)
