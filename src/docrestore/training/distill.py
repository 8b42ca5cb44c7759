"""``docrestore distill --teacher CKPT``: a light generator trained to copy a trained one.

The student (``distill.student``/``width``/``levels``, by default the depthwise-separable
:class:`~docrestore.models.generator.LightUNetGenerator`) learns the teacher's output (L1, or BCE
to the teacher's sigmoid output) on the degraded training lines of the teacher's own data
(``data`` of the teacher's config) and, with ``distill.pages=FOLDER``, on random patches of the
training pages of that folder (``pages.train_sets`` minus the validation pages; the test sets are
never read). No ground truth is needed: the teacher is the target.

The run folder gets ``last.pt`` and ``best_val_psnr.pt`` in the checkpoint format of a trained
generator (kind ``gan``, ``models.generator``, the config): the teacher's config with
``generator`` replaced by the student's design, so ``docrestore restore --checkpoint`` and
``docrestore evaluate`` rebuild and use the student unchanged. Every run writes a new folder,
nothing is overwritten; ``distill.resume=<run>/last.pt`` continues an interrupted run (its
student, optimiser, step and history) in a new folder. ``result.json`` has the validation PSNR of
student and teacher.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import logging
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .. import checkpoint as CK
from .. import config as C
from .. import device as D
from .. import runs as R
from ..models import build_generator
from ..data import loading
from . import common

log = logging.getLogger("docrestore.distill")


class DistillError(C.ConfigError):
    """A teacher or setting distillation cannot start from."""


def check(cfg: C.Config) -> None:
    """Refuse, before a run folder is made, a teacher that is not a generator checkpoint, a
    student config that does not validate, a missing page folder and a run that cannot resume."""
    _, tcfg = load_teacher(cfg.distill.teacher, "cpu")
    scfg = student_config(tcfg, cfg)
    if cfg.distill.resume:
        student = build_generator(scfg.generator)
        resume(cfg.distill.resume, scfg, student, torch.optim.Adam(student.parameters()))
    if cfg.distill.pages and not Path(cfg.distill.pages).is_dir():
        raise DistillError(f"distill.pages={cfg.distill.pages} is not a folder; give a folder of page "
                           "pairs (e.g. DIBCO) or leave it empty")


def load_teacher(path: str | Path, device) -> tuple[torch.nn.Module, C.Config]:
    """The teacher generator (eval mode, frozen) and its config; DistillError with the cause
    and the fix when ``path`` is not a generator checkpoint."""
    if not str(path):
        raise DistillError("no teacher: give --teacher runs/<run>/best_*.pt (a trained generator checkpoint)")
    try:
        teacher, tcfg = CK.load_generator(path, device)
    except CK.CheckpointError as exc:
        raise DistillError(f"--teacher {path} is not a usable generator checkpoint: {exc}") from exc
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher, tcfg


def student_config(tcfg: C.Config, cfg: C.Config) -> C.Config:
    """The teacher's config with the student's generator and this run's ``distill`` section: what
    the student's checkpoint stores, so every consumer rebuilds the student from it."""
    d = cfg.distill
    scfg = copy.deepcopy(tcfg)
    scfg.generator = dataclasses.replace(
        tcfg.generator, name=d.student, width=d.width,
        levels=d.levels if d.student == "light" else C.GeneratorConfig().levels,
        dropout=0.0)  # copying a deterministic map: no dropout
    scfg.distill = copy.deepcopy(d)
    return C.validate(scfg)


def _forever(loader):
    while True:
        yield from loader


def page_batches(cfg: C.Config, tcfg: C.Config, folder: str):
    """Endless batches of training-page patches of ``folder`` (the teacher's line size)."""
    from ..data import pages as P

    pc = tcfg.pages
    try:
        splits = P.split_pages(P.find_pairs(Path(folder), pc.layout), pc.train_sets, pc.test_sets,
                               pc.val_pages, load=False)
    except (P.PageDataError, FileNotFoundError) as exc:
        raise DistillError(f"distill.pages={folder}: {exc}") from exc
    h, w = tcfg.data.height, tcfg.data.width
    data = P.PatchDataset(splits.train, h, w, per_page=64, seed=cfg.seed)
    log.info("page patches: %d training pages of %s (%s), %d x %d", len(splits.train), folder,
             ", ".join(pc.train_sets), h, w)
    return _forever(common.loader(data, cfg, batch_size=cfg.distill.batch_size))


@torch.inference_mode()
def val_psnr(model, batches, device) -> float:
    """Mean PSNR (dB) of ``model``'s restorations to the clean lines of ``batches``."""
    from ..evaluation.metrics import psnr

    was = model.training
    model.eval()
    scores = []
    for b in batches:
        out = model(b["degraded"].to(device)).float().clamp(0, 1).cpu().numpy()
        clean = b["clean"].numpy()
        scores += [psnr(o[0], c[0]) for o, c in zip(out, clean)]
    model.train(was)
    return float(np.mean(scores))


