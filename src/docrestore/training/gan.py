"""The GAN trainer: the ERB baseline and every research method are options of this one loop.

Generator loss
    L_G = adv_weight * L_adv + pixel_weight * L_pixel + w_ctc(step) * CTC + feature_weight * L_feat

- ERB (Souibgui et al.): lsgan adversarial loss, BCE pixel loss (beta = 10), CTC weight lambda = 1,
  the recognizer updated every batch on clean lines (S1) or on restored lines (S2).
- lambda = 0 is the plain conditional GAN.
- CTC annealing: ``train.ctc.schedule`` moves the active weight from 0 to the target.
- Recognition feature loss: ``train.feature_loss.weight`` > 0 with a frozen recognizer; set
  ``train.ctc.weight=0`` so CTC is only a monitor.
- Dual-modal discriminator: ``discriminator.name=dual_modal``.

CTC is computed on the restored lines at every step and logged as ``train/ctc_monitor`` even
while its weight is 0; what enters the generator's loss is logged separately as
``train/ctc_term`` = ``train/ctc_weight`` x monitor. At weight 0 it is computed without a graph,
so the generator's gradient cannot depend on it. ``train/ctc_raw`` is the CTC before the clip
(``train.ctc.clip``; ``clip_mode=rescale`` scales the term down and keeps its gradient,
``clamp`` is the research notes' clip, which passes none above the clip),
``train/ctc_clips_total`` counts the steps above the clip, ``train/ctc_grad`` is 1 when the CTC
gradient reached the generator (the run records its onset step, the share of steps without it and
CTC percentiles: :class:`common.CTCRecord`), and every
``train.grad_norms_every`` steps ``train/gradnorm_<adv|pixel|ctc|feature>`` is each weighted
term's gradient norm at the generator output. ``train.ctc.reduction=sum`` is ERB's CTC (per-line
sum, batch mean), so lambda = 1 is ERB's lambda.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
import shutil
import signal
import typing
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .. import checkpoint as CK
from .. import config as C
from .. import device as D
from .. import runs as R
from ..data import loading
from ..tracking import Tracker
from . import common, distributed, speed, survive

log = logging.getLogger("docrestore")


def set_requires_grad(module: torch.nn.Module, flag: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(flag)


class GANTrainer:
    """Holds the models, optimisers and counters of one GAN run on text lines; `fit()` trains it.

    What depends on the data (lines with transcriptions here, page patches in
    :class:`docrestore.training.pages.PageTrainer`) sits in the hooks a subclass overrides:
    :meth:`check_config`, :meth:`needs_recognizer`, :meth:`check_data`, :meth:`text_loss`,
    :meth:`validate`."""

    def check_config(self, cfg: C.Config) -> None:
        if cfg.train.mode == "pages":
            raise C.ConfigError("'train.mode' = pages is set by the page stage (notebook 05, "
                                "docrestore.study.pages.run_pages); the line trainer reads line manifests")

    def needs_recognizer(self, cfg: C.Config) -> bool:
        return True

    def check_data(self, recognizer: torch.nn.Module, uses_ctc: bool) -> None:
        """Lines: no unusable real line, and every transcription fits the recognizer's frames
        (an impossible CTC target is an error, not a silent 0)."""
        from ..data.dataset import check_frames

        check_real_lines(self.data.train, uses_ctc)
        frames = common.recognizer_frames(recognizer, self.cfg.data.height, self.cfg.data.width, self.device)
        check_frames(self.data.train, frames)
        check_frames(self.data.val, frames, fatal=False)

    def __init__(self, cfg: C.Config, run: R.Run, data: loading.Data | None = None,
                 recognizer_path: Path | None = None):
        from ..losses import CTCWeightSchedule, FeatureLoss, GANLoss
        from ..models import build_discriminator, build_generator
        from ..models.recognizer import freeze
        from .recognizer import ensure_recognizer

        self.cfg, self.run = cfg, run
        self.check_config(cfg)
        self.dist = distributed.init_from_env(cfg.device)  # one process unless under torchrun
        self.device = distributed.local_device(cfg.device, self.dist)
        D.seed_everything(cfg.seed)
        tc = cfg.train
        with distributed.main_first(self.dist):  # rank 0 synthesises / pretrains what is missing
            self.data = data or loading.open_data(cfg)
            self.recognizer_path = (Path(recognizer_path or ensure_recognizer(cfg, "loss"))
                                    if self.needs_recognizer(cfg) else None)
        # Again: a recognizer pretrained just now consumed the RNG; the models must not depend on
        # whether it was cached.
        D.seed_everything(cfg.seed)
        recognizer = None
        if self.recognizer_path is not None:
            recognizer, chars, _ = CK.load_recognizer(self.recognizer_path, self.device)
            if list(chars) != list(self.data.charset.chars):
                raise ValueError(
                    f"the recognizer {self.recognizer_path} was trained with another charset than the data "
                    f"({len(chars)} vs {len(self.data.charset.chars)} characters); pretrain one on this "
                    "data (leave recognizer.checkpoint empty)")
        # A frozen copy is the fixed yardstick: validation CER, feature loss, dual-modal text branch.
        self.frozen_recognizer = freeze(copy.deepcopy(recognizer)) if recognizer is not None else None
        self.ctc_target = tc.ctc.weight
        self.balanced = tc.ctc.schedule == "balanced"
        uses_ctc = self.ctc_target > 0 or self.balanced
        self.check_data(recognizer, uses_ctc)
        # ERB updates its recognizer every batch (S1/S2); with lambda = 0 that cannot reach G, so skip it.
        self.train_recognizer = tc.scenario in ("S1", "S2") and uses_ctc
        self.recognizer = recognizer if self.train_recognizer else self.frozen_recognizer
        self.generator = build_generator(cfg.generator).to(self.device)
        if tc.init_from:
            CK.init_generator(self.generator, C.resolve_path(tc.init_from), cfg.generator)
        self.discriminator = build_discriminator(cfg.discriminator, recognizer=self.frozen_recognizer).to(self.device)
        self.gan_loss = GANLoss(tc.adv_loss)
        self.branch_weights = getattr(self.discriminator, "branch_weights", None)
        per_epoch = common.steps_per_epoch(len(self.data.train), tc.batch_size)
        self.schedule = CTCWeightSchedule(tc.ctc, per_epoch)  # warm-up / ramp in epochs map to steps here
        self.feature_loss = (FeatureLoss(self.frozen_recognizer, tc.feature_loss)
                             if tc.feature_loss.weight > 0 else None)
        # Adam with Keras' default betas, as ERB's code.
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=tc.lr_g)
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=tc.lr_d)
        self.opt_r = (torch.optim.RMSprop(self.recognizer.parameters(), lr=tc.lr_r)
                      if self.train_recognizer else None)
        self.step = 0
        self.epoch = 0
        self.batch_in_epoch = 0
        self.history = common.History()
        self.best = common.Improvement(tc.early_stop_metric if tc.early_stop_metric != "none" else "val/cer",
                                       tc.patience if tc.early_stop_metric != "none" else 0)
        self.guard = common.NonFiniteGuard(tc.max_nonfinite)
        self.collapses: list[dict] = []
        self.ctc_clips = 0  # steps whose CTC exceeded train.ctc.clip (its gradient then vanishes)
        self.ctc_raw_peak = 0.0  # largest unclipped CTC since the last logged step
        self.ctc_record = common.CTCRecord()
        self.plateau_step: int | None = None  # the first validation at which val/cer had plateaued
        self.val_data = common.subset(self.data.val, tc.val_lines)
        self.total_steps = C.total_steps(cfg, len(self.data.train))
        self.resumed_from = ""
        if tc.resume:
            self.load(C.resolve_path(tc.resume))
        # What the training step runs: under torchrun, DDP wrappers that average the gradients
        # over the ranks; otherwise the plain modules. Validation and state dicts use the plain ones,
        # so checkpoints are the same either way.
        self.g_train = distributed.wrap(self.generator, self.device, self.dist)
        self.d_train = distributed.wrap(self.discriminator, self.device, self.dist)
        self.r_train = (distributed.wrap(self.recognizer, self.device, self.dist) if self.train_recognizer
                        else self.recognizer)

    # ---------------------------------------------------------------------------- checkpoint
    def state(self) -> dict:
        models = {"generator": self.generator.state_dict(), "discriminator": self.discriminator.state_dict()}
        opts = {"generator": self.opt_g.state_dict(), "discriminator": self.opt_d.state_dict()}
        if self.train_recognizer:
            models["recognizer"] = self.recognizer.state_dict()
            opts["recognizer"] = self.opt_r.state_dict()
        return {"kind": "gan", "config": C.to_dict(self.cfg), "charset": list(self.data.charset.chars),
                "step": self.step, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
                "models": models, "optimizers": opts, "scaler": None, "rng": CK.capture_rng(),
                "best": self.best.state(), "history": self.history.records,
                "nonfinite": self.guard.total, "collapses": self.collapses, "ctc_clips": self.ctc_clips,
                "ctc_raw_peak": self.ctc_raw_peak, "ctc_record": self.ctc_record.state(),
                "plateau_step": self.plateau_step,
                "recognizer_checkpoint": C.project_relative(self.recognizer_path), "data_hash": self.data.data_hash}

    def save(self, path: Path) -> None:
        CK.save_checkpoint(path, self.state())

    def load(self, path: Path) -> None:
        ck = CK.load_checkpoint(path)
        if ck.get("kind") != "gan":
            raise ValueError(f"resume={path} is a {ck.get('kind')!r} checkpoint, not a GAN training checkpoint")
        self.generator.load_state_dict(ck["models"]["generator"])
        self.discriminator.load_state_dict(ck["models"]["discriminator"])
        self.opt_g.load_state_dict(ck["optimizers"]["generator"])
        self.opt_d.load_state_dict(ck["optimizers"]["discriminator"])
        if self.train_recognizer:
            if "recognizer" not in ck["models"]:
                raise ValueError(f"resume={path}: the checkpoint has no trained recognizer but this "
                                 f"config updates one (scenario {self.cfg.train.scenario})")
            self.recognizer.load_state_dict(ck["models"]["recognizer"])
            self.opt_r.load_state_dict(ck["optimizers"]["recognizer"])
        self.step, self.epoch, self.batch_in_epoch = ck["step"], ck["epoch"], ck.get("batch_in_epoch", 0)
        self.best.load(ck.get("best", {}))
        self.history.records = list(ck.get("history", []))
        self.guard.total = ck.get("nonfinite", 0)
        self.collapses = list(ck.get("collapses", []))
        self.ctc_clips = int(ck.get("ctc_clips", 0))
        self.ctc_raw_peak = float(ck.get("ctc_raw_peak", 0.0))  # a resumed run logs the same peaks
        self.ctc_record.load(ck.get("ctc_record", {}))
        self.plateau_step = ck.get("plateau_step")
        # The best model so far lives in the interrupted run's folder: carry it over, so this run's
        # best_*.pt is never the last state merely named best.
        old_best = Path(path).parent / common.metric_file_name(self.best.metric)
        new_best = self.run.path(common.metric_file_name(self.best.metric))
        if old_best.exists() and old_best.resolve() != new_best.resolve() and self.dist.is_main:
            shutil.copyfile(old_best, new_best)
        CK.restore_rng(ck["rng"])
        self.resumed_from = str(path)
        log.info("resumed from %s at step %d (epoch %d, batch %d)", path, self.step, self.epoch,
                 self.batch_in_epoch)

    # ---------------------------------------------------------------------------------- step
    def ctc_weight(self) -> float:
        return self.schedule.weight(self.step)

    def train_step(self, batch: dict) -> dict[str, float]:
        """One step: D on (clean | restored, degraded), then G on its weighted terms, then (S1/S2)
        the recognizer; returns the step's ``train/*`` metrics."""
        b = StepBatch.of(batch, self.device)
        w_ctc = self.ctc_weight()
        self.generator.train()
        with D.autocast(self.device):
            restored = self.g_train(b.degraded)
        loss_d, loss_d_all = self.discriminator_step(restored, b)
        terms = self.generator_terms(restored, b, w_ctc)
        loss_g, grad_norms, g_ok = self.generator_step(restored, terms, loss_d_all)
        ctc_grad = self.record_ctc(terms, g_ok)
        loss_r = self.recognizer_step(restored, b) if self.train_recognizer else None
        metrics = {"train/loss_g": loss_g.item(), "train/loss_d": loss_d.item(), "train/adv": terms.adv.item(),
                   "train/pixel": terms.pix.item(), "train/ctc_monitor": terms.ctc.item(),
                   "train/ctc_weight": terms.w_ctc, "train/ctc_term": terms.w_ctc * terms.ctc.item(),
                   "train/feature": terms.feat.item(), "train/ctc_raw": terms.ctc_raw,
                   "train/ctc_grad": float(ctc_grad),
                   "train/ctc_raw_peak": terms.ctc_raw_peak, "train/ctc_clips_total": self.ctc_clips,
                   "train/nonfinite_total": self.guard.total, **grad_norms,
                   "train/clean_lines": float(b.n_clean)}
        if loss_r is not None:
            metrics["train/recognizer_ctc"] = loss_r.item()
        # Under torchrun: the BatchNorm statistics each rank gathered on its share, averaged.
        distributed.sync_buffers(self.trained_modules(), self.dist)
        return metrics

    def discriminator_step(self, restored: torch.Tensor, b: "StepBatch") -> tuple[torch.Tensor, torch.Tensor]:
        """D's update: real = (clean, degraded), fake = (restored, degraded). Returns D's loss and
        every rank's D loss (the non-finite guard of G's step counts each step once)."""
        tc = self.cfg.train
        set_requires_grad(self.discriminator, True)
        self.discriminator.train()
        with D.autocast(self.device):
            fake_d = self.gan_loss(self.d_train(restored.detach(), b.degraded), False, self.branch_weights)
            real_d = (self.gan_loss(self.d_train(b.clean[b.has_clean], b.degraded[b.has_clean]), True,
                                    self.branch_weights) if b.n_clean else torch.zeros_like(fake_d))
            loss_d = 0.5 * (real_d + fake_d)
        # Under torchrun a step is skipped on every rank or on none (the ranks must stay in step).
        loss_d_all = distributed.across_ranks(loss_d, self.dist)
        self.opt_d.zero_grad(set_to_none=True)
        if bool(torch.isfinite(loss_d_all).all()):
            loss_d.backward()
            if tc.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(self.discriminator.parameters(), tc.grad_clip)
            self.opt_d.step()
        return loss_d, loss_d_all

    def generator_terms(self, restored: torch.Tensor, b: "StepBatch", w_ctc: float) -> "GeneratorTerms":
        """G's loss terms, unweighted, and the CTC weight this step uses. D's gradients are off
        while G steps; G's losses go through the plain D and recognizer (not their DDP wrappers),
        whose weights get no update from this backward."""
        from ..losses import pixel_loss

        tc, dev = self.cfg.train, self.device
        set_requires_grad(self.discriminator, False)
        if self.recognizer is not None:
            self.recognizer.eval()  # BatchNorm statistics are not moved by restored lines
        if self.train_recognizer and speed.on("recognizer_weight_grads"):
            set_requires_grad(self.recognizer, False)  # its step zeroes them first: wasted work
        with D.autocast(dev):
            adv = self.gan_loss(self.discriminator(restored, b.degraded), True, self.branch_weights)
        pix = (pixel_loss(tc.pixel_loss, restored[b.has_clean].float(), b.clean[b.has_clean].float())
               if b.n_clean else torch.zeros((), device=dev))
        ctc_needs_graph = w_ctc > 0 or (self.balanced and self.schedule_active())
        shared = None  # the feature loss's pass over the restored lines, when the monitor can read it
        if (self.feature_loss is not None and b.n_clean == len(b.has_clean) and not ctc_needs_graph
                and self.recognizer is self.frozen_recognizer and speed.on("shared_recognizer_pass")):
            with D.autocast(dev):
                shared = self.feature_loss.compute(restored[b.has_clean], b.clean[b.has_clean])
        ctc = self.text_loss(restored, b, ctc_needs_graph,
                             logits=None if shared is None else shared.restored_logits.detach())
        ctc, ctc_raw, ctc_raw_peak, clamped = self.clip_ctc(ctc)
        if self.balanced:
            w_ctc = self.balanced_weight(adv, ctc, restored)
        feat = torch.zeros((), device=dev)
        if self.feature_loss is not None and b.n_clean:
            if shared is not None:
                out = shared
            else:
                with D.autocast(dev):  # restored is bf16 on a GPU: the recognizer must run under autocast too
                    out = self.feature_loss(restored[b.has_clean], b.clean[b.has_clean])
            feat = (out.loss if hasattr(out, "loss") else out).float()
        return GeneratorTerms(adv, pix, ctc, feat, w_ctc, ctc_raw, ctc_raw_peak, clamped)

    def text_loss(self, restored: torch.Tensor, b: "StepBatch", needs_graph: bool,
                  logits: torch.Tensor | None = None) -> torch.Tensor:
        """CTC of the (frozen or co-trained) recognizer on the restored lines; without a graph
        while its weight is 0, so G's gradient cannot depend on the monitor. ``logits``: that
        recognizer's scores on these lines, already computed (then no second forward)."""
        from ..losses import ctc_loss

        with (contextlib.nullcontext() if needs_graph else torch.no_grad()):
            if logits is None:
                with D.autocast(self.device):
                    logits = self.recognizer(restored).logits
            return ctc_loss(logits.float(), b.targets, b.lengths, self.cfg.train.ctc.reduction)

    def clip_ctc(self, ctc: torch.Tensor) -> tuple[torch.Tensor, float, float, bool]:
        """The CTC after ``train.ctc.clip``, its raw value, the raw peak since the last logged
        step (MLflow and the history get every 5th step, so no spike is missed) and whether a
        clamp cut its gradient. Above the clip, ``rescale`` multiplies the CTC by clip / CTC (a
        constant factor: the value is the clip, the gradient scaled, never zero); ``clamp`` is
        ``min(CTC, clip)``, a constant with no gradient."""
        clip, mode = self.cfg.train.ctc.clip, self.cfg.train.ctc.clip_mode
        ctc_raw = ctc.item()  # before the clip: the spike the clip hides
        self.ctc_raw_peak = max(self.ctc_raw_peak, ctc_raw)
        ctc_raw_peak = self.ctc_raw_peak
        if (self.step + 1) % 5 == 0 or self.step == 0:
            self.ctc_raw_peak = 0.0
        if clip > 0 and ctc_raw > clip:
            self.ctc_clips += 1
            ctc = ctc.clamp(max=clip) if mode == "clamp" else ctc * (clip / ctc_raw)
            return ctc, ctc_raw, ctc_raw_peak, mode == "clamp"
        return ctc, ctc_raw, ctc_raw_peak, False

    def balanced_weight(self, adv: torch.Tensor, ctc: torch.Tensor, restored: torch.Tensor) -> float:
        """The balanced schedule's weight this step: alpha * std(grad_adv) / std(grad_ctc) at the
        restored lines (0 before its warm-up, or when either gradient is missing)."""
        from ..losses import balanced_scale

        if not (self.schedule_active() and ctc.requires_grad):
            return 0.0
        g_adv = torch.autograd.grad(adv, restored, retain_graph=True, allow_unused=True)[0]
        g_ctc = torch.autograd.grad(ctc, restored, retain_graph=True, allow_unused=True)[0]
        if g_adv is None or g_ctc is None:
            return 0.0
        return balanced_scale(g_adv, g_ctc, self.cfg.train.ctc.alpha,
                              std=lambda t: distributed.global_std(t, self.dist))

    def generator_step(self, restored: torch.Tensor, t: "GeneratorTerms",
                       loss_d_all: torch.Tensor) -> tuple[torch.Tensor, dict[str, float], bool]:
        """G's weighted loss, each term's gradient norm, and G's update unless a loss is non-finite
        (the third value: whether G stepped)."""
        tc = self.cfg.train
        loss_g = tc.adv_weight * t.adv + tc.pixel_weight * t.pix + tc.feature_loss.weight * t.feat
        if t.w_ctc > 0:
            loss_g = loss_g + t.w_ctc * t.ctc
        grad_norms = self.term_grad_norms(restored, {
            "adv": tc.adv_weight * t.adv, "pixel": tc.pixel_weight * t.pix,
            "ctc": t.w_ctc * t.ctc if t.w_ctc > 0 else None,
            "feature": tc.feature_loss.weight * t.feat if self.feature_loss is not None else None})
        # The guard counts each step once, whichever loss was non-finite.
        g_ok = self.guard.ok(distributed.across_ranks(loss_g, self.dist), loss_d_all.detach(), step=self.step)
        self.opt_g.zero_grad(set_to_none=True)
        if g_ok:
            loss_g.backward()
            if tc.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(self.generator.parameters(), tc.grad_clip)
            self.opt_g.step()
        return loss_g, grad_norms, g_ok

    def record_ctc(self, t: "GeneratorTerms", g_ok: bool) -> bool:
        """Whether the CTC gradient reached the generator this step (a positive weight, a term
        with a graph and a nonzero value, no clamp, a step taken), kept in :attr:`ctc_record`."""
        weighted = t.w_ctc > 0 and t.ctc.requires_grad
        grad = bool(g_ok and weighted and t.ctc_raw > 0 and not t.clamped)
        self.ctc_record.add(t.ctc_raw, t.w_ctc * t.ctc.item(), grad, clamped=weighted and t.clamped)
        return grad

    def recognizer_step(self, restored: torch.Tensor, b: "StepBatch") -> torch.Tensor:
        """ERB's recognizer update: S1 on clean lines (a real line's only image is its degraded
        one), S2 on the restored ones. Returns its CTC."""
        from ..data.dataset import readable
        from ..losses import ctc_loss

        set_requires_grad(self.recognizer, True)
        self.recognizer.train()
        source = (readable({"clean": b.clean, "degraded": b.degraded, "has_clean": b.has_clean})
                  if self.cfg.train.scenario == "S1" else restored.detach())
        with D.autocast(self.device):
            r_logits = self.r_train(source).logits
        loss_r = ctc_loss(r_logits.float(), b.targets, b.lengths, self.cfg.train.ctc.reduction)
        self.opt_r.zero_grad(set_to_none=True)
        if torch.isfinite(distributed.across_ranks(loss_r, self.dist)):
            loss_r.backward()
            torch.nn.utils.clip_grad_norm_(self.recognizer.parameters(), 5.0)
            self.opt_r.step()
        self.recognizer.eval()
        return loss_r

    def trained_modules(self) -> list[torch.nn.Module]:
        """The modules this run updates (the frozen recognizer is not one of them)."""
        return [self.generator, self.discriminator] + ([self.recognizer] if self.train_recognizer else [])

    def term_grad_norms(self, restored: torch.Tensor, terms: dict) -> dict[str, float]:
        """L2 norm of each weighted loss term's gradient at the generator output (the restored
        lines), every ``train.grad_norms_every`` steps: which term drives G, and how a CTC switch
        or ramp changes that (the diagnostics behind the move to the feature loss). A term that is
        off (None) reads 0."""
        every, s = self.cfg.train.grad_norms_every, self.step + 1
        # the steps whose metrics the history keeps (every 5th, validations, the last)
        if every <= 0 or not (s % every == 0 or s == 1 or s % self.cfg.train.val_every == 0
                              or s >= self.total_steps):
            return {}
        out = {}
        for name, term in terms.items():
            grad = None
            if term is not None and term.requires_grad and torch.isfinite(term):
                grad = torch.autograd.grad(term, restored, retain_graph=True, allow_unused=True)[0]
            out[f"train/gradnorm_{name}"] = float(grad.float().norm()) if grad is not None else 0.0
        return out

    def schedule_active(self) -> bool:
        return self.step >= self.cfg.train.ctc.warmup

    # ---------------------------------------------------------------------------- validation
    @torch.no_grad()
    def validate(self) -> tuple[dict[str, float], Path]:
        """Validation metrics on ``train.val_lines`` and the path of this step's sample grid."""
        from ..evaluation.metrics import cer_corpus, psnr, ssim
        from ..models.recognizer import greedy_decode

        self.generator.eval()
        ev = self.cfg.eval
        psnrs, ssims, refs, hyps = [], [], [], []
        first = None
        for batch in common.loader(self.val_data, self.cfg, batch_size=max(8, self.cfg.train.batch_size)):
            degraded, clean = batch["degraded"].to(self.device), batch["clean"].to(self.device)
            with D.autocast(self.device):
                restored = self.generator(degraded).float().clamp(0, 1)
                logits = self.frozen_recognizer(restored).logits
            hyps += greedy_decode(logits.float(), self.data.charset)
            refs += batch["texts"]
            r_np, c_np = common.to_numpy_images(restored), common.to_numpy_images(clean)
            for r, c, has in zip(r_np, c_np, batch["has_clean"].tolist()):
                if not has:  # PSNR/SSIM need a clean image; CER above counts every line
                    continue
                psnrs.append(psnr(r, c))
                ssims.append(ssim(r, c, window=ev.ssim_window, sigma=ev.ssim_sigma))
            if first is None:
                first = (batch, restored.cpu())
        metrics = {"val/cer": cer_corpus(refs, hyps)}
        if psnrs:  # absent (not a made-up value) when no validation line has a clean image
            metrics.update({"val/psnr": float(np.mean(psnrs)), "val/ssim": float(np.mean(ssims))})
        batch, restored = first
        clean_first = batch["clean"][batch["has_clean"]]
        collapsed = common.collapse_check(restored, clean_first if len(clean_first) else None)
        metrics["val/collapsed"] = float(bool(collapsed))
        if collapsed and self.cfg.profile == "smoke":
            # a few steps from the near-white start (generator.output_bias) cannot draw ink yet
            log.info("step %d: output %s, as expected after a few smoke-profile steps", self.step, collapsed)
        elif collapsed:
            self.collapses.append({"step": self.step, "kind": collapsed})
            log.warning("step %d: the generator's output has collapsed (%s) — the failure DE-GAN users "
                        "report. Check pixel_weight vs adv_weight, lr_d, and the data's ink/paper "
                        "polarity (ink must be dark on light paper).", self.step, collapsed)
        n = min(self.cfg.train.samples, restored.shape[0])
        grid = common.save_grid(
            {"degraded": common.to_numpy_images(batch["degraded"][:n]),
             "restored": common.to_numpy_images(restored[:n]),
             "clean": common.to_numpy_images(batch["clean"][:n])},
            batch["texts"][:n], self.run.path("samples", f"step_{self.step:07d}.png"),
            title=f"step {self.step} — {self.cfg.profile} profile")
        self.generator.train()
        return metrics, grid

    # ----------------------------------------------------------------------------------- fit
    def fit(self) -> dict:
        """Train to ``total_steps`` (or an early stop); rank 0 validates, checkpoints and logs.
        SIGTERM/SIGINT write ``last.pt`` between two steps and raise :class:`survive.Interrupted`."""
        self.last_path = self.run.path("last.pt")
        self.best_path = self.run.path(common.metric_file_name(self.best.metric))
        self.last_val: dict = {}
        with self.open_tracker() as tracker, survive.StopSignals() as signals:
            self.tracker = tracker
            bar = tqdm(total=self.total_steps, initial=self.step, desc="train GAN", unit="step",
                       **R.progress_options(self.dist.is_main))
            self.last_save = survive.clock()
            self.write_status("running")
            try:
                stop = False
                while self.step < self.total_steps and not stop:
                    for batch in self.epoch_batches():
                        metrics = self.train_step(batch)
                        self.advance()
                        bar.update(1)
                        bar.set_postfix(refresh=False, **progress_fields(metrics))
                        stop = self.after_step(metrics)
                        self.checkpoint_if_asked(signals, stop)
                        if self.step >= self.total_steps or stop:
                            break
            except BaseException as exc:
                self.report_stop(exc)
                raise
            finally:
                bar.close()
            return self.finish()

    def open_tracker(self) -> Tracker:
        """The MLflow run (rank 0 only); an interrupted run continued in its own folder logs to
        its MLflow run again."""
        cfg, tc = self.cfg, self.cfg.train
        tags = {"stage": "train", "scenario": tc.scenario, "ctc_schedule": tc.ctc.schedule,
                "discriminator": cfg.discriminator.name, "resumed_from": self.resumed_from}
        same_folder = self.resumed_from and Path(self.resumed_from).parent.resolve() == self.run.dir.resolve()
        mlflow_id = survive.read_status(self.run.dir).get("mlflow_run_id", "") if same_folder else ""
        return Tracker(cfg if self.dist.is_main else _without_tracking(cfg), self.run.dir, self.run.name,
                       tags=tags, run_id=mlflow_id)

    def write_status(self, state: str, **extra) -> None:
        """``status.json`` in the run folder (rank 0 only)."""
        if self.dist.is_main:
            survive.write_status(self.run.dir, state, step=self.step, total_steps=self.total_steps,
                                 mlflow_run_id=self.tracker.run_id, **extra)

    def epoch_batches(self):
        """This rank's share of each remaining global batch of the current epoch (none when a
        resumed run's epoch is used up: the next epoch starts)."""
        tc = self.cfg.train
        sampler = common.EpochBatches(len(self.data.train), tc.batch_size, self.cfg.seed, self.epoch,
                                      start=self.batch_in_epoch)
        self.epoch_length = len(sampler.batches)
        if len(sampler) == 0:  # e.g. resumed with a larger batch: this epoch is used up
            if self.epoch_length == 0:
                raise ValueError(f"the training split has no batch of {tc.batch_size} lines "
                                 f"({len(self.data.train)} lines); lower train.batch_size")
            self.epoch, self.batch_in_epoch = self.epoch + 1, 0
            return []
        # Each rank takes its share of every global batch (all of it in one process).
        shares = [distributed.shard(b, self.dist) for b in sampler]
        return common.loader(self.data.train, self.cfg, batch_sampler=shares)

    def advance(self) -> None:
        self.step += 1
        self.batch_in_epoch += 1
        if self.batch_in_epoch >= self.epoch_length:  # the checkpoint points at the next batch
            self.epoch, self.batch_in_epoch = self.epoch + 1, 0

    def after_step(self, metrics: dict) -> bool:
        """Log, keep history, validate and checkpoint when due; True when training should stop
        (rank 0's early stop, broadcast to every rank at validation steps)."""
        tc = self.cfg.train
        if self.step % 5 == 0 or self.step == 1:
            self.tracker.log_metrics(metrics, self.step)
        due = self.step % tc.val_every == 0 or self.step >= self.total_steps
        stop = False
        if due and self.dist.is_main:
            stop = self.validate_and_save(metrics)
        elif self.step % 5 == 0:
            self.history.add(self.step, metrics)
        if due:
            stop = distributed.broadcast_object(stop, self.dist)
        return stop

    def validate_and_save(self, metrics: dict) -> bool:
        """Validation, the best and last checkpoints; True on an early stop (never inside the
        CTC warm-up and ramp)."""
        tc = self.cfg.train
        self.last_val, grid = self.validate()
        self.tracker.log_metrics(self.last_val, self.step)
        self.tracker.log_artifact(grid, "samples")
        self.history.add(self.step, {**metrics, **self.last_val})
        log.info("step %d: %s", self.step, ", ".join(
            f"{k} {v:.4g}" for k, v in {**metrics, **self.last_val}.items() if k in LOGGED))
        plateaued = self.check_plateau()
        if self.best.update(self.last_val.get(self.best.metric)):
            self.save(self.best_path)
        self.save(self.last_path)
        self.last_save = survive.clock()
        self.write_status("running")
        if self.step < self.schedule.warmup + self.schedule.ramp:
            return False  # never stop before the CTC schedule has acted
        if self.best.should_stop:
            log.info("early stop: %s has not improved for %d validations", self.best.metric, tc.patience)
            return True
        if plateaued and tc.stop_at_plateau:
            log.info("stop: validation CER has plateaued (%s)", self.plateau()["rule"])
            return True
        return False

    def plateau(self) -> dict:
        tc = self.cfg.train
        return common.plateau(self.history.records, "val/cer", tc.plateau_window, tc.plateau_tol)

    def check_plateau(self) -> bool:
        """Whether validation CER has plateaued now; the first such step is recorded."""
        reached = self.plateau()["reached"]
        if reached and self.plateau_step is None:
            self.plateau_step = self.step
        return reached

    def checkpoint_if_asked(self, signals: survive.StopSignals, stop: bool) -> None:
        """Between two steps the state is consistent: a signal (on any rank) or the clock (rank
        0's) writes last.pt here, the same step on every rank; a signal then stops the run."""
        tc, main = self.cfg.train, self.dist.is_main
        due = tc.checkpoint_minutes > 0 and survive.clock() - self.last_save >= 60 * tc.checkpoint_minutes
        signum, due = distributed.max_across_ranks([signals.received or 0, int(due and main)],
                                                   self.dist, self.device)
        if not (signum or due) or self.step >= self.total_steps or stop:
            return
        if main:
            self.save(self.last_path)
        self.last_save = survive.clock()
        self.write_status("running")
        if signum:
            self.write_status("interrupted", signal=signal.Signals(signum).name)
            raise survive.Interrupted(signum, self.step, self.last_path)

    def report_stop(self, exc: BaseException) -> None:
        """Say how an unfinished run ended (log and ``status.json``) and how to continue it."""
        main = self.dist.is_main
        if isinstance(exc, survive.Interrupted):
            if main:
                log.warning("%s at step %d: %s written. Rerun the same command to continue this run "
                            "in %s (or pass train.resume=%s)", signal.Signals(exc.signum).name,
                            self.step, self.last_path, self.run.dir, self.last_path)
        elif isinstance(exc, KeyboardInterrupt):
            # The second Ctrl-C, mid-step: the models are half updated, so nothing is saved;
            # last.pt from the last validation or periodic checkpoint is consistent.
            self.write_status("interrupted", signal="SIGINT")
            if main:
                log.warning("stopped at step %d; rerun the same command to continue from the last "
                            "checkpoint %s", self.step, self.last_path)
        else:
            self.write_status("failed", error=f"{type(exc).__name__}: {exc}"[:500])

    def finish(self) -> dict:
        """The final checkpoints, ``result.json`` and ``history.json``; returns the result."""
        main = self.dist.is_main
        if main:
            self.save(self.last_path)
            if not self.best_path.exists():
                self.save(self.best_path)
        result = {"last": str(self.last_path), "best": str(self.best_path), "best_metric": self.best.metric,
                  "best_value": self.best.best, "steps": self.step, "val": self.last_val,
                  "nonfinite": self.guard.total, "collapses": self.collapses,
                  "ctc_clips": self.ctc_clips, "mlflow_run_id": self.tracker.run_id, "run_dir": str(self.run.dir),
                  "recognizer_checkpoint": C.project_relative(self.recognizer_path),
                  "data_hash": self.data.data_hash,
                  "ctc": self.ctc_record.summary(), "schedule": self.schedule.mapping(),
                  "plateau": {**self.plateau(), "first_step": self.plateau_step, "steps": self.step},
                  "history": self.history.records}
        self.write_status("done")
        if main:
            self.run.write_json("history.json", self.history.records)
            self.run.write_json("result.json", {k: v for k, v in result.items() if k != "history"})
            self.tracker.log_artifact(self.run.dir / "config.yaml")
            self.tracker.log_artifact(self.run.dir / "history.json")
        return result


