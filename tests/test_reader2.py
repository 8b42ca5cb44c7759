"""The second held-out reader: a fully convolutional CTC recognizer (no recurrent layer), trained
with the first reader's recipe and its own seed, whose CER/WER the evaluation records beside the
first reader's (cer_reader2 / wer_reader2) and the main and reader tables show. Tiny models only."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from docrestore import config as C
from docrestore.data import loading
from docrestore.evaluation import evaluate as EV
from docrestore.figures import tables
from docrestore.models.generator import build_generator
from docrestore.models.recognizer import ConvCTC, build_recognizer
from docrestore.training.recognizer import role_config

from test_stats_family import _entry, _seeded

TINY = C.RecognizerConfig(name="conv_ctc", width=0.25, rnn_hidden=8, rnn_layers=1, dropout=0.0)


def test_conv_ctc_reads_lines_without_a_recurrent_layer():
    model = build_recognizer(TINY, num_classes=5, height=16)
    assert isinstance(model, ConvCTC)
    assert not any(isinstance(m, nn.RNNBase) for m in model.modules())
    out = model(torch.rand(2, 1, 16, 64), taps=("cnn_last", "tcn"))
    assert out.logits.shape == (16, 2, 5)  # T = W / 4 frames
    assert out.features["tcn"].shape == (16, 2, model.tap_channels["tcn"])
    assert out.features["cnn_last"].shape[1] == model.tap_channels["cnn_last"]
    with pytest.raises(ValueError, match="unknown recognizer tap"):
        model(torch.rand(1, 1, 16, 64), taps=("rnn",))


def test_conv_ctc_learns_a_batch():
    torch.manual_seed(0)
    model = build_recognizer(TINY, num_classes=4, height=16)
    x = torch.ones(2, 1, 16, 64)
    x[0, :, 4:12, 8:16] = 0.0  # two different "lines": ink in different places
    x[1, :, 4:12, 40:56] = 0.0
    targets, lengths = torch.tensor([1, 2, 3, 3]), torch.tensor([2, 2])
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(60):
        logp = model(x).logits.log_softmax(2)
        loss = nn.functional.ctc_loss(logp, targets, torch.full((2,), logp.shape[0]), lengths)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert losses[-1] < 0.3 * losses[0]


def test_the_second_reader_keeps_the_first_readers_recipe_with_its_own_arch_and_seed():
    cfg = C.load_config(profile="smoke", overrides=["eval.reader2_arch=conv_ctc", "eval.reader_steps=77",
                                                    "eval.reader2_seed=99"])
    first, second = role_config(cfg, "reader"), role_config(cfg, "reader2")
    assert (second.recognizer.name, second.seed) == ("conv_ctc", 99)
    assert first.recognizer.name == cfg.eval.reader_arch and first.seed == cfg.eval.reader_seed
    assert second.recognizer_train == first.recognizer_train and second.recognizer_train.max_steps == 77
    with pytest.raises(C.ConfigError, match="eval.reader2_arch"):
        role_config(C.load_config(profile="smoke"), "reader2")


def test_evaluation_records_the_second_readers_cer_beside_the_first(tmp_path, smoke_dataset):
    cfg = C.load_config(profile="smoke", overrides=[f"data.root={smoke_dataset.parent}", f"runs_dir={tmp_path}",
                                                    "tracking.enabled=false", "eval.lines=6"])
    data = loading.open_data(cfg)
    torch.manual_seed(0)
    generator = build_generator(cfg.generator).eval()
    n = len(data.charset.chars) + 1
    reader = build_recognizer(TINY, n, cfg.data.height).eval()
    silent = build_recognizer(TINY, n, cfg.data.height).eval()
    with torch.no_grad():  # reads nothing: the blank wins every frame
        silent.classifier.weight.zero_()
        silent.classifier.bias.fill_(-10.0)
        silent.classifier.bias[0] = 10.0
    dev = torch.device("cpu")
    same = EV.evaluate_generator(cfg, generator, data, reader, reader, dev, reader2=reader)
    assert same["per_line"]["cer_reader2"] == same["per_line"]["cer"]  # the column is the given reader's
    assert same["references"]["otsu"]["wer_reader2"] == same["references"]["otsu"]["wer"]
    other = EV.evaluate_generator(cfg, generator, data, reader, reader, dev, reader2=silent)
    assert other["per_line"]["cer_reader2"] == [1.0] * 6  # every character lost
    assert other["per_line"]["cer"] == same["per_line"]["cer"]
    plain = EV.evaluate_generator(cfg, generator, data, reader, reader, dev, with_references=False)
    assert "cer_reader2" not in plain["per_line"]


def test_the_main_and_reader_tables_show_the_second_readers_columns_when_recorded():
    def with_reader2(e, cer2):
        for name, v in (("cer_reader2", cer2), ("wer_reader2", 0.6)):
            e["metrics"][name] = {"mean": v, "lo": v, "hi": v, "n": 3}
        e["reader2"] = {"arch": "conv_ctc", "seed": 4321, "checkpoint": "x.pt"}
        return e

    base = _seeded("baseline_s1", [0.50, 0.52, 0.55])
    base["references"] = {k: dict(base["metrics"]) for k in ("degraded", "otsu", "sauvola")}
    arm = _entry("anneal", 0, 0.3, group="annealing", config={"weight": 2.0})
    assert "2nd reader" not in tables.main_table([base, arm])
    text = tables.main_table([with_reader2(base, 0.45), with_reader2(arm, 0.25)])
    assert "CER, 2nd reader" in text and "conv\\_ctc" in text and "25.00" in text
    assert "WER, 2nd reader" in tables.reader_table([base, arm])


def test_the_paper_pipeline_pretrains_the_second_reader_beside_the_first(monkeypatch):
    from docrestore.study import paper
    from docrestore.training import recognizer as TR

    roles = []
    monkeypatch.setattr(TR, "ensure_recognizer", lambda cfg, role: roles.append(role) or f"{role}.pt")
    assert paper.ensure_reader("smoke") == "reader.pt" and roles == ["reader"]  # off by default
    real = C.load_config
    monkeypatch.setattr(C, "load_config", lambda *a, **k: real(None, ["eval.reader2_arch=conv_ctc"],
                                                               profile=k.get("profile")))
    roles.clear()
    assert paper.ensure_reader("smoke") == "reader.pt" and roles == ["reader", "reader2"]
