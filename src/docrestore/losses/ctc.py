"""CTC loss on a recognizer's raw ``(T,B,C)`` scores (blank = 0), always in float32."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _ctc(logits: torch.Tensor, targets: torch.Tensor, target_lengths: torch.Tensor,
         reduction: str) -> torch.Tensor:
    if logits.dim() != 3:
        raise ValueError(f"ctc_loss expects logits (T,B,C), got shape {tuple(logits.shape)}")
    t, b, _ = logits.shape
    target_lengths = torch.as_tensor(target_lengths, dtype=torch.long)
    if target_lengths.numel() != b:
        raise ValueError(f"target_lengths has {target_lengths.numel()} entries for a batch of {b} lines")
    log_probs = logits.float().log_softmax(dim=2)
    input_lengths = torch.full((b,), t, dtype=torch.long)
    return F.ctc_loss(log_probs, targets.long(), input_lengths, target_lengths, blank=0,
                      reduction=reduction, zero_infinity=True)


REDUCTIONS = ("sum", "per_char")


def ctc_loss(logits: torch.Tensor, targets: torch.Tensor, target_lengths: torch.Tensor,
             reduction: str = "per_char") -> torch.Tensor:
    """CTC of a batch of lines as one number.

    ``reduction``:

    * ``"sum"``: each line's CTC (the negative log-likelihood of its whole transcription), then
      the mean over the batch: ERB's code (Keras ``ctc_batch_cost`` averaged over the batch), so a
      weight lambda means ERB's lambda (``train.ctc.reduction=sum``).
    * ``"per_char"``: each line's CTC divided by its target length, then the batch mean
      (PyTorch's ``reduction="mean"``): 10-25x smaller than ``sum`` on 10-25 character lines.

    ``targets`` are the concatenated label ids (1-D, as ``collate_lines`` gives them) or a padded
    (B,S) tensor; ``zero_infinity`` turns impossible alignments (a line longer than the frames
    allow) into 0 instead of inf.
    """
    if reduction == "per_char":
        return _ctc(logits, targets, target_lengths, "mean")
    if reduction == "sum":
        return _ctc(logits, targets, target_lengths, "none").mean()
    raise ValueError(f"unknown CTC reduction {reduction!r}; choose one of {list(REDUCTIONS)} "
                     "(train.ctc.reduction)")


def ctc_loss_per_sample(logits: torch.Tensor, targets: torch.Tensor, target_lengths: torch.Tensor,
                        normalize: bool = True) -> torch.Tensor:
    """Per-line CTC loss ``(B,)`` for monitoring; with ``normalize`` divided by the target length,
    so that its mean equals :func:`ctc_loss`."""
    per_line = _ctc(logits, targets, target_lengths, "none")
    if normalize:
        lengths = torch.as_tensor(target_lengths, dtype=per_line.dtype, device=per_line.device)
        per_line = per_line / lengths.clamp(min=1)
    return per_line
