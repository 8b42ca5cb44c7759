"""The DIBCO page benchmark: page-level scores, classical references, the page ledger, the
LaTeX table and the page-crops figure.

Protocol (docs/metrics.md, "Pages"):
- the generator restores the whole test page with the tiled restorer (tiles = the training patch
  size, overlap ``restore.overlap``); the restored page is binarised with ``pages.binarize``:
  ``fixed`` = ink where the restoration is below 0.5 (the generator is trained towards 0/1 with a
  pixel loss), ``otsu`` = Otsu's threshold of the restored page, ``val`` = one threshold chosen on
  the validation pages (best mean F-measure); each entry records its rule and threshold, each
  table row states it; with ``pages.flip_vote`` each page is restored with its mirror image too
  and the two averaged (ERB's test-time vote);
- F-measure, pseudo-F (the DIBCO 2010 variant: recall on the ground truth's skeleton, plain
  precision), PSNR of the binary images and DRD (NUBN counted as doxapy does) against the ground
  truth, per page; means with bootstrap 95 % intervals over the test pages;
- references: classical binarisers from doxapy (Doxa) with its default parameters, on the same pages.

Page entries live beside the line ledger, in ``<ledger_dir>/<profile>/pages/<experiment>.json``,
with the same provenance fields (profile, run id, commit, device, date, data hash) plus which
sets trained, validated and tested.
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from .. import config as C
from ..files import write_json_atomic
from ..machine import machine_info
from . import metrics as M

PAGE_METRICS = ("fmeasure", "pfmeasure", "psnr", "drd")
PAGE_FIELDS = ("experiment", "method", "group", "profile", "metrics", "per_page", "pages", "references",
               "train_sets", "test_sets", "val_pages", "binarize", "history", "config", "git_commit",
               "git_dirty", "mlflow_run_id", "run_dir", "device", "date", "data_hash", "samples")
REFERENCE_LABELS = {"otsu": "Otsu", "sauvola": "Sauvola", "wolf": "Wolf", "nick": "NICK",
                    "isauvola": "ISauvola", "su": "Su", "niblack": "Niblack", "bernsen": "Bernsen",
                    "gatos": "Gatos", "wan": "WAN", "bataineh": "Bataineh", "trsingh": "TR Singh"}


class PageLedgerError(ValueError):
    """A page ledger entry that lacks a field or holds a non-finite number."""


# ------------------------------------------------------------------------------------ scores
THRESHOLDS = tuple(round(0.05 * k, 2) for k in range(1, 20))  # the grid binarize=val chooses from


def binarize_restored(restored: np.ndarray, how: str = "fixed", threshold: float = 0.5) -> np.ndarray:
    """Ink mask of a restored page: ``fixed`` = below 0.5, ``otsu`` = below Otsu's threshold,
    ``val`` = below ``threshold`` (chosen on the validation pages by :func:`choose_threshold`;
    0.5 while it is not chosen yet, e.g. during training)."""
    if how == "fixed":
        return M.binarize(restored, 0.5)
    if how == "val":
        return M.binarize(restored, threshold)
    if how == "otsu":
        from .references import otsu

        return otsu(np.clip(restored, 0.0, 1.0)) < 0.5
    raise ValueError(f"pages.binarize must be fixed, otsu or val, got {how!r}")


def threshold_label(binarize: str, threshold: float | None = None) -> str:
    """How an entry's restored pages were made binary, for its table row."""
    if binarize == "otsu":
        return "Otsu"
    if binarize == "val" and threshold is not None:
        return f"{threshold:.2f} (val.)"
    return "0.5"


def best_threshold(restored: Sequence[np.ndarray], inks: Sequence[np.ndarray]) -> tuple[float, dict[str, float]]:
    """The threshold of :data:`THRESHOLDS` with the best mean F-measure of ``restored`` pages
    against their ground-truth ``inks``, and the mean F-measure of each threshold."""
    means = {t: float(np.mean([M.fmeasure(M.binarize(r, t), ink) for r, ink in zip(restored, inks)]))
             for t in THRESHOLDS}
    best = max(THRESHOLDS, key=lambda t: (means[t], -abs(t - 0.5)))  # a tie goes to the one nearer 0.5
    return best, {f"{t:.2f}": round(v, 4) for t, v in means.items()}


def choose_threshold(generator, pages, cfg: C.Config, device) -> tuple[float, dict[str, float]]:
    """:func:`best_threshold` of ``generator`` on ``pages`` (the validation pages): what
    ``pages.binarize=val`` uses."""
    restored = [restore_page(generator, p.load().image, cfg, device) for p in pages]
    return best_threshold(restored, [p.ink for p in pages])


