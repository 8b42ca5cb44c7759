"""Evaluate a trained generator on the test split and build its results-ledger entry.

The paper's CER/WER come from the held-out *reader* (a recognizer trained only on clean lines,
with another seed and architecture variant, that no loss was optimised against). The same numbers
measured by the recognizer used inside the losses are reported too, as ``cer_loss_reader`` /
``wer_loss_reader``, labelled as such, because measuring with the network that was optimised
against flatters the method.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .. import checkpoint as CK
from .. import config as C
from .. import device as D
from .. import runs as R
from ..data import loading
from ..machine import machine_info
from . import metrics as M
from . import references as REF
from . import stats as S

log = logging.getLogger("docrestore")

METRICS = ("psnr", "ssim", "cer", "wer", "cer_loss_reader", "wer_loss_reader")
READER2_METRICS = ("cer_reader2", "wer_reader2")  # the second held-out reader's, when eval.reader2_arch is set
SAMPLE_LINES = 8


def _read(model, images: torch.Tensor, charset, device) -> list[str]:
    from ..models.recognizer import greedy_decode

    with torch.no_grad(), D.autocast(device):
        logits = model(images.to(device)).logits
    return greedy_decode(logits.float(), charset)


def _line_metrics(restored: np.ndarray, clean: np.ndarray, ref: str, hyp_reader: str, hyp_loss: str,
                  ev, hyp_reader2: str | None = None) -> dict[str, float]:
    out = {"psnr": M.psnr(restored, clean), "ssim": M.ssim(restored, clean, window=ev.ssim_window,
                                                           sigma=ev.ssim_sigma),
           "cer": M.cer(ref, hyp_reader), "wer": M.wer(ref, hyp_reader),
           "cer_loss_reader": M.cer(ref, hyp_loss), "wer_loss_reader": M.wer(ref, hyp_loss)}
    if hyp_reader2 is not None:
        out.update(cer_reader2=M.cer(ref, hyp_reader2), wer_reader2=M.wer(ref, hyp_reader2))
    return out


def sample_indices(n: int, k: int = SAMPLE_LINES) -> list[int]:
    """The same evenly spread test lines for every method, so grids compare like with like."""
    return sorted(set(np.linspace(0, n - 1, num=min(k, n)).round().astype(int).tolist()))


@torch.no_grad()
def evaluate_generator(cfg: C.Config, generator, data: loading.Data, reader, loss_recognizer,
                       device: torch.device, with_references: bool = True, reader2=None) -> dict:
    """Per-line metrics of ``generator`` (and of the reference methods) on the test split;
    with ``reader2`` (a second held-out reader) also its ``cer_reader2``/``wer_reader2``.

    Returns ``{"per_line": {metric: [...]}, "references": {name: {metric: [...]}}, "texts": [...],
    "preds": [...], "ids": [...], "images": {index: {"degraded","clean","restored"}}}``.
    """
    ev = cfg.eval
    test = loading.subset(data.test, ev.lines)
    keep = set(sample_indices(len(test)))
    generator.eval()
    names = METRICS + (READER2_METRICS if reader2 is not None else ())
    per_line = {m: [] for m in names}
    refs = {name: {m: [] for m in names} for name in ("degraded", "otsu", "sauvola")} if with_references else {}
    no_reader2 = lambda t: [None] * len(t)  # noqa: E731
    texts, preds, ids, fonts, images = [], [], [], [], {}
    i0 = 0
    for batch in tqdm(loading.loader(test, cfg, batch_size=32), desc="evaluate", unit="batch", **R.progress_options()):
        if not bool(batch["has_clean"].all()):  # evaluate_checkpoint routes such lines to evaluate_real_lines
            raise ValueError("evaluate_generator needs a clean image for every line (PSNR/SSIM); lines "
                             f"{[i for i, h in zip(batch['ids'], batch['has_clean'].tolist()) if not h][:5]} "
                             "have none: measure them with docrestore.evaluation.real.evaluate_real_lines")
        degraded, clean = batch["degraded"].to(device), batch["clean"]
        with D.autocast(device):
            restored = generator(degraded).float().clamp(0, 1)
        hyp_r = _read(reader, restored, data.charset, device)
        hyp_l = _read(loss_recognizer, restored, data.charset, device)
        hyp_2 = _read(reader2, restored, data.charset, device) if reader2 is not None else no_reader2(hyp_r)
        r_np, c_np, d_np = (loading.to_numpy_images(x) for x in (restored, clean, batch["degraded"]))
        for j, text in enumerate(batch["texts"]):
            for k, v in _line_metrics(r_np[j], c_np[j], text, hyp_r[j], hyp_l[j], ev, hyp_2[j]).items():
                per_line[k].append(float(v))
            if (i0 + j) in keep:
                images[i0 + j] = {"degraded": d_np[j], "clean": c_np[j], "restored": r_np[j]}
        if with_references:
            candidates = {"degraded": d_np, "otsu": np.stack([REF.otsu(x) for x in d_np]),
                          "sauvola": np.stack([REF.sauvola(x) for x in d_np])}
            for name, imgs in candidates.items():
                t = torch.from_numpy(imgs.astype(np.float32))[:, None]
                h_r = _read(reader, t, data.charset, device)
                h_l = _read(loss_recognizer, t, data.charset, device)
                h_2 = _read(reader2, t, data.charset, device) if reader2 is not None else no_reader2(h_r)
                for j, text in enumerate(batch["texts"]):
                    for k, v in _line_metrics(imgs[j], c_np[j], text, h_r[j], h_l[j], ev, h_2[j]).items():
                        refs[name][k].append(float(v))
        texts += batch["texts"]
        preds += hyp_r
        ids += batch["ids"]
        fonts += batch["fonts"]
        i0 += len(batch["texts"])
    return {"per_line": per_line, "references": refs, "texts": texts, "preds": preds, "ids": ids,
            "fonts": fonts, "images": images}


def line_hands(fonts: list[str], heldout_fonts: list[str]) -> list[str]:
    """'unseen' for a test line written in a held-out font (a hand training never saw), else 'seen'."""
    unseen = set(heldout_fonts)
    return ["unseen" if f in unseen else "seen" for f in fonts]


@torch.no_grad()
def validation_by_reader(cfg: C.Config, generator, data: loading.Data, reader, device) -> dict:
    """The restored validation split read by the held-out reader: what the tables choose arms by
    (the test split is never used to choose, nor a recognizer any loss was trained against)."""
    refs, hyps, psnrs = [], [], []
    generator.eval()
    for batch in loading.loader(data.val, cfg, batch_size=32):
        with D.autocast(device):
            restored = generator(batch["degraded"].to(device)).float().clamp(0, 1)
        hyps += _read(reader, restored, data.charset, device)
        refs += batch["texts"]
        psnrs += [M.psnr(r, c) for r, c, h in zip(loading.to_numpy_images(restored),
                                                   loading.to_numpy_images(batch["clean"]), batch["has_clean"]) if h]
    return {"cer": M.cer_corpus(refs, hyps), "wer": M.wer_corpus(refs, hyps),
            "psnr": float(np.mean(psnrs)) if psnrs else None, "n": len(refs), "split": "val", "reader": "held-out"}


@torch.no_grad()
def clean_reading(cfg: C.Config, data: loading.Data, reader, device) -> dict[str, list[float]]:
    """Per-line CER/WER of the held-out reader on the clean test lines: the upper bound of any
    restoration (the "clean line" row), in the test lines' order."""
    test = loading.subset(data.test, cfg.eval.lines)
    out = {"cer": [], "wer": []}
    for batch in loading.loader(test, cfg, batch_size=32):
        for ref, hyp in zip(batch["texts"], _read(reader, batch["clean"], data.charset, device)):
            out["cer"].append(float(M.cer(ref, hyp)))
            out["wer"].append(float(M.wer(ref, hyp)))
    return out


