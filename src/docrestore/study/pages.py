"""The DIBCO page benchmark as recipes: the arms, train + evaluate + page-ledger entry, and the
functions notebook 05 and `make paper-figures` call.

    from docrestore.study import pages
    entries = pages.run_pages(profile="quick", arms=["supervised", "cgan"])   # notebook 05
    pages.page_outputs(entries)            # paper/tables/quick/dibco.tex + paper/figures/quick/dibco_crops.*

:data:`PAGES` decides, announces, runs-or-reuses and tabulates (:mod:`.benchmark`).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from .. import config as C
from .. import runs as R
from ..evaluation import dibco
from . import reuse as RU
from .benchmark import Benchmark, Experiment, arm_config, auto_profile, entry_name, parameter_overrides

log = logging.getLogger("docrestore")

# Pages have no transcription: no CTC, no recognizer updates; the best checkpoint is picked on the
# validation pages' PSNR.
PAGE_COMMON = ("train.ctc.weight=0", "train.ctc.schedule=constant", "train.scenario=frozen",
               "train.early_stop_metric=val/psnr", "train.patience=0")
ARMS = {
    "supervised": ("supervised U-Net (pixel loss, no D)", ("train.adv_weight=0",)),
    "cgan": ("cGAN (λ=0), page mode", ()),  # ERB's architecture without its CTC term
    "feature": ("feature loss w=5 (cnn_last)", ("train.feature_loss.weight=5", "train.feature_loss.taps=[cnn_last]")),
    "dual_modal": ("dual-modal D", ("discriminator.name=dual_modal",)),
}


def page_experiment(arm: str, test_sets: list[str] | tuple = ("DIBCO2017",)) -> Experiment:
    if arm not in ARMS:
        raise ValueError(f"page arm must be one of {sorted(ARMS)}, got {arm!r}")
    method, over = ARMS[arm]
    return Experiment(f"pages_{arm}_{'-'.join(test_sets)}", method, "pages", PAGE_COMMON + over)


def page_overrides(train_sets=None, test_sets=None, init_from: str | None = None, steps: int | None = None,
                   root: str | None = None, overrides=()) -> list[str]:
    """The overrides notebook 05's parameters stand for (None = the profile's value)."""
    return parameter_overrides({"pages.train_sets": train_sets, "pages.test_sets": test_sets,
                                "train.init_from": init_from, "pages.max_steps": None if steps is None else int(steps),
                                "pages.root": root}, overrides)


def make_page_config(exp: Experiment, profile: str | None = None, seed: int = 0, overrides=()) -> C.Config:
    """The arm's config with the page budget (pages.max_steps) applied."""
    from ..training.pages import apply_page_budget

    return apply_page_budget(arm_config(exp, profile, seed, overrides))


def run_page_experiment(exp: Experiment, profile: str | None = None, seed: int = 0, overrides=(),
                        splits=None) -> dict:
    """Train ``exp`` on the training pages, evaluate its best checkpoint on the test pages (with the
    classical references) and write its page-ledger entry."""
    from .. import checkpoint as CK
    from .. import device as D
    from ..data.pages import open_pages
    from ..fingerprint import page_fingerprint
    from ..training.pages import PageTrainer

    cfg = make_page_config(exp, profile, seed, overrides)
    R.setup_logging()
    splits = splits or open_pages(cfg)
    # What this code does with this config, recorded in the entry (the reuse rule compares it).
    behaviour = page_fingerprint(cfg)
    run = R.start_run(cfg, "pages")
    t0 = time.time()
    result = PageTrainer(cfg, run, splits).fit()
    train_s = time.time() - t0
    result.update(git_commit=run.git["commit"], git_dirty=run.git["dirty"])
    device = D.pick_device(cfg.device)
    generator, _ = CK.load_generator(result["best"], device)
    t1 = time.time()
    threshold, chosen = 0.5, None
    if cfg.pages.binarize == "val":  # chosen on the validation pages before a test page is read
        threshold, chosen = dibco.choose_threshold(generator, splits.val, cfg, device)
        log.info("%s: threshold %.2f chosen on the validation pages (mean F-measure by threshold: %s)",
                 exp.name, threshold, chosen)
    per_page, shown = dibco.evaluate_generator(generator, splits.test, cfg, device, threshold=threshold)
    references = dibco.evaluate_references(splits.test, cfg.pages.references)
    eval_s = time.time() - t1
    name = entry_name(exp, seed)
    samples = dibco.save_crops(shown, cfg, name)
    entry = dibco.make_page_entry(
        experiment=name, method=exp.method, cfg=cfg, splits=splits, per_page=per_page, references=references,
        train_result=result, device=D.describe(device), samples=samples,
        extra={"steps": result["steps"], "train_seconds": round(train_s, 1), "eval_seconds": round(eval_s, 1),
               "best_checkpoint": C.project_relative(result["best"]), "init_from": cfg.train.init_from,
               "threshold": None if cfg.pages.binarize == "otsu" else threshold, "threshold_val_fm": chosen,
               "flip_vote": cfg.pages.flip_vote, "fingerprint": behaviour})
    path = dibco.write_page_entry(entry, cfg.eval.ledger_dir)
    run.write_json("page_entry.json", {k: v for k, v in entry.items() if k not in ("per_page", "references_per_page")})
    m = entry["metrics"]
    log.info("%s: FM %.2f, PSNR %.2f dB, DRD %.2f on %s (train %.0f s, eval %.0f s); ledger %s", name,
             m["fmeasure"]["mean"], m["psnr"]["mean"], m["drd"]["mean"], ",".join(cfg.pages.test_sets),
             train_s, eval_s, path)
    return entry