def page_scores(pred_ink: np.ndarray, gt_ink: np.ndarray) -> dict[str, float]:
    """F-measure, pseudo-F (DIBCO 2010), PSNR and DRD (doxapy's block count) of one page."""
    return {"fmeasure": M.fmeasure(pred_ink, gt_ink), "pfmeasure": M.pseudo_fmeasure(pred_ink, gt_ink),
            "psnr": M.psnr_binary(pred_ink, gt_ink), "drd": M.drd(pred_ink, gt_ink, nubn="doxa")}


def to_uint8(image: np.ndarray) -> np.ndarray:
    return np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)


def reference_ink(name: str, image: np.ndarray) -> np.ndarray:
    """The ink mask of the classical binariser ``name`` (doxapy, default parameters)."""
    import doxapy

    algos = {k.lower(): v for k, v in doxapy.Binarization.Algorithms.__members__.items()}
    if name not in algos:
        raise ValueError(f"unknown reference binariser {name!r} in pages.references; doxapy offers {sorted(algos)}")
    grey = to_uint8(image)
    out = np.empty_like(grey)
    algo = doxapy.Binarization(algos[name])
    algo.initialize(grey)
    algo.to_binary(out, {})
    return out < 128


def check_references(names: Sequence[str]) -> None:
    import doxapy

    algos = {k.lower() for k in doxapy.Binarization.Algorithms.__members__}
    unknown = [n for n in names if n not in algos]
    if unknown:
        raise C.ConfigError(f"'pages.references' names {unknown}; doxapy offers {sorted(algos)}")
    for must in ("otsu", "sauvola"):
        if must not in names:
            raise C.ConfigError(f"'pages.references' must include {must!r} (the benchmark's reference)")


