"""Real lines without a clean image: does restoration make them easier to read?

For each transcribed line of the chosen split (``eval.split``; ``all``: every line, so an
archive whose lines are all test lines needs no training split) the held-out reader reads the
degraded line and the restored one; the entry holds per-line CER/WER of both, their means with
percentile-bootstrap intervals, and the paired Wilcoxon test of restored vs degraded (the line
is the unit). There is no PSNR/SSIM: there is no clean image to compare with. Entries go to
``<eval.ledger_dir>/<profile>/real/<experiment>.json``, beside (not among) the synthetic ledger
entries, whose contract requires PSNR/SSIM. Beside each entry, ``<experiment>/lines.csv`` lists
every line (id, page, source, transcription, both readings, both CERs), the most improved first,
and ``<experiment>/crops/`` holds each line degraded and restored: which lines got better or
worse, and what the reader read."""

from __future__ import annotations

import csv
import datetime as _dt
import json
import logging
import re
import shutil
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .. import checkpoint as CK
from .. import config as C
from .. import device as D
from .. import runs as R
from ..files import replacing, write_json_atomic
from ..machine import machine_info
from ..data import manifest as MF
from ..data import loading
from . import metrics as M
from . import stats as S

log = logging.getLogger("docrestore")

KIND = "real_lines"
READS = ("degraded", "restored")
PER_LINE_CSV = "lines.csv"
PER_LINE_COLUMNS = ("id", "page", "source", "transcription", "read_degraded", "read_restored", "cer_degraded",
                    "cer_restored", "cer_change", "degraded_image", "restored_image")


def real_entry_path(cfg: C.Config, experiment: str) -> Path:
    return C.resolve_path(cfg.eval.ledger_dir) / cfg.profile / "real" / f"{R.slug(experiment)}.json"


def read_real_entry(cfg: C.Config, experiment: str) -> dict:
    return json.loads(real_entry_path(cfg, experiment).read_text(encoding="utf-8"))


def lines_dir(cfg: C.Config, experiment: str) -> Path:
    """The per-line folder beside an entry (``<experiment>/``): ``lines.csv`` and ``crops/``. Kept
    out of git (.gitignore): it holds the archive's transcriptions and images."""
    return real_entry_path(cfg, experiment).with_suffix("")


def eval_lines(cfg: C.Config, split: str | None = None):
    """The lines evaluation reads: those of ``split`` (default ``eval.split``; ``all``: every
    line) of ``data.manifest`` (or the synthetic dataset) that have a transcription, at
    ``data.height x data.width``. A manifest problem is a :class:`DataError` naming the file and
    what to do; no training split is needed."""
    from ..data.dataset import LineDataset
    from ..data.paths import DataError
    from ..data.synth import ensure_dataset

    split = split or cfg.eval.split
    if cfg.data.manifest:  # an archive's manifest: lines without a transcription are skipped, not refused
        manifest = C.resolve_path(cfg.data.manifest)
        records = MF.validate_manifest(manifest, require_text=False)
    else:
        manifest = Path(ensure_dataset(cfg))
        records = MF.read_manifest(manifest)
    if split != MF.EVERY_SPLIT and not any(r["split"] == split for r in records):
        counts = {k: v for k, v in MF.split_counts(records).items() if v}
        raise DataError(f"manifest {manifest} has no lines in split {split!r} (it has {counts}); evaluate "
                        f"one of those splits (eval.split=...) or every line (eval.split=all)")
    return LineDataset(manifest, split, cfg.data.height, cfg.data.width, MF.charset_for(manifest, records),
                       transcribed_only=True)


def _crop_names(index: int, line_id: str) -> dict[str, str]:
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", line_id).strip("-") or "line"
    return {k: f"{index:05d}_{safe}_{k}.png" for k in READS}  # the index keeps "a/b" and "a-b" apart


def _save_crop(image: np.ndarray, path: Path) -> None:
    Image.fromarray((np.clip(image, 0, 1) * 255).round().astype(np.uint8)).save(path)