# The step's metrics the log line at each validation shows.
LOGGED = ("train/loss_g", "train/loss_d", "train/ctc_monitor", "train/ctc_weight", "val/psnr", "val/ssim", "val/cer")


def progress_fields(metrics: dict) -> dict[str, str]:
    """The progress bar's short fields."""
    return {"g": f"{metrics['train/loss_g']:.3f}", "d": f"{metrics['train/loss_d']:.3f}",
            "ctc": f"{metrics['train/ctc_monitor']:.2f}", "w": f"{metrics['train/ctc_weight']:.2f}"}


@dataclasses.dataclass
class StepBatch:
    """A training batch on the device; lines without a clean image (real archive lines) take part
    only in what needs no clean target: D's fake examples, G's adversarial term and CTC."""

    degraded: torch.Tensor
    clean: torch.Tensor
    has_clean: torch.Tensor
    n_clean: int
    targets: torch.Tensor
    lengths: torch.Tensor

    @classmethod
    def of(cls, batch: dict, device: torch.device) -> "StepBatch":
        has_clean = batch["has_clean"].to(device)
        return cls(batch["degraded"].to(device), batch["clean"].to(device), has_clean, int(has_clean.sum()),
                   batch["targets"].to(device), batch["target_lengths"].to(device))


class GeneratorTerms(typing.NamedTuple):
    """G's unweighted loss terms of one step, the CTC weight it uses and the CTC before the clip."""

    adv: torch.Tensor
    pix: torch.Tensor
    ctc: torch.Tensor
    feat: torch.Tensor
    w_ctc: float
    ctc_raw: float
    ctc_raw_peak: float
    clamped: bool  # the clamp cut the CTC's gradient


def check_real_lines(train_set, uses_ctc: bool) -> None:
    """Lines without a clean image can only teach the generator through CTC (pixel, feature and
    the discriminator's real examples need a clean image): with CTC off they would be dead weight
    that only looks like training data, so that is an error."""
    records = getattr(train_set, "records", [])
    n_real = sum(1 for r in records if r.get("clean") is None)
    if n_real and not uses_ctc:
        raise C.ConfigError(
            f"the train split has {n_real} of {len(records)} lines without a clean image, and no generator "
            "loss can use them: pixel and feature losses and the discriminator's real examples need a clean "
            "image, and CTC is off (train.ctc.weight=0). Set train.ctc.weight > 0, or move those lines "
            "to the test split (evaluation reads them by CER/WER).")


def _without_tracking(cfg: C.Config) -> C.Config:
    """``cfg`` with MLflow off: the tracker of the ranks other than 0 under torchrun."""
    quiet = copy.deepcopy(cfg)
    quiet.tracking.enabled = False
    return quiet


def train(cfg: C.Config, run: R.Run) -> dict:
    """The `docrestore train` stage: train one GAN run and return its result dict."""
    return GANTrainer(cfg, run).fit()