def crop_box(gt_ink: np.ndarray, side: int) -> tuple[int, int, int, int]:
    """(y, x, h, w) of the ``side``-pixel square holding the most ground-truth ink, on a coarse grid:
    the same place for every method, chosen from the ground truth only."""
    h, w = gt_ink.shape
    ch, cw = min(side, h), min(side, w)
    step = max(8, side // 4)
    integral = np.pad(gt_ink.astype(np.int64).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    best, box = -1, (0, 0, ch, cw)
    for y in range(0, h - ch + 1, step):
        for x in range(0, w - cw + 1, step):
            n = integral[y + ch, x + cw] - integral[y, x + cw] - integral[y + ch, x] + integral[y, x]
            if n > best:
                best, box = int(n), (y, x, ch, cw)
    return box


def cut(img: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    y, x, h, w = box
    return img[y:y + h, x:x + w]


def restore_page(generator, image: np.ndarray, cfg: C.Config, device) -> np.ndarray:
    from ..data.pages import patch_size
    from ..restore.tiling import restore_image

    tile = (cfg.pages.tile, cfg.pages.tile) if cfg.pages.tile else patch_size(cfg)

    def run(img: np.ndarray) -> np.ndarray:
        return restore_image(generator, img, device, tile=tile, overlap=cfg.restore.overlap,
                             batch_size=cfg.restore.batch_size)

    out = run(image)
    if cfg.pages.flip_vote:  # ERB's vote: the mirrored page restored, mirrored back, averaged
        out = 0.5 * (out + run(np.ascontiguousarray(image[:, ::-1]))[:, ::-1])
    return np.clip(out, 0.0, 1.0)


def evaluate_generator(generator, pages, cfg: C.Config, device, crops: int = 2,
                       threshold: float = 0.5) -> tuple[dict, list]:
    """Restore and score every page: ({metric: [per page]}, [(page, box, binarised crop)] for
    the first ``crops`` pages). ``threshold``: the one ``pages.binarize=val`` chose."""
    from tqdm.auto import tqdm

    from .. import runs as R

    per_page: dict[str, list[float]] = {m: [] for m in PAGE_METRICS}
    shown = []
    for i, page in enumerate(tqdm(pages, desc="restore pages", unit="page", disable=R.progress_disabled())):
        page.load()
        pred = binarize_restored(restore_page(generator, page.image, cfg, device), cfg.pages.binarize, threshold)
        for k, v in page_scores(pred, page.ink).items():
            per_page[k].append(v)
        if i < crops:
            box = crop_box(page.ink, cfg.pages.crop)
            shown.append((page, box, cut(pred, box)))
    return per_page, shown


def evaluate_references(pages, names: Sequence[str]) -> dict[str, dict[str, list[float]]]:
    out: dict[str, dict[str, list[float]]] = {}
    for name in names:
        per_page: dict[str, list[float]] = {m: [] for m in PAGE_METRICS}
        for page in pages:
            page.load()
            for k, v in page_scores(reference_ink(name, page.image), page.ink).items():
                per_page[k].append(v)
        out[name] = per_page
    return out


def summarize(per_page: Mapping[str, Sequence[float]], bootstrap: int, seed: int = 0) -> dict:
    from .stats import summarize_metrics

    return summarize_metrics(per_page, n_resamples=bootstrap, seed=seed)


# ------------------------------------------------------------------------------------ ledger
def pages_dir(ledger_dir: str | Path, profile: str) -> Path:
    return C.resolve_path(ledger_dir) / profile / "pages"


def validate_page_entry(entry: Mapping) -> Mapping:
    missing = [f for f in PAGE_FIELDS if f not in entry]
    if missing:
        raise PageLedgerError(f"page ledger entry {entry.get('experiment', '?')!r} lacks field(s): {', '.join(missing)}")
    problems = []
    for where, metrics in [("metrics", entry["metrics"])] + [(f"references.{k}", v)
                                                             for k, v in entry["references"].items()]:
        for m in PAGE_METRICS:
            s = metrics.get(m) if isinstance(metrics, Mapping) else None
            if not isinstance(s, Mapping) or not all(np.isfinite(s.get(k, np.nan)) for k in ("mean", "lo", "hi")):
                problems.append(f"'{where}.{m}' must be a finite {{mean, lo, hi, n}}")
    for m in PAGE_METRICS:
        if len(entry["per_page"].get(m, [])) != len(entry["pages"]):
            problems.append(f"'per_page.{m}' must hold one value per test page ({len(entry['pages'])})")
    for k in ("otsu", "sauvola"):
        if k not in entry["references"]:
            problems.append(f"'references' lacks {k!r}")
    if problems:
        raise PageLedgerError(f"page ledger entry {entry.get('experiment')!r} is invalid: " + "; ".join(problems))
    return entry


def write_page_entry(entry: Mapping, ledger_dir: str | Path) -> Path:
    """Validate and write ``entry`` atomically to <ledger_dir>/<profile>/pages/<experiment>.json."""
    from .ledger import _gaps_as_null, _plain

    entry = _plain(entry)
    entry["history"] = _gaps_as_null(entry["history"])
    validate_page_entry(entry)
    path = pages_dir(ledger_dir, entry["profile"]) / f"{entry['experiment']}.json"
    write_json_atomic(path, entry, sort_keys=True, allow_nan=False, default=None)
    return path


def read_page_entries(ledger_dir: str | Path, profile: str) -> list[dict]:
    out = []
    for path in sorted(pages_dir(ledger_dir, profile).glob("*.json")):
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
            validate_page_entry(entry)
        except (json.JSONDecodeError, PageLedgerError) as exc:
            raise PageLedgerError(f"page ledger file {path}: {exc}; fix or delete it") from exc
        out.append(entry)
    return out


def make_page_entry(*, experiment: str, method: str, cfg: C.Config, splits, per_page: Mapping,
                    references: Mapping, train_result: Mapping, device: str, samples: list,
                    extra: Mapping | None = None) -> dict:
    return {
        "experiment": experiment, "method": method, "group": "pages", "profile": cfg.profile,
        "metrics": summarize(per_page, cfg.eval.bootstrap), "per_page": dict(per_page),
        "pages": [p.name for p in splits.test],
        "references": {k: summarize(v, cfg.eval.bootstrap) for k, v in references.items()},
        "references_per_page": dict(references),
        "train_sets": list(cfg.pages.train_sets), "test_sets": list(cfg.pages.test_sets),
        "val_pages": [p.name for p in splits.val], "train_pages": len(splits.train),
        "binarize": cfg.pages.binarize, "history": train_result.get("history", []),
        "config": C.to_dict(cfg), "git_commit": train_result.get("git_commit", "unknown"),
        "git_dirty": train_result.get("git_dirty"), "mlflow_run_id": train_result.get("mlflow_run_id"),
        "run_dir": C.project_relative(train_result.get("run_dir", "")), "device": device,
        "date": _dt.datetime.now().isoformat(timespec="seconds"), "data_hash": splits.data_hash,
        "samples": samples, "machine": machine_info(), **(extra or {}),
    }


def save_crops(shown, cfg: C.Config, experiment: str) -> list[dict]:
    """Write this method's binarised crops into the ledger's samples folder; returns the entry's
    ``samples`` records (page, box, image). The input, Sauvola and ground-truth crops are cut from
    the page data when the figure is drawn: DIBCO images are never copied into the project."""
    from .ledger import save_sample_images

    samples = []
    for page, box, pred in shown:
        paths = save_sample_images({"restored": (~pred).astype(np.float32)}, cfg.eval.ledger_dir, cfg.profile,
                                   f"pages-{experiment}", page.name)
        samples.append({"page": page.name, "box": list(box), "images": paths})
    return samples