def distill_loss(student_out: torch.Tensor, teacher_out: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "bce":
        return F.binary_cross_entropy(student_out.float().clamp(1e-6, 1 - 1e-6), teacher_out.float())
    return (student_out.float() - teacher_out.float()).abs().mean()


def distill(cfg: C.Config, run: R.Run) -> dict:
    """Train the student of ``cfg.distill.teacher`` in ``run``'s folder; returns the result."""
    d = cfg.distill
    device = D.pick_device(cfg.device)
    torch.manual_seed(cfg.seed)
    teacher, tcfg = load_teacher(d.teacher, device)
    scfg = student_config(tcfg, cfg)
    student = build_generator(scfg.generator).to(device).train()
    n_t = sum(p.numel() for p in teacher.parameters())
    n_s = sum(p.numel() for p in student.parameters())
    log.info("teacher %s (%s, width %g, %.0fk parameters) -> student %s width %g levels %d (%.0fk)",
             d.teacher, tcfg.generator.name, tcfg.generator.width, n_t / 1e3, d.student, d.width,
             scfg.generator.levels, n_s / 1e3)

    data = loading.open_data(tcfg)
    lines = _forever(common.loader(data.train, cfg, batch_size=d.batch_size))
    pages = page_batches(cfg, tcfg, d.pages) if d.pages and d.page_share > 0 else None
    val = list(common.loader(common.subset(data.val, d.val_lines), cfg, batch_size=d.batch_size))
    teacher_psnr = val_psnr(teacher, val, device)

    opt = torch.optim.Adam(student.parameters(), lr=d.lr)
    history, best, start = [], -math.inf, 0
    if d.resume:
        start, history, best = resume(d.resume, scfg, student, opt)
        for group in opt.param_groups:
            group.setdefault("initial_lr", d.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(s, d.steps) / d.steps)),
        last_epoch=start - 1)
    rng = np.random.default_rng([cfg.seed, start])
    t0 = time.perf_counter()
    ckpt_base = {"kind": "gan", "config": scfg, "charset": list(data.charset.chars),
                 "epoch": 0, "distilled_from": {"path": str(Path(d.teacher).resolve()),
                                                "sha256": _sha(d.teacher)}}
    bar = tqdm(range(start + 1, d.steps + 1), initial=start, total=d.steps, desc="distill", unit="step", disable=R.progress_disabled())
    for step in bar:
        use_pages = pages is not None and rng.random() < d.page_share
        x = next(pages if use_pages else lines)["degraded"].to(device)
        with torch.no_grad():
            target = teacher(x)
        loss = distill_loss(student(x), target, d.loss)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"distillation loss is {loss.item()} at step {step}; lower distill.lr")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        bar.set_postfix(loss=f"{loss.item():.4f}")
        if step % d.val_every == 0 or step == d.steps:
            score = val_psnr(student, val, device)
            history.append({"step": step, "loss": loss.item(), "val_psnr": score,
                            "seconds": time.perf_counter() - t0})
            log.info("step %d: loss %.4f, val PSNR student %.2f dB (teacher %.2f dB)", step, loss.item(),
                     score, teacher_psnr)
            ckpt = {**ckpt_base, "step": step, "models": CK.state_dicts(generator=student),
                    "optimizers": CK.state_dicts(generator=opt), "rng": CK.capture_rng(),
                    "best": {"val_psnr": max(best, score)}, "history": history}
            CK.save_checkpoint(run.path("last.pt"), ckpt)
            if score > best:
                best = score
                CK.save_checkpoint(run.path("best_val_psnr.pt"), ckpt)
    result = {"teacher": str(d.teacher), "student": dataclasses.asdict(scfg.generator),
              "parameters": {"teacher": n_t, "student": n_s}, "steps": d.steps,
              "val_lines": sum(len(b["degraded"]) for b in val),
              "val_psnr": {"teacher": teacher_psnr, "student_best": best,
                           "student_last": history[-1]["val_psnr"] if history else None},
              "resumed_from": d.resume or None,
              "seconds": time.perf_counter() - t0,
              "checkpoints": {"best": str(run.path("best_val_psnr.pt")), "last": str(run.path("last.pt"))}}
    run.write_json("result.json", result)
    log.info("student: best val PSNR %.2f dB vs teacher %.2f dB (%d lines); %s", best, teacher_psnr,
             result["val_lines"], run.path("best_val_psnr.pt"))
    return result


def resume(path: str, scfg: C.Config, student, opt) -> tuple[int, list, float]:
    """Load an interrupted distill run's student and optimiser; its (step, history, best PSNR).
    DistillError when ``path`` is no distill checkpoint or holds another student design."""
    try:
        ckpt = CK.load_checkpoint(path)
    except CK.CheckpointError as exc:
        raise DistillError(f"distill.resume={path}: {exc}") from exc
    if "distilled_from" not in ckpt:
        raise DistillError(f"distill.resume={path} is not a checkpoint of `docrestore distill` (to start a "
                           "student from scratch leave distill.resume empty)")
    theirs = C.from_dict(ckpt["config"]).generator
    if theirs != scfg.generator:
        raise DistillError(f"distill.resume={path} holds a {theirs.name} student (width {theirs.width}, "
                           f"{theirs.levels} levels) but this run builds {scfg.generator.name} (width "
                           f"{scfg.generator.width}, {scfg.generator.levels} levels); set distill.* as that run did")
    student.load_state_dict(ckpt["models"]["generator"])
    opt.load_state_dict(ckpt["optimizers"]["generator"])
    history = list(ckpt.get("history") or [])
    log.info("continuing %s from step %d", path, ckpt["step"])
    return int(ckpt["step"]), history, float((ckpt.get("best") or {}).get("val_psnr", -math.inf))


def _sha(path) -> str:
    from ..restore.tiling import sha256_file

    return sha256_file(path)