@torch.no_grad()
def read_before_after(generator, reader, reader_chars: list[str], lines, cfg: C.Config,
                      device: torch.device, crops: Path | None = None) -> dict:
    """Per line: the reader's text on the degraded and on the restored line, CER and WER of both.
    With ``crops``, both images (as the generator and the reader saw them) are saved there as
    8-bit PNGs, named in ``out["crops"]``."""
    from ..data.charset import Charset
    from ..models.recognizer import greedy_decode

    charset = Charset(reader_chars)
    generator.eval()
    out = {"ids": [], "texts": [], "preds": {k: [] for k in READS}, "crops": [],
           "per_line": {f"{m}_{k}": [] for m in ("cer", "wer") for k in READS}}
    for batch in loading.loader(lines, cfg, batch_size=16):
        degraded = batch["degraded"].to(device)
        with D.autocast(device):
            restored = generator(degraded).float().clamp(0, 1)
            images = {"degraded": degraded, "restored": restored}
            hyps = {k: greedy_decode(reader(images[k]).logits.float(), charset) for k in READS}
        for j, text in enumerate(batch["texts"]):
            for k in READS:
                out["preds"][k].append(hyps[k][j])
                out["per_line"][f"cer_{k}"].append(float(M.cer(text, hyps[k][j])))
                out["per_line"][f"wer_{k}"].append(float(M.wer(text, hyps[k][j])))
        if crops is not None:
            arrays = {k: loading.to_numpy_images(images[k]) for k in READS}
            for j, line_id in enumerate(batch["ids"]):
                names = _crop_names(len(out["crops"]), line_id)
                for k in READS:
                    _save_crop(arrays[k][j], crops / names[k])
                out["crops"].append(names)
        out["ids"] += batch["ids"]
        out["texts"] += batch["texts"]
    return out


def _records_of(lines) -> list[dict]:
    """The manifest records of ``lines`` (a LineDataset or a Subset of one), in reading order."""
    if isinstance(lines, torch.utils.data.Subset):
        return [lines.dataset.records[i] for i in lines.indices]
    return list(lines.records)


def per_line_rows(records: list[dict], res: dict, manifest: Path) -> list[dict]:
    """One row per line (:data:`PER_LINE_COLUMNS`), the most improved first (CER after - before,
    ascending), then by id."""
    rows = []
    for i, rec in enumerate(records):
        before, after = res["per_line"]["cer_degraded"][i], res["per_line"]["cer_restored"][i]
        crops = res["crops"][i] if res.get("crops") else {}
        rows.append({"id": rec["id"], "page": rec.get("page") or "",
                     "source": rec.get("source") or str(MF.resolve(manifest, rec["degraded"])),
                     "transcription": rec["text"], "read_degraded": res["preds"]["degraded"][i],
                     "read_restored": res["preds"]["restored"][i], "cer_degraded": round(before, 6),
                     "cer_restored": round(after, 6), "cer_change": round(after - before, 6),
                     "degraded_image": crops.get("degraded", ""), "restored_image": crops.get("restored", "")})
    return sorted(rows, key=lambda r: (r["cer_change"], r["id"]))


def write_per_line(rows: list[dict], path: Path) -> Path:
    """``rows`` as a UTF-8 CSV with a header, written whole then renamed into place."""
    with replacing(path) as tmp, tmp.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=PER_LINE_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return path


def read_per_line(path: str | Path) -> list[dict]:
    """The rows of a per-line CSV (:func:`write_per_line`), numbers as floats, in file order."""
    with Path(path).open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        for k in ("cer_degraded", "cer_restored", "cer_change"):
            row[k] = float(row[k])
    return rows


def evaluate_real_lines(cfg: C.Config, checkpoint: str | Path, *, experiment: str, write: bool = True,
                        lines=None, split: str | None = None) -> dict:
    """Restore the ``split`` lines of ``data.manifest`` (default ``eval.split``; or the given
    ``lines``) with the generator of ``checkpoint`` and write the before/after entry (see the
    module docstring), with ``lines.csv`` and the crops in :func:`lines_dir` beside it."""
    from ..training.recognizer import ensure_recognizer

    split = split or cfg.eval.split
    if cfg.data.manifest and not cfg.eval.reader and split != "test":
        # a reader trained now would learn from this manifest's train lines, which this split reads
        raise C.ConfigError(f"eval.split={split} reads lines that a reader trained on {cfg.data.manifest} "
                            "would have learnt from; give the held-out reader with "
                            "eval.reader=runs/<pretrain run>/best_val_cer.pt")
    lines = lines if lines is not None else eval_lines(cfg, split)  # data problems before any model loads
    device = D.pick_device(cfg.device)
    generator, _ = CK.load_generator(checkpoint, device)
    reader_path = ensure_recognizer(cfg, "reader")
    reader, reader_chars, _ = CK.load_recognizer(reader_path, device)
    base = lines.dataset if isinstance(lines, torch.utils.data.Subset) else lines
    records = _records_of(lines)
    missing = sorted(set("".join(r["text"] for r in records)) - set(reader_chars))
    if missing:  # the reader can never produce them: the CER counts them as errors, say so
        log.warning("the reader %s does not know %d character(s) of these lines: %s; fine-tune it on "
                    "transcribed lines of the same hands (recognizer_train.init)", reader_path, len(missing),
                    "".join(missing))
    folder = lines_dir(cfg, experiment)
    crops = _fresh_folder(folder / "crops") if write else None
    res = read_before_after(generator, reader, reader_chars, lines, cfg, device, crops=crops)
    entry = _entry(cfg, experiment, res, base, split, checkpoint, reader_path, missing, device)
    log.info("%s (%d real lines): CER %.4f degraded -> %.4f restored (paired Wilcoxon p=%.3g), "
             "WER %.4f -> %.4f", experiment, len(res["ids"]), entry["metrics"]["cer_degraded"]["mean"],
             entry["metrics"]["cer_restored"]["mean"], entry["paired"]["cer"]["p_value"],
             entry["metrics"]["wer_degraded"]["mean"], entry["metrics"]["wer_restored"]["mean"])
    if write:
        path = real_entry_path(cfg, experiment)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, entry, sort_keys=True)
        table = write_per_line(per_line_rows(records, res, base.manifest), folder / PER_LINE_CSV)
        log.info("real-lines entry written: %s; per line (most improved first): %s, crops in %s",
                 path, table, crops)
    return entry