def summarize(per_line: dict[str, list[float]], cfg: C.Config) -> dict[str, dict]:
    return {m: S.summarize(np.asarray(v, dtype=float), n_resamples=cfg.eval.bootstrap, seed=cfg.seed)
            for m, v in per_line.items()}


def build_entry(cfg: C.Config, *, experiment: str, method: str, group: str, evaluation: dict,
                train_result: dict, device: torch.device, ledger_dir: Path) -> dict:
    """A results-ledger entry (see docs/architecture.md) with sample images saved beside it."""
    from . import ledger as L

    samples = []
    for idx, imgs in sorted(evaluation["images"].items()):
        line_id = evaluation["ids"][idx]
        paths = L.save_sample_images({"degraded": imgs["degraded"], "clean": imgs["clean"],
                                      method: imgs["restored"]}, ledger_dir, cfg.profile, experiment, line_id)
        samples.append({"id": line_id, "index": idx, "text": evaluation["texts"][idx],
                        "lines": {method: {"pred": evaluation["preds"][idx],
                                           "cer": evaluation["per_line"]["cer"][idx],
                                           "image": paths[method]},
                                  "degraded": {"image": paths["degraded"]},
                                  "clean": {"image": paths["clean"]}}})
    history = _thin(train_result.get("history", []), 200)
    eval_git = R.git_info()
    train_git = {"commit": train_result.get("git_commit") or eval_git["commit"],
                 "dirty": train_result.get("git_dirty", eval_git["dirty"])}
    return {
        "experiment": experiment, "method": method, "group": group, "profile": cfg.profile,
        "seed": cfg.seed,
        "metrics": summarize(evaluation["per_line"], cfg),
        "per_line": {k: [round(v, 6) for v in vals] for k, vals in evaluation["per_line"].items()},
        "line_ids": evaluation["ids"],
        # Seen / unseen hands of each test line (data.heldout_fonts): the main table's hand rows.
        "line_hands": line_hands(evaluation.get("fonts", []), cfg.data.heldout_fonts),
        "references": {name: summarize(v, cfg) for name, v in evaluation["references"].items()} or None,
        "samples": samples,
        "history": history,
        "train": {k: train_result.get(k) for k in ("steps", "best_metric", "best_value", "nonfinite",
                                                   "collapses", "best", "recognizer_checkpoint",
                                                   "ctc_clips", "ctc", "schedule", "plateau")},
        "config": C.to_dict(cfg),
        # git_commit: the commit that trained it; eval_git_commit: the one that measured it.
        "git_commit": train_git["commit"],
        "git_dirty": bool(train_git["dirty"] or eval_git["dirty"]),
        "train_git_commit": train_git["commit"], "train_git_dirty": train_git["dirty"],
        "eval_git_commit": eval_git["commit"], "eval_git_dirty": eval_git["dirty"],
        "mlflow_run_id": train_result.get("mlflow_run_id", ""),
        "run_dir": C.project_relative(train_result.get("run_dir", "")),
        "device": D.describe(device),
        "date": _dt.datetime.now().isoformat(timespec="seconds"),
        "data_hash": train_result.get("data_hash", ""),
        # What made it (docrestore.fingerprint; the reuse rule compares it) and where.
        **({"fingerprint": train_result["fingerprint"]} if train_result.get("fingerprint") else {}),
        "machine": machine_info(),
    }


