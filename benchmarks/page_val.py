"""A page recipe measured on the validation pages only (never a test set): train one page arm on
the training pages (the benchmark's split: ``pages.train_sets`` less the validation pages) and
score its best checkpoint on the validation pages, with each test-time choice side by side:
binarisation at 0.5 / Otsu / the threshold chosen on these pages (in-sample, said so), each with
and without the flip vote.

    python benchmarks/page_val.py [--arm cgan] [--checkpoint CKPT] [key=value ...]

``--checkpoint`` skips the training and scores that page checkpoint (it must have been trained
without the validation pages, e.g. a run of this script or a benchmark arm). Prints one JSON
object (run folder, MLflow run id, commit, training seconds, scores per choice).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time

import numpy as np


def score_choices(generator, pages, cfg, device) -> dict:
    from docrestore.evaluation import dibco

    out = {}
    for flip in (False, True):
        c = dataclasses.replace(cfg, pages=dataclasses.replace(cfg.pages, flip_vote=flip))
        t0 = time.time()
        restored = [dibco.restore_page(generator, p.image, c, device) for p in pages]
        seconds = time.time() - t0
        t, by_t = dibco.best_threshold(restored, [p.ink for p in pages])  # in-sample: chosen and scored here
        for how, thr in (("fixed", 0.5), ("otsu", None), ("val", t)):
            per = {m: [] for m in dibco.PAGE_METRICS}
            for r, p in zip(restored, pages):
                for k, v in dibco.page_scores(dibco.binarize_restored(r, how, thr or 0.5), p.ink).items():
                    per[k].append(v)
            key = f"{dibco.threshold_label(how, thr)}{' + flip' if flip else ''}"
            out[key] = {m: round(float(np.mean(v)), 3) for m, v in per.items()}
        out[f"restore_seconds{' + flip' if flip else ''}"] = round(seconds, 1)
        out[f"fm_by_threshold{' + flip' if flip else ''}"] = by_t
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arm", default="cgan")
    ap.add_argument("--checkpoint", default="")
    ap.add_argument("--profile", default="quick")
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args(argv)

    from docrestore import checkpoint as CK
    from docrestore import device as D
    from docrestore import runs as R
    from docrestore.data.pages import open_pages
    from docrestore.evaluation import dibco
    from docrestore.study import pages as P

    cfg = P.make_page_config(P.page_experiment(args.arm), args.profile, 0, args.overrides)
    R.setup_logging()
    splits = open_pages(cfg, load=False)  # the test pages are never loaded
    for p in splits.train + splits.val:
        p.load()
    device = D.pick_device(cfg.device)
    record = {"arm": args.arm, "overrides": args.overrides, "val_pages": [p.name for p in splits.val]}
    ckpt = args.checkpoint
    if not ckpt:
        from docrestore.training.pages import PageTrainer

        run = R.start_run(cfg, "pages-val")
        t0 = time.time()
        result = PageTrainer(cfg, run, splits).fit()
        record.update(run_dir=str(run.dir), mlflow_run_id=result.get("mlflow_run_id"), git=run.git,
                      train_seconds=round(time.time() - t0, 1), steps=result["steps"])
        ckpt = result["best"]
    record["checkpoint"] = str(ckpt)
    generator, _ = CK.load_generator(ckpt, device)
    record["scores"] = score_choices(generator, splits.val, cfg, device)
    print(json.dumps(record, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
