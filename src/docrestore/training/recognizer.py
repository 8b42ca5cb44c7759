"""Recognizer pretraining on clean lines (CTC), and a cache of pretrained recognizers.

Two roles use a pretrained recognizer:
- ``loss``: the recognizer inside the GAN's losses (CTC in ERB, the feature loss, the dual-modal
  discriminator's text branch), architecture ``recognizer.name``, seed ``seed``;
- ``reader``: the held-out reader that measures the paper's CER/WER, trained only on clean lines
  with another seed (``eval.reader_seed``) and architecture variant (``eval.reader_arch``), so no
  loss was ever optimised against it;
- ``reader2`` (optional, ``eval.reader2_arch``): a second held-out reader of another architecture
  family (``conv_ctc``: no recurrent layer), same recipe, its own seed (``eval.reader2_seed``).
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
import shutil
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .. import checkpoint as CK
from .. import config as C
from .. import device as D
from .. import runs as R
from ..tracking import Tracker
from ..data import loading
from ..data.manifest import manifest_hash
from . import common

log = logging.getLogger("docrestore")


def read_lines(recognizer, images: torch.Tensor, charset) -> list[str]:
    from ..models.recognizer import greedy_decode

    with torch.no_grad():
        return greedy_decode(recognizer(images).logits, charset)


def evaluate_cer(recognizer, dataset, cfg: C.Config, device: torch.device, key: str = "clean",
                 limit: int = 0) -> tuple[float, list[str]]:
    """Corpus CER (edits / reference characters) of ``recognizer`` reading ``key`` images."""
    from ..evaluation.metrics import cer_corpus

    was_training = recognizer.training
    recognizer.eval()
    from ..data.dataset import readable

    refs, hyps = [], []
    for batch in common.loader(common.subset(dataset, limit), cfg, batch_size=64):
        images = readable(batch) if key == "clean" else batch[key]  # a real line has no clean image
        with D.autocast(device):
            hyps += read_lines(recognizer, images.to(device), dataset_charset(dataset))
        refs += batch["texts"]
    recognizer.train(was_training)
    return cer_corpus(refs, hyps), hyps


def dataset_charset(dataset):
    while isinstance(dataset, torch.utils.data.Subset):
        dataset = dataset.dataset
    return dataset.charset


def pretrain(cfg: C.Config, run: R.Run) -> dict:
    """Train ``cfg.recognizer`` with CTC on clean lines (and a share of degraded ones).

    Writes ``last.pt`` and ``best_val_cer.pt`` in the run folder; returns
    ``{"checkpoint": best path, "val_cer": best CER, "mlflow_run_id": ...}``.
    """
    from ..losses import ctc_loss
    from ..models import build_recognizer

    from ..data.augment import augment_lines
    from ..data.dataset import readable

    device = D.pick_device(cfg.device)
    D.seed_everything(cfg.seed)
    data = loading.open_data(cfg)
    tc = cfg.recognizer_train
    added: list[str] = []
    if tc.init:  # fine-tuning: start from a trained recognizer, its charset extended with the data's
        cfg, data, model, added = start_from(cfg, data, C.resolve_path(tc.init), device)
    else:
        model = build_recognizer(cfg.recognizer, len(data.charset), cfg.data.height).to(device)
    from ..data.dataset import check_frames

    frames = common.recognizer_frames(model, cfg.data.height, cfg.data.width, device)
    parts = [data.train]
    if tc.reader_lines:  # the held-out reader also learns the hands the restorer never sees
        from ..data.dataset import LineDataset
        from ..data.manifest import READER_SPLIT

        parts.append(LineDataset(data.manifest, READER_SPLIT, cfg.data.height, cfg.data.width, data.charset))
    for part in parts:
        check_frames(part, frames)  # an impossible CTC target is an error, not a silent 0
    train = parts[0] if len(parts) == 1 else torch.utils.data.ConcatDataset(parts)
    check_frames(data.val, frames, fatal=False)
    opt_cls = torch.optim.Adam if tc.optimizer == "adam" else torch.optim.RMSprop
    opt = opt_cls(model.parameters(), lr=tc.lr)
    per_epoch = common.steps_per_epoch(len(train), tc.batch_size)
    total = tc.max_steps if tc.max_steps > 0 else tc.epochs * per_epoch
    lr_at = learning_rate(tc, total)
    rng_augment = torch.Generator().manual_seed(cfg.seed + 11)
    best = common.Improvement("val/cer", tc.patience)
    history = common.History()
    rng_degraded = torch.Generator().manual_seed(cfg.seed + 7)
    last_path, best_path = run.path("last.pt"), run.path("best_val_cer.pt")
    step, epoch = 0, 0

    def ckpt() -> dict:
        return {"kind": "recognizer", "config": C.to_dict(cfg), "charset": list(data.charset.chars),
                "step": step, "epoch": epoch, "models": {"recognizer": model.state_dict()},
                "optimizers": {"recognizer": opt.state_dict()}, "scaler": None,
                "rng": CK.capture_rng(), "best": best.state(), "history": history.records,
                "data_hash": data.data_hash}

    with Tracker(cfg, run.dir, run.name, tags={"stage": "pretrain"}) as tracker:
        bar = tqdm(total=total, desc="pretrain recognizer", unit="step", **R.progress_options())
        stop = False
        while step < total and not stop:
            sampler = common.EpochBatches(len(train), tc.batch_size, cfg.seed, epoch)
            for batch in common.loader(train, cfg, batch_sampler=sampler):
                model.train()
                use_degraded = tc.on_degraded > 0 and torch.rand(1, generator=rng_degraded).item() < tc.on_degraded
                images = batch["degraded"] if use_degraded else readable(batch)
                if tc.augment:
                    images = augment_lines(images, rng_augment)
                images = images.to(device)
                for group in opt.param_groups:
                    group["lr"] = lr_at(step)
                with D.autocast(device):
                    out = model(images)
                loss = ctc_loss(out.logits, batch["targets"].to(device), batch["target_lengths"].to(device))
                opt.zero_grad(set_to_none=True)
                if torch.isfinite(loss):
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
                    opt.step()
                step += 1
                bar.update(1)
                bar.set_postfix(refresh=False, ctc=f"{loss.item():.3f}")
                if step % 10 == 0:
                    tracker.log_metrics({"train/ctc": loss.item()}, step)
                if step % tc.val_every == 0 or step == total:
                    cer, _ = evaluate_cer(model, data.val, cfg, device)
                    history.add(step, {"train/ctc": loss.item(), "val/cer": cer})
                    tracker.log_metrics({"val/cer": cer}, step)
                    log.info("pretrain step %d: train ctc %.3f, val CER %.4f", step, loss.item(), cer)
                    if best.update(cer):
                        CK.save_checkpoint(best_path, ckpt())
                    CK.save_checkpoint(last_path, ckpt())
                    if best.should_stop:
                        log.info("early stop: val CER has not improved for %d validations", tc.patience)
                        stop = True
                if step >= total or stop:
                    break
            epoch += 1
        bar.close()
        if not best_path.exists():
            CK.save_checkpoint(best_path, ckpt())
        result = {"checkpoint": str(best_path), "val_cer": best.best, "steps": step,
                  "mlflow_run_id": tracker.run_id, "run_dir": str(run.dir), "data_hash": data.data_hash,
                  "init": str(tc.init), "charset_added": added}
        run.write_json("result.json", result)
        tracker.log_artifact(run.dir / "config.yaml")
    return result


def learning_rate(tc: C.RecognizerTrainConfig, total: int):
    """Step -> learning rate: ``tc.lr`` throughout, or (schedule=cosine) a linear warm-up over
    ``tc.warmup`` steps then a cosine decay to 0 at ``total`` (a decayed rate lets the last
    steps settle instead of hopping around the plateau a constant rate reaches)."""
    if tc.schedule == "constant":
        return lambda step: tc.lr

    def cosine(step: int) -> float:
        warm = min(1.0, (step + 1) / tc.warmup) if tc.warmup else 1.0
        return tc.lr * warm * 0.5 * (1 + math.cos(math.pi * min(step, total) / max(total, 1)))
    return cosine


def start_from(cfg: C.Config, data: loading.Data, path: Path, device: torch.device):
    """(cfg, data, model, added characters) to fine-tune the recognizer of ``path`` on ``data``.

    The model keeps its architecture and line height (``cfg.recognizer`` and ``data.height`` are
    taken from the checkpoint); the data's characters it does not know are appended to its charset
    (old indices unchanged) with fresh output rows, and the change is logged and returned."""
    from ..data.charset import Charset
    from ..data.dataset import LineDataset

    model, chars, init_cfg = CK.load_recognizer(path, device)
    cfg = copy.deepcopy(cfg)
    if cfg.data.height != init_cfg.data.height:
        raise C.ConfigError(f"recognizer_train.init={path} reads lines {init_cfg.data.height} px high; set "
                            f"data.height={init_cfg.data.height} (got {cfg.data.height})")
    cfg.recognizer = init_cfg.recognizer
    added = [c for c in data.charset.chars if c not in chars]
    if added:
        charset = Charset(list(chars) + added)
        old = model.classifier
        new = torch.nn.Linear(old.in_features, len(charset)).to(device)
        with torch.no_grad():
            new.weight[:old.out_features] = old.weight
            new.bias[:old.out_features] = old.bias
        model.classifier, model.num_classes = new, len(charset)
        h, w = cfg.data.height, cfg.data.width
        splits = {s: LineDataset(data.manifest, s, h, w, charset) for s in ("train", "val", "test")}
        data = loading.Data(data.manifest, charset, splits["train"], splits["val"], splits["test"], data.data_hash)
        log.info("fine-tuning %s: %d character(s) added to its charset of %d: %s", path, len(added),
                 len(chars), "".join(added))
    else:
        data = loading.Data(data.manifest, Charset(list(chars)), *(
            LineDataset(data.manifest, s, cfg.data.height, cfg.data.width, Charset(list(chars)))
            for s in ("train", "val", "test")), data.data_hash)
        log.info("fine-tuning %s: the data needs no new characters", path)
    return cfg, data, model.train(), added


# ------------------------------------------------------------------------------------- cache
def role_config(cfg: C.Config, role: str) -> C.Config:
    """The config a recognizer of ``role`` is trained with."""
    rc = copy.deepcopy(cfg)
    if role in ("reader", "reader2"):
        # the second reader: the first's recipe with another architecture and seed
        rc.recognizer.name = cfg.eval.reader_arch if role == "reader" else cfg.eval.reader2_arch
        rc.seed = cfg.eval.reader_seed if role == "reader" else cfg.eval.reader2_seed
        if not rc.recognizer.name:
            raise C.ConfigError("a second held-out reader needs eval.reader2_arch (e.g. conv_ctc) or a "
                                "checkpoint in eval.reader2")
        rc.recognizer_train.on_degraded = 0.0  # the reader sees clean lines only
        if cfg.eval.reader_steps:
            rc.recognizer_train.max_steps = cfg.eval.reader_steps
        if cfg.eval.reader_width:
            rc.recognizer.width = cfg.eval.reader_width
        if cfg.eval.reader_rnn_hidden:
            rc.recognizer.rnn_hidden = cfg.eval.reader_rnn_hidden
        if cfg.eval.reader_schedule != "same":
            rc.recognizer_train.schedule = cfg.eval.reader_schedule
        if cfg.eval.reader_augment != "same":
            rc.recognizer_train.augment = cfg.eval.reader_augment == "augmented"
        rc.recognizer_train.reader_lines = cfg.data.n_reader > 0
    elif role != "loss":
        raise ValueError(f"role must be 'loss', 'reader' or 'reader2', got {role!r}")
    rc.recognizer.checkpoint = ""
    rc.desc = f"{role}-{cfg.profile}-seed{rc.seed}"
    return rc


def cache_key(cfg: C.Config, data_hash: str) -> str:
    blob = json.dumps({"recognizer": C.to_dict(cfg.recognizer), "train": C.to_dict(cfg.recognizer_train),
                       "seed": cfg.seed, "height": cfg.data.height, "width": cfg.data.width,
                       "data": data_hash}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def ensure_recognizer(cfg: C.Config, role: str = "loss") -> Path:
    """A pretrained recognizer checkpoint for ``role``: the configured one, a cached one, or a new
    one trained now (in its own run folder) and cached under runs/cache/recognizers/."""
    if role == "loss" and cfg.recognizer.checkpoint:
        return _exists(cfg.recognizer.checkpoint, "recognizer.checkpoint")
    if role == "reader" and cfg.eval.reader:
        return _exists(cfg.eval.reader, "eval.reader")
    if role == "reader2" and cfg.eval.reader2:
        return _exists(cfg.eval.reader2, "eval.reader2")
    rc = role_config(cfg, role)
    from ..data.synth import ensure_dataset

    key = cache_key(rc, manifest_hash(Path(ensure_dataset(rc))))
    cached = C.resolve_path(cfg.runs_dir) / "cache" / "recognizers" / f"{role}-{key}.pt"
    cached.parent.mkdir(parents=True, exist_ok=True)
    # Parallel jobs of a plan need the same recognizer: the first trains it, the others wait.
    with R.file_lock(cached.with_suffix(".lock")):
        if cached.exists():
            log.info("reusing the pretrained %s recognizer %s", role, cached)
            return cached
        return _pretrain_into(rc, role, cached)


def _pretrain_into(rc: C.Config, role: str, cached: Path) -> Path:
    log.info("no pretrained %s recognizer for these settings yet: training one", role)
    outer_log = [h for h in logging.getLogger("docrestore").handlers if isinstance(h, logging.FileHandler)]
    run = R.start_run(rc, "pretrain")
    try:
        result = pretrain(rc, run)
    finally:
        R.restore_log(outer_log)  # the run that needed this recognizer keeps its own run.log
    from ..files import replacing, write_json_atomic

    with replacing(cached) as tmp:
        shutil.copyfile(result["checkpoint"], tmp)
    write_json_atomic(cached.with_suffix(".json"), result)
    return cached


def _exists(path: str, key: str) -> Path:
    p = C.resolve_path(path)
    if not p.exists():
        raise FileNotFoundError(f"{key}={path}: no such checkpoint; leave it empty to pretrain one")
    return p
