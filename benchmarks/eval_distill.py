"""A distilled student next to its teacher: PSNR on the synthetic test split and the DIBCO page scores.

    python benchmarks/eval_distill.py --teacher T.pt --student S.pt [--lines 300] [--dibco DIR]

Synthetic: mean PSNR (dB) of each generator's restorations of the first ``--lines`` test lines of
the teacher's data (the dataset must exist: docrestore synth with the teacher's config).
DIBCO: the pages of the teacher config's ``pages.test_sets`` (DIBCO 2017 by default; ``--split val``:
the validation pages held out of the training sets, where a design may be chosen) restored in
``pages.tile`` tiles and scored as ``evaluation/dibco.py`` does (F-measure, pseudo-F, PSNR of the
binarised page, DRD); nothing is tuned here. Both run on ONNX Runtime (checked against PyTorch
within 1e-3 first); ``--runtime torch`` uses PyTorch. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch

from docrestore import checkpoint as CK

sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
from bench_restore import lines_psnr, test_lines  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--teacher", required=True)
    ap.add_argument("--student", required=True)
    ap.add_argument("--lines", type=int, default=300, help="synthetic test lines (default 300)")
    ap.add_argument("--dibco", default="", help="page folder (default: the teacher config's pages.root)")
    ap.add_argument("--no-pages", action="store_true", help="skip the DIBCO pages")
    ap.add_argument("--runtime", choices=("onnx", "torch"), default="onnx")
    ap.add_argument("--split", choices=("test", "val"), default="test",
                    help="pages scored: test (pages.test_sets) or val (the held-out training pages, "
                         "where a student design may be chosen)")
    args = ap.parse_args(argv)
    cpu = torch.device("cpu")
    from docrestore.data.pages import open_pages
    from docrestore.evaluation.dibco import evaluate_generator
    from docrestore.restore.runtime import onnx_for

    out = {}
    pages = None
    for label in ("teacher", "student"):
        path = getattr(args, label)
        g, cfg = CK.load_generator(path, cpu)
        tile = (cfg.pages.tile,) * 2 if cfg.pages.tile else (cfg.data.height, cfg.data.width)
        model = onnx_for(g, tile) if args.runtime == "onnx" else g
        lines, why = test_lines(cfg, args.lines)
        res = {"checkpoint": path, "generator": cfg.generator.name, "width": cfg.generator.width,
               "synthetic_test_psnr": lines_psnr(model, lines, cpu) if lines else why,
               "synthetic_test_lines": len(lines[0]) if lines else 0}
        if not args.no_pages:
            if pages is None:
                if args.dibco:
                    cfg.pages.root = args.dibco
                pages = getattr(open_pages(cfg), args.split)
            t0 = time.perf_counter()
            with torch.inference_mode():
                per_page, _ = evaluate_generator(model, pages, cfg, cpu, crops=0)
            res["dibco_split"] = args.split
            res["dibco"] = {k: float(np.mean(v)) for k, v in per_page.items()}
            res["dibco_pages"] = [p.name for p in pages]
            res["dibco_seconds"] = time.perf_counter() - t0
        out[label] = res
        print(f"{label}: {json.dumps(res)[:400]}", file=sys.stderr, flush=True)
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