def _thin(records: list[dict], keep: int) -> list[dict]:
    """At most ``keep`` training records, always keeping the validation ones."""
    if len(records) <= keep:
        return records
    val = [r for r in records if any(k.startswith("val/") for k in r)]
    rest = [r for r in records if r not in val]
    stride = max(1, len(rest) // max(1, keep - len(val)))
    return sorted(val + rest[::stride], key=lambda r: r["step"])


def evaluate_checkpoint(cfg: C.Config, checkpoint: Path, *, experiment: str, method: str, group: str,
                        train_result: dict | None = None, write: bool = True) -> dict:
    """Evaluate a generator checkpoint and (by default) write its ledger entry.

    The paper's entry measures the test split's pairs. Lines of another split (``eval.split``),
    or test lines that all lack a clean image (an archive's), get the before/after reading entry
    of :mod:`.real` alone and need no other split; it is returned instead."""
    from ..training.recognizer import ensure_recognizer
    from . import ledger as L
    from . import real as REAL

    if cfg.eval.split != "test" or not _test_pairs(cfg):
        return REAL.evaluate_real_lines(cfg, checkpoint, experiment=experiment, write=write)
    device = D.pick_device(cfg.device)
    data = loading.open_data(cfg)
    generator, _ = CK.load_generator(checkpoint, device)
    # Test lines without a clean image (real lines in a mixed manifest) have no PSNR/SSIM: they get
    # their own entry (CER/WER before/after restoration); the rest are evaluated as usual.
    real_idx = [i for i, r in enumerate(data.test.records) if r.get("clean") is None]
    if real_idx:
        REAL.evaluate_real_lines(cfg, checkpoint, experiment=experiment, write=write,
                                 lines=torch.utils.data.Subset(data.test, real_idx))
        paired = [i for i in range(len(data.test)) if i not in set(real_idx)]
        data = loading.Data(data.manifest, data.charset, data.train, data.val,
                           torch.utils.data.Subset(data.test, paired), data.data_hash)
    reader_path = ensure_recognizer(cfg, "reader")
    reader, reader_chars, _ = CK.load_recognizer(reader_path, device)
    ck = CK.load_checkpoint(checkpoint)
    loss_path = C.resolve_path(ck["recognizer_checkpoint"]) if ck.get("recognizer_checkpoint") else None
    if loss_path is None or not loss_path.exists():  # an older or moved checkout: the cached one
        loss_path = ensure_recognizer(cfg, "loss")
    loss_recognizer, loss_chars, _ = CK.load_recognizer(loss_path, device)
    if "recognizer" in (ck.get("models") or {}):
        # S1/S2 trained the loss recognizer during the GAN run: that one is "the network optimised against"
        loss_recognizer.load_state_dict(ck["models"]["recognizer"])
    reader2, reader2_path = None, None
    if cfg.eval.reader2 or cfg.eval.reader2_arch:
        reader2_path = ensure_recognizer(cfg, "reader2")
        reader2, reader2_chars, reader2_cfg = CK.load_recognizer(reader2_path, device)
    for name, chars in (("reader", reader_chars), ("loss recognizer", loss_chars),
                        *((("second reader", reader2_chars),) if reader2 is not None else ())):
        if list(chars) != list(data.charset.chars):
            raise ValueError(f"the {name} was trained on another charset than the test data")
    result = dict(train_result or {})
    result.setdefault("history", ck.get("history", []))
    result.setdefault("data_hash", ck.get("data_hash", data.data_hash))
    # The references (degraded input, Otsu, Sauvola) are the same for every method on one test set:
    # measured once per (data, readers, settings) and cached. The readers are named by their
    # weights, not their files: an S1/S2 checkpoint reads its references' cer_loss_reader with its
    # own co-trained recognizer, which the pretrained recognizer's path does not name.
    key = hashlib.sha256(json.dumps([data.data_hash, weights_digest(reader), weights_digest(loss_recognizer),
                                     weights_digest(reader2) if reader2 is not None else None, cfg.eval.lines, cfg.eval.ssim_window, cfg.eval.ssim_sigma,
                                     cfg.eval.bootstrap, cfg.seed]).encode()).hexdigest()[:16]
    ref_cache = C.resolve_path(cfg.runs_dir) / "cache" / "references" / f"{key}.json"
    try:
        cached_refs = json.loads(ref_cache.read_text()) if ref_cache.exists() else None
    except (OSError, json.JSONDecodeError):  # another job is writing it: measure them here too
        cached_refs = None
    evaluation = evaluate_generator(cfg, generator, data, reader, loss_recognizer, device,
                                    with_references=cached_refs is None, reader2=reader2)
    val_reader = validation_by_reader(cfg, generator, data, reader, device)
    clean = clean_reading(cfg, data, reader, device)
    ledger_dir = C.resolve_path(cfg.eval.ledger_dir)
    entry = build_entry(cfg, experiment=experiment, method=method, group=group, evaluation=evaluation,
                        train_result=result, device=device, ledger_dir=ledger_dir)
    entry["val_reader"] = val_reader
    entry["reader_clean"] = summarize(clean, cfg)
    # per line too, in the test lines' order: tables split by set (real hands) need them
    entry["reader_clean_per_line"] = {k: [round(v, 6) for v in vals] for k, vals in clean.items()}
    if reader2 is not None:
        entry["reader2"] = {"arch": reader2_cfg.recognizer.name, "seed": reader2_cfg.seed,
                            "checkpoint": C.project_relative(reader2_path)}
        entry["reader2_clean"] = summarize(clean_reading(cfg, data, reader2, device), cfg)
    degraded_cache = ref_cache.with_name(f"{key}.degraded_per_line.json")
    if cached_refs is None:
        from ..files import write_text

        entry["degraded_per_line"] = {m: [round(v, 6) for v in evaluation["references"]["degraded"][m]]
                                      for m in ("psnr", "ssim", "cer", "wer")}
        # the per-line file first: a job that finds the summaries finds these too
        write_text(degraded_cache, json.dumps(entry["degraded_per_line"]))
        write_text(ref_cache, json.dumps(entry["references"]))  # parallel jobs: whole, then renamed
    else:
        entry["references"] = cached_refs
        try:
            entry["degraded_per_line"] = json.loads(degraded_cache.read_text())
        except (OSError, json.JSONDecodeError):  # a cache from before per-line values were kept
            pass
    m = entry["metrics"]
    log.info("%s: PSNR %.2f dB, SSIM %.4f, CER %.4f, WER %.4f (reader); degraded input PSNR %.2f, CER %.4f",
             experiment, m["psnr"]["mean"], m["ssim"]["mean"], m["cer"]["mean"], m["wer"]["mean"],
             entry["references"]["degraded"]["psnr"]["mean"], entry["references"]["degraded"]["cer"]["mean"])
    if write:
        L.check_clean_tree(cfg.profile, ledger_dir, cfg.eval.allow_dirty,
                           {"commit": entry["eval_git_commit"], "dirty": entry["git_dirty"]})
        path = L.write_entry(entry, ledger_dir)
        log.info("ledger entry written: %s", path)
    return entry


def weights_digest(model: torch.nn.Module) -> str:
    """sha256 of a model's state (names, dtypes, shapes and values): two models read alike when
    their digests agree, whatever file they were loaded from."""
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _test_pairs(cfg: C.Config) -> bool:
    """Whether the test split of the config's dataset has lines with a clean image."""
    from ..data import manifest as MF
    from ..data.synth import ensure_dataset

    manifest = C.resolve_path(cfg.data.manifest) if cfg.data.manifest else ensure_dataset(cfg)
    return any(r.get("split") == "test" and r.get("clean") is not None for r in MF.read_manifest(manifest))


def checkpoint_config(cfg: C.Config) -> tuple[C.Config, Path, str]:
    """(config, checkpoint, experiment) that `docrestore evaluate` measures with: the data and sizes
    the generator of ``eval.checkpoint`` was trained with (its own config), with this command's
    eval.*, device, runs_dir and tracking settings, and its data when ``data.manifest`` is given."""
    if not cfg.eval.checkpoint:
        raise C.ConfigError("'eval.checkpoint' is empty: give the generator checkpoint to evaluate, "
                            "e.g. eval.checkpoint=runs/<run>/best_val_cer.pt")
    ckpt = C.resolve_path(cfg.eval.checkpoint)
    trained = C.from_dict(CK.load_checkpoint(ckpt)["config"])
    trained.eval, trained.device, trained.runs_dir = cfg.eval, cfg.device, cfg.runs_dir
    trained.tracking = cfg.tracking
    if cfg.data.manifest:  # measure on other lines (e.g. real ones) than the generator was trained on
        trained.data = cfg.data
    return trained, ckpt, cfg.eval.experiment or R.slug(ckpt.parent.name)


def evaluate(cfg: C.Config, run: R.Run) -> dict:
    """The `docrestore evaluate` stage: eval.checkpoint -> paper/results/<profile>/<eval.experiment>.json
    (or, for lines without a clean image or another eval.split, .../real/<experiment>.json)."""
    trained, ckpt, experiment = checkpoint_config(cfg)
    entry = evaluate_checkpoint(trained, ckpt, experiment=experiment, method=experiment, group="manual")
    run.write_json("metrics.json", entry["metrics"])
    return entry