def _row_binarisation(entry) -> str:
    from ..figures.dibco_outputs import row_binarisation

    return row_binarisation(entry)


PAGES = Benchmark(
    name="pages", configure=make_page_config, folder=dibco.pages_dir, fields=dibco.PAGE_FIELDS,
    train=run_page_experiment, columns=dibco.PAGE_METRICS, digits=2,
    extra_columns=lambda e: {"binarised": _row_binarisation(e), "steps": e.get("steps"),
                             "train_s": e.get("train_seconds"), "run": (e["mlflow_run_id"] or "")[:8]},
    reference_labels=dibco.REFERENCE_LABELS, behaviour=RU.page_fingerprint, data_hash=RU.local_page_data_hash)


def run_pages(profile: str | None = None, arms=("supervised", "cgan"), train_sets=None, test_sets=None,
              init_from: str | None = None, steps: int | None = None, root: str | None = None,
              seed: int = 0, overrides=(), reuse: bool = True) -> list[dict]:
    """Notebook 05: each arm fine-tuned (or trained from scratch) on the training pages and
    measured on the test pages; one page-ledger entry per arm. With ``pages.root=auto`` and no
    pages at ../shared/data/dibco it says where the data comes from and returns no entries."""
    from ..data.pages import data_hint, open_pages

    over = page_overrides(train_sets, test_sets, init_from, steps, root, overrides)
    cfg = C.load_config(None, over, profile=auto_profile(profile))
    if cfg.pages.root in ("", "auto") and not data_available("auto"):
        print(data_hint(), flush=True)
        return []
    exps = [page_experiment(a, cfg.pages.test_sets) for a in C.override_list(arms) if a]
    PAGES.announce(exps, profile, seed, over, reuse)
    splits = open_pages(cfg)  # read once, shared by the arms
    return [PAGES.run_or_reuse(e, profile, seed, over, reuse, splits=splits) for e in exps]


results_table = PAGES.table


def published_table(test_sets=None):
    """The published rows of the DIBCO table (cited from their papers, never measured here),
    grouped by their own test set, ``test_sets`` (None: pages.test_sets) first; None where a paper
    does not report the measure. Notebook 05 shows it beside the measured rows."""
    import pandas as pd

    test_sets = test_sets or C.PagesConfig().test_sets
    from ..figures.dibco_outputs import published_groups, set_label

    rows = [{"test set": test, "method": p["method"], **{m: p.get(m) for m in dibco.PAGE_METRICS},
             "source": p["source"]}
            for test, group in published_groups([set_label(s) for s in test_sets]) for p in group]
    return pd.DataFrame(rows).set_index(["test set", "method"])


def page_outputs(entries: list[dict]) -> list[Path]:
    """paper/tables/<profile>/dibco.tex and paper/figures/<profile>/dibco_crops.* from the page ledger of the entries'
    profile, for their test sets (nothing when there are no entries)."""
    from ..figures.dibco_outputs import write_outputs

    if not entries:
        print("(no page entries: no DIBCO table)")
        return []
    e = entries[0]
    return write_outputs(e["config"]["eval"]["ledger_dir"], e["profile"], test_sets=e["test_sets"])


def show_outputs(paths: list[Path]) -> None:
    """Display the PNG figures among ``paths`` (notebook 05) and name the table."""
    from IPython.display import Image, display

    for p in paths:
        if p.suffix == ".png":
            display(Image(filename=str(p)))
        elif p.suffix == ".tex":
            print(f"table: {p}")


def data_available(root: str = "auto") -> bool:
    from ..data.pages import resolve_root

    return resolve_root(root).is_dir()