def _fresh_folder(path: Path) -> Path:
    """``path`` emptied of an earlier evaluation's crops (another line set would leave strays)."""
    if path.is_dir():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def _entry(cfg: C.Config, experiment: str, res: dict, base, split: str, checkpoint, reader_path,
           missing: list[str], device: torch.device) -> dict:
    n_boot = cfg.eval.bootstrap
    metrics = {k: S.summarize(v, n_resamples=n_boot, seed=cfg.seed) for k, v in res["per_line"].items()}
    corpus = {f"{m}_{k}": fn(res["texts"], res["preds"][k]) for k in READS
              for m, fn in (("cer", M.cer_corpus), ("wer", M.wer_corpus))}
    paired = {m: S.paired_test(res["per_line"][f"{m}_restored"], res["per_line"][f"{m}_degraded"])
              for m in ("cer", "wer")}
    git = R.git_info()
    return {
        "kind": KIND, "experiment": R.slug(experiment), "profile": cfg.profile,
        "manifest": str(base.manifest), "split": split, "height": cfg.data.height, "width": cfg.data.width,
        "fit_counts": base.fit_counts, "untranscribed": getattr(base, "untranscribed", 0),
        "checkpoint": str(checkpoint), "reader": str(reader_path), "reader_chars_missing": missing,
        "metrics": metrics, "corpus": corpus, "paired": paired,
        "per_line": {k: [round(v, 6) for v in vals] for k, vals in res["per_line"].items()},
        # Line ids and numbers only: the transcriptions and readings stay with the user's data
        # (an archive's text may not be free to publish with the results); they are in the
        # per-line folder beside the entry, which git ignores.
        "line_ids": res["ids"], "per_line_csv": f"{R.slug(experiment)}/{PER_LINE_CSV}",
        "config": C.to_dict(cfg), "git_commit": git["commit"], "git_dirty": git["dirty"],
        "device": D.describe(device), "date": _dt.datetime.now().isoformat(timespec="seconds"),
        "data_hash": MF.manifest_hash(base.manifest), "machine": machine_info(),
    }


def reusable_entry(cfg: C.Config, checkpoint: Path, experiment: str) -> tuple[dict | None, str]:
    """(entry, why) of the real-lines entry for ``experiment`` when it measured exactly this:
    the same generator checkpoint, reader (when one is named), lines (the manifest's content),
    split and line size, with its per-line CSV beside it; else (None, why not)."""
    path = real_entry_path(cfg, experiment)
    try:
        entry = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None, f"no readable entry {path} yet"
    manifest = C.resolve_path(cfg.data.manifest) if cfg.data.manifest else None
    checks = {
        "the checkpoint": Path(entry.get("checkpoint", "")) == Path(checkpoint),
        "the reader": not cfg.eval.reader or Path(entry.get("reader", "")) == C.resolve_path(cfg.eval.reader),
        "the manifest": manifest is not None and Path(entry.get("manifest", "")) == manifest,
        "the lines": manifest is not None and manifest.is_file()
                     and entry.get("data_hash") == MF.manifest_hash(manifest),
        "the split": entry.get("split") == cfg.eval.split,
        "the line size": (entry.get("height"), entry.get("width")) == (cfg.data.height, cfg.data.width),
        "the per-line CSV": (lines_dir(cfg, experiment) / PER_LINE_CSV).is_file(),
    }
    differ = [name for name, same in checks.items() if not same]
    if differ:
        return None, f"the entry {path} differs in {', '.join(differ)}"
    return entry, f"reusing {path} (commit {str(entry.get('git_commit'))[:8]}, {entry.get('date')})"
