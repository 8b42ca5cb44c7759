"""Losses: adversarial (lsgan/vanilla), pixel, CTC, CTC weight schedules, recognition features."""

from .ctc import ctc_loss, ctc_loss_per_sample
from .feature import FeatureLoss, FeatureLossOutput
from .gan import GAN_MODES, PIXEL_LOSSES, GANLoss, pixel_loss
from .schedule import SCHEDULES, CTCWeightSchedule, balanced_scale

__all__ = [
    "GANLoss", "GAN_MODES", "pixel_loss", "PIXEL_LOSSES",
    "ctc_loss", "ctc_loss_per_sample",
    "CTCWeightSchedule", "SCHEDULES", "balanced_scale",
    "FeatureLoss", "FeatureLossOutput",
]
