"""The held-out reader's training recipe: line augmentation, the cosine schedule, its own length."""

from __future__ import annotations

import pytest
import torch

from docrestore import config as C
from docrestore.data.augment import augment_lines
from docrestore.training.recognizer import learning_rate, role_config


def _line(b=6, h=32, w=128):
    x = torch.ones(b, 1, h, w)
    x[:, :, 12:20, 20:100] = 0.0  # a dark stroke band in the middle of each line
    return x


def test_augmented_lines_keep_shape_range_and_ink_and_follow_their_generator():
    x = _line()
    a = augment_lines(x, torch.Generator().manual_seed(3))
    b = augment_lines(x, torch.Generator().manual_seed(3))
    c = augment_lines(x, torch.Generator().manual_seed(4))
    assert a.shape == x.shape and a.min() >= 0 and a.max() <= 1
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert not torch.allclose(a, x, atol=0.05)  # something was varied
    # ink stays ink and paper stays paper: the stroke is still much darker than the margins
    ink = a[:, :, 14:18, 40:80].mean()
    paper = torch.cat([a[:, :, :, :8].flatten(), a[:, :, :, -8:].flatten()]).mean()
    assert paper - ink > 0.4
    # the global random stream is not touched (reproducible runs draw from it elsewhere)
    torch.manual_seed(0)
    before = torch.rand(3)
    torch.manual_seed(0)
    augment_lines(x, torch.Generator().manual_seed(5))
    assert torch.equal(torch.rand(3), before)


def test_augment_refuses_colour_or_unbatched_input():
    with pytest.raises(ValueError, match=r"\(B,1,H,W\)"):
        augment_lines(torch.ones(2, 3, 32, 64), torch.Generator())


def test_cosine_schedule_warms_up_then_decays_to_zero():
    tc = C.RecognizerTrainConfig(lr=0.01, schedule="cosine", warmup=10)
    lr = learning_rate(tc, total=100)
    assert lr(0) == pytest.approx(0.001, rel=0.02)
    assert lr(9) == pytest.approx(0.01 * 0.5 * (1 + torch.cos(torch.tensor(torch.pi * 0.09)).item()))
    assert lr(50) == pytest.approx(0.005)
    assert lr(100) == pytest.approx(0.0, abs=1e-12)
    assert learning_rate(C.RecognizerTrainConfig(lr=0.01), total=100)(77) == 0.01


def test_reader_has_its_own_length_and_idle_keys_are_refused():
    cfg = C.load_config(profile="smoke", overrides=["eval.reader_steps=123", "eval.reader_width=0.75",
                                                    "eval.reader_rnn_hidden=24", "eval.reader_schedule=cosine",
                                                    "eval.reader_augment=augmented"])
    reader, loss = role_config(cfg, "reader"), role_config(cfg, "loss")
    assert reader.recognizer_train.max_steps == 123
    assert (reader.recognizer_train.schedule, reader.recognizer_train.augment) == ("cosine", True)
    assert (loss.recognizer_train.schedule, loss.recognizer_train.augment) == ("constant", False)
    assert (reader.recognizer.width, reader.recognizer.rnn_hidden) == (0.75, 24)
    assert loss.recognizer_train.max_steps == cfg.recognizer_train.max_steps
    assert (loss.recognizer.width, loss.recognizer.rnn_hidden) == (cfg.recognizer.width, cfg.recognizer.rnn_hidden)
    with pytest.raises(C.ConfigError, match="recognizer_train.warmup"):
        C.load_config(profile="smoke", overrides=["recognizer_train.warmup=5"])
    with pytest.raises(C.ConfigError, match="eval.reader_steps"):
        C.load_config(profile="smoke", overrides=["eval.reader_steps=5", "eval.reader=x.pt"])


@pytest.mark.parametrize("profile", ["quick", "full"])
def test_paper_lines_are_long_enough_for_wer_and_fit_the_ctc_frames(profile):
    d = C.load_config(profile=profile).data
    assert (d.min_words + d.max_words) / 2 >= 4  # WER over 2-word lines says little
    assert 2 * d.max_chars + 1 <= d.width // 4  # the recognizers' T = W/4 CTC frames
    assert d.n_reader > 0 and d.heldout_fonts  # the reader can read the unseen hands


def test_making_the_reader_never_reads_a_test_line(tmp_path, smoke_dataset, monkeypatch):
    """The reader's checkpoint is chosen on validation CER (docs/methods.md): pretraining it opens
    no test line at all."""
    from docrestore import runs as R
    from docrestore.data.dataset import LineDataset
    from docrestore.training.recognizer import pretrain

    read = {}
    original = LineDataset.__getitem__

    def spy(self, i):
        read[self.split] = read.get(self.split, 0) + 1
        return original(self, i)

    monkeypatch.setattr(LineDataset, "__getitem__", spy)
    cfg = C.load_config(profile="smoke", overrides=[
        f"runs_dir={tmp_path}/runs", f"data.root={smoke_dataset.parent}", "tracking.enabled=false",
        "eval.reader_steps=2", "recognizer_train.val_every=1"])
    rc = role_config(cfg, "reader")
    result = pretrain(rc, R.start_run(rc, "pretrain"))
    assert result["steps"] == 2 and read.get("val", 0) > 0 and read.get("train", 0) > 0
    assert "test" not in read
