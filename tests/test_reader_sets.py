"""The reader's CER per set of a manifest (python -m docrestore.evaluation.reader)."""

from __future__ import annotations

import json
import shutil

import pytest

from docrestore import config as C
from docrestore.data import manifest as M
from docrestore.evaluation import reader as RD


def test_cer_by_set_splits_the_corpus_cer_and_matches_the_trainers(tmp_path, smoke_dataset, smoke_recognizer):
    from docrestore.data.dataset import LineDataset
    from docrestore.training.recognizer import evaluate_cer

    # The smoke lines with a set per font, as an ingest of several collections writes them.
    root = tmp_path / "sets"
    shutil.copytree(smoke_dataset.parent, root)
    records = M.read_manifest(root / M.MANIFEST)
    for r in records:
        r["set"] = r["font"]
    M.write_manifest(root / M.MANIFEST, records)
    report = RD.cer_by_set(smoke_recognizer, root / M.MANIFEST, "test")
    test = [r for r in records if r["split"] == "test"]
    sets = sorted({r["set"] for r in test})
    assert [k for k in report if not k.startswith("_")] == sets + ["all"]
    assert sum(report[s]["lines"] for s in sets) == report["all"]["lines"] == len(test)
    # Corpus CER over all lines = the sets' CERs weighted by their characters.
    weighted = sum(report[s]["cer"] * report[s]["chars"] for s in sets) / report["all"]["chars"]
    assert report["all"]["cer"] == pytest.approx(weighted)
    # ... and the trainer's own evaluation of the same reader on the same lines.
    from docrestore.checkpoint import load_recognizer
    import torch

    model, chars, cfg = load_recognizer(smoke_recognizer, torch.device("cpu"))
    from docrestore.data.charset import Charset

    ds = LineDataset(root / M.MANIFEST, "test", cfg.data.height, cfg.data.width, Charset(list(chars)))
    cer, _ = evaluate_cer(model, ds, C.load_config(profile="smoke"), torch.device("cpu"))
    assert report["all"]["cer"] == pytest.approx(cer)
    out = tmp_path / "r.json"
    assert RD.main([str(smoke_recognizer), str(root / M.MANIFEST), "--out", str(out)]) == 0
    assert json.loads(out.read_text())["all"]["cer"] == pytest.approx(cer)
