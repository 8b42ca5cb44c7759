"""Does fitting the text size help? Restore real DIBCO pages at native scale and at the estimated
scale with one checkpoint, binarise both outputs (fixed threshold 0.5) and score them against the
ground truth (DIBCO PSNR and F-measure, evaluation/metrics.py).

    python benchmarks/eval_text_height.py --checkpoint runs/<run>/best_val_cer.pt \\
        --dibco ../shared/data/dibco [--out results.json] [--limit N] [--every N] [--min-scales 0.5 0.35]

``--min-scales``: also score ``auto`` with the shrink limited to each factor (restore.min_scale).

Pages: every ``<SET>_<ID>_source.png`` with its ``_target.png`` (ink 0, paper 255) in the folder.
Prints one line per page and the means; ``--out`` writes them as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from docrestore import checkpoint as CK
from docrestore import device as D
from docrestore.evaluation.metrics import binarize, fmeasure, psnr_binary
from docrestore.restore import scale as S
from docrestore.restore.cli import resolve_restore_config
from docrestore.restore.io import read_image
from docrestore.restore.runtime import onnx_for
from docrestore.restore.tiling import restore_scaled


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--dibco", default="../shared/data/dibco")
    ap.add_argument("--out", default="")
    ap.add_argument("--limit", type=int, default=0, help="first N pages only (0 = all)")
    ap.add_argument("--every", type=int, default=1, help="every N-th page (a spread over all years)")
    ap.add_argument("--min-scales", type=float, nargs="*", default=[],
                    help="also score auto with the shrink limited to each factor (restore.min_scale)")
    args = ap.parse_args(argv)
    sources = sorted(Path(args.dibco).glob("*_source.png"))
    sources = sources[::args.every]
    if args.limit:
        sources = sources[:args.limit]
    if not sources:
        print(f"no *_source.png pages in {args.dibco}", file=sys.stderr)
        return 2
    device = D.pick_device("cpu")
    generator, ckpt_cfg = CK.load_generator(args.checkpoint, device)
    restore_cfg, _ = resolve_restore_config(ckpt_cfg, ckpt_cfg)
    trained = S.trained_text_height(ckpt_cfg)
    # ONNX Runtime, as restore uses on a CPU (checked against PyTorch within 1e-3)
    model = onnx_for(generator, (restore_cfg.tile_height, restore_cfg.tile_width))
    print(f"checkpoint {args.checkpoint}: trained text height {trained:.1f} px, tile "
          f"{restore_cfg.tile_height} x {restore_cfg.tile_width}")
    modes = [("off", S.MIN_FACTOR), ("auto", S.MIN_FACTOR)] + [(f"auto>={m:g}", m) for m in args.min_scales]
    rows = []
    for src in sources:
        img = read_image(src)
        gt = read_image(src.with_name(src.name.replace("_source", "_target"))) < 0.5
        row = {"page": src.stem.replace("_source", "")}
        done: dict[float, dict] = {}  # factor -> scores: a limit that changes nothing is not rerun
        for mode, low in modes:
            t0 = time.perf_counter()
            d = S.decide(img, "off" if mode == "off" else "auto", trained, min_factor=low)
            if d.factor not in done:
                out = restore_scaled(model, img, device, restore_cfg, d.factor)
                pred = binarize(out, 0.5)
                done[d.factor] = {"psnr": psnr_binary(pred, gt), "f": fmeasure(pred, gt),
                                  "seconds": time.perf_counter() - t0}
            row[mode] = {**done[d.factor], "factor": d.factor, "estimated": d.estimated}
        rows.append(row)
        print(f"{row['page']:22s} " + " | ".join(
            f"{m} {row[m]['psnr']:6.2f} dB F {row[m]['f']:5.1f} x{row[m]['factor']:.3f}" for m, _ in modes)
            + f" (est {row['auto']['estimated']})", flush=True)
    summary = {m: {k: float(np.mean([r[m][k] for r in rows])) for k in ("psnr", "f", "seconds")}
               for m, _ in modes}
    for m, _ in modes[1:]:
        summary[m]["better_psnr_pages_than_off"] = int(sum(r[m]["psnr"] > r["off"]["psnr"] for r in rows))
        summary[m]["worse_psnr_pages_than_off"] = int(sum(r[m]["psnr"] < r["off"]["psnr"] for r in rows))
    summary["pages"] = len(rows)
    summary["trained_text_height"] = trained
    print(json.dumps(summary, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps({"checkpoint": str(args.checkpoint), "threshold": 0.5,
                                              "pages_used": [r["page"] for r in rows],
                                              "summary": summary, "pages": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
