"""Training and fine-tuning on real page pairs (DIBCO): the GAN trainer in page mode.

- Data: random patches of the training pages (``pages.patch_*``, default the profile's line size)
  with flips (:class:`docrestore.data.pages.PatchDataset`); items have a clean target and no
  transcription.
- Validation: whole held-out training-year pages restored with the tiled restorer, binarised
  (``pages.binarize``) and scored: ``val/psnr`` (picks ``best_val_psnr.pt``) and ``val/fmeasure``.
  The test sets are never read before the final evaluation.
- Arms: every GAN arm (ERB's cGAN, feature loss, dual-modal D) runs unchanged; with
  ``train.adv_weight=0`` the step is plain supervised training (pixel loss only, no discriminator
  step at all): the control.
- Pages have no transcription: CTC (``train.ctc.weight`` > 0 or the balanced schedule) and the
  recognizer updates of S1/S2 are refused with a ConfigError instead of being computed on nothing.
  The feature loss and the dual-modal D read patches with the synthetic-line recognizer (frozen),
  so their patches must be ``data.height`` tall.
- ``train.init_from=CKPT`` starts the generator from a synthetic-data checkpoint.
"""

from __future__ import annotations

import logging
import types
from pathlib import Path

import numpy as np
import torch

from .. import checkpoint as CK
from .. import config as C
from .. import device as D
from .. import runs as R
from ..data import loading
from . import common, distributed
from .gan import GANTrainer

log = logging.getLogger("docrestore")


def reads_with_recognizer(cfg: C.Config) -> bool:
    """The feature loss and the dual-modal D read patches with the synthetic-line recognizer."""
    return cfg.train.feature_loss.weight > 0 or cfg.discriminator.name == "dual_modal"


def check_page_config(cfg: C.Config) -> None:
    """Refuse settings that mean nothing on pages (they have no transcription)."""
    from ..data.pages import patch_size
    from ..evaluation.dibco import check_references

    tc = cfg.train
    if tc.ctc.weight > 0 or tc.ctc.schedule == "balanced":
        raise C.ConfigError(
            f"'train.ctc.weight' = {tc.ctc.weight} (schedule {tc.ctc.schedule}): page pairs have no "
            "transcription, so there is no CTC loss to compute; set train.ctc.weight=0 and a non-balanced "
            "schedule for page training (the page recipes in docrestore.study.pages do)")
    if tc.scenario != "frozen":
        raise C.ConfigError(
            f"'train.scenario' = {tc.scenario}: S1/S2 update the recognizer with CTC on transcriptions, which "
            "pages do not have; set train.scenario=frozen")
    if tc.early_stop_metric in ("val/cer", "val/ssim"):
        raise C.ConfigError(
            f"'train.early_stop_metric' = {tc.early_stop_metric}: page validation measures val/psnr (and "
            "val/fmeasure) on binarised pages; set train.early_stop_metric=val/psnr or none")
    h, _ = patch_size(cfg)
    if reads_with_recognizer(cfg) and h != cfg.data.height:
        raise C.ConfigError(
            f"'pages.patch_height' = {h}: the feature loss and the dual-modal D read patches with the line "
            f"recognizer, which takes lines {cfg.data.height} px tall; set pages.patch_height=0 "
            f"(= data.height) or {cfg.data.height}")
    if tc.adv_weight == 0 and cfg.discriminator.name == "dual_modal":
        raise C.ConfigError("'train.adv_weight' = 0 trains without a discriminator; discriminator.name="
                            "dual_modal would have no effect. Use discriminator.name=patch for the control")
    if tc.adv_weight == 0 and tc.feature_loss.weight > 0:
        log.info("supervised control with the feature loss: the pixel loss and the feature loss only")
    check_references(cfg.pages.references)


def apply_page_budget(cfg: C.Config) -> C.Config:
    """``pages.max_steps`` / ``pages.val_every`` replace the line-training values in a page run
    (pages and lines need different budgets in one profile); the run's config shows the result."""
    cfg.train.mode = "pages"  # recorded in every checkpoint: restore knows a page model by it
    if cfg.pages.max_steps > 0:
        cfg.train.max_steps = cfg.pages.max_steps
    if cfg.pages.val_every > 0:
        cfg.train.val_every = cfg.pages.val_every
    return cfg


def _recognizer_chars(path: Path) -> list[str]:
    return list(CK.load_checkpoint(path).get("charset") or [])


