"""How well a reader (a recognizer checkpoint) reads the clean lines of a manifest, per set.

``python -m docrestore.evaluation.reader CHECKPOINT MANIFEST [--split test] [--key clean]``
prints and returns ``{set: {"lines", "chars", "cer", "wer"}}`` plus ``"all"``: corpus CER/WER
(edits over reference characters / words) of greedy CTC decoding, at the checkpoint's line
height and the width given (default: the checkpoint's ``data.width``). ``key=clean`` reads the
clean line where a record has one, else its only image (a real line as scanned).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from .. import checkpoint as CK
from .. import device as D
from ..data import manifest as MF
from ..data.charset import Charset
from ..data.dataset import LineDataset, collate_lines, readable
from ..models.recognizer import greedy_decode
from . import metrics as M


@torch.no_grad()
def cer_by_set(checkpoint: str | Path, manifest: str | Path, split: str = "test", key: str = "clean",
               width: int = 0, device: torch.device | None = None, batch_size: int = 64) -> dict:
    device = device or torch.device("cpu")
    model, chars, cfg = CK.load_recognizer(checkpoint, device)
    model.eval()
    charset = Charset(list(chars))
    data_chars = MF.charset_for(manifest)
    unknown = [c for c in data_chars.chars if c not in chars]
    # Characters the reader never learnt count as errors (it cannot write them), never as a crash.
    lines = LineDataset(manifest, split, cfg.data.height, width or cfg.data.width, data_chars)
    refs: dict[str, list[str]] = {}
    hyps: dict[str, list[str]] = {}
    loader = torch.utils.data.DataLoader(lines, batch_size=batch_size, collate_fn=collate_lines)
    sets = [r.get("set") or "-" for r in lines.records]
    i = 0
    for batch in loader:
        images = readable(batch) if key == "clean" else batch[key]
        with D.autocast(device):
            out = greedy_decode(model(images.to(device)).logits.float(), charset)
        for text, hyp in zip(batch["texts"], out):
            refs.setdefault(sets[i], []).append(text)
            hyps.setdefault(sets[i], []).append(hyp)
            i += 1
    report = {}
    for group in sorted(refs) + ["all"]:
        r = sum(refs.values(), []) if group == "all" else refs[group]
        h = sum(hyps.values(), []) if group == "all" else hyps[group]
        report[group] = {"lines": len(r), "chars": sum(map(len, r)), "cer": M.cer_corpus(r, h),
                         "wer": M.wer_corpus(r, h)}
    report["_meta"] = {"checkpoint": str(checkpoint), "manifest": str(manifest), "split": split, "key": key,
                       "height": cfg.data.height, "width": width or cfg.data.width,
                       "chars_unknown_to_reader": "".join(unknown)}
    return report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m docrestore.evaluation.reader", description=__doc__.split("\n")[0])
    p.add_argument("checkpoint")
    p.add_argument("manifest")
    p.add_argument("--split", default="test", choices=MF.ALL_SPLITS)
    p.add_argument("--key", default="clean", choices=("clean", "degraded"))
    p.add_argument("--width", type=int, default=0)
    p.add_argument("--out", default="", help="also write the report as JSON here")
    args = p.parse_args(argv)
    D.configure_threads()
    report = cer_by_set(args.checkpoint, args.manifest, args.split, args.key, args.width)
    text = json.dumps(report, indent=2, ensure_ascii=False)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