class PageTrainer(GANTrainer):
    """The GAN trainer on page patches; `fit()`, checkpoints and logging are the GAN trainer's."""

    def check_config(self, cfg: C.Config) -> None:
        pass  # check_page_config ran before the base class's __init__

    def needs_recognizer(self, cfg: C.Config) -> bool:
        return reads_with_recognizer(cfg)

    def __init__(self, cfg: C.Config, run: R.Run, splits=None, recognizer_path: Path | None = None):
        from ..data.pages import PatchDataset, open_pages, patch_size
        from .recognizer import ensure_recognizer

        check_page_config(apply_page_budget(cfg))
        self.splits = splits or open_pages(cfg)
        self.patch = patch_size(cfg)
        chars: list[str] = []
        if self.needs_recognizer(cfg):  # the synthetic-line recognizer the feature loss / dual D read with
            recognizer_path = Path(recognizer_path or ensure_recognizer(cfg, "loss"))
            chars = _recognizer_chars(recognizer_path)
        train = PatchDataset(self.splits.train, *self.patch, cfg.pages.patches_per_page, cfg.seed)
        data = loading.Data(manifest=self.splits.root, charset=types.SimpleNamespace(chars=chars), train=train,
                           val=self.splits.val, test=self.splits.test, data_hash=self.splits.data_hash)
        super().__init__(cfg, run, data, recognizer_path)
        self.supervised = cfg.train.adv_weight == 0
        log.info("page training: %d training pages (%d patches of %dx%d an epoch), validation pages %s%s",
                 len(self.splits.train), len(train), self.patch[0], self.patch[1],
                 ", ".join(p.name for p in self.splits.val),
                 "; supervised control (pixel loss only, no discriminator)" if self.supervised else "")

    def check_data(self, recognizer, uses_ctc: bool) -> None:
        pass  # patches have no transcription to check against the recognizer's frames

    # ---------------------------------------------------------------------------------- step
    def text_loss(self, restored, b, needs_graph: bool, logits=None) -> torch.Tensor:
        return torch.zeros((), device=self.device)  # pages have no transcription: no CTC, not even as a monitor

    def train_step(self, batch: dict) -> dict[str, float]:
        if not self.supervised:
            return super().train_step(batch)
        from ..losses import pixel_loss

        tc, dev = self.cfg.train, self.device
        degraded, clean = batch["degraded"].to(dev), batch["clean"].to(dev)
        self.generator.train()
        with D.autocast(dev):
            restored = self.g_train(degraded)
        pix = pixel_loss(tc.pixel_loss, restored.float(), clean.float())
        feat = torch.zeros((), device=dev)
        if self.feature_loss is not None:
            with D.autocast(dev):
                out = self.feature_loss(restored, clean)
            feat = (out.loss if hasattr(out, "loss") else out).float()
        loss_g = tc.pixel_weight * pix + tc.feature_loss.weight * feat
        ok = self.guard.ok(distributed.across_ranks(loss_g, self.dist), step=self.step)
        self.opt_g.zero_grad(set_to_none=True)
        if ok:
            loss_g.backward()
            if tc.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(self.generator.parameters(), tc.grad_clip)
            self.opt_g.step()
        nan = float("nan")  # no discriminator and no CTC in the control: not computed, not zero
        return {"train/loss_g": loss_g.item(), "train/loss_d": nan, "train/adv": nan, "train/pixel": pix.item(),
                "train/ctc_monitor": nan, "train/ctc_weight": 0.0, "train/ctc_term": 0.0,
                "train/feature": feat.item(), "train/nonfinite_total": self.guard.total}

    # ---------------------------------------------------------------------------- validation
    @torch.no_grad()
    def validate(self) -> tuple[dict[str, float], Path]:
        from ..evaluation import metrics as M
        from ..evaluation.dibco import binarize_restored, crop_box, restore_page

        psnrs, fms = [], []
        shown = None
        for page in self.val_data:
            page.load()
            restored = restore_page(self.generator, page.image, self.cfg, self.device)
            pred = binarize_restored(restored, self.cfg.pages.binarize)
            psnrs.append(M.psnr_binary(pred, page.ink))
            fms.append(M.fmeasure(pred, page.ink))
            if shown is None:
                shown = (page, restored)
        page, restored = shown
        y, x, h, w = crop_box(page.ink, self.patch[1])
        h = min(h, self.patch[0] * 2)
        cut = (slice(y, y + h), slice(x, x + w))
        grid = common.save_grid(
            {"degraded": page.image[cut][None], "restored": restored[cut][None], "clean": page.clean[cut][None]},
            [page.name], self.run.path("samples", f"step_{self.step:07d}.png"),
            title=f"step {self.step} — {self.cfg.profile} profile (validation page)")
        self.generator.train()
        return {"val/psnr": float(np.mean(psnrs)), "val/fmeasure": float(np.mean(fms))}, grid
