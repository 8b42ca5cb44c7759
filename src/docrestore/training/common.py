"""Pieces shared by the recognizer pretraining and the GAN trainer.

- `EpochBatches`: the data order is a pure function of (seed, epoch), so `resume=` continues
  with exactly the batches an uninterrupted run would have seen.
- `NonFiniteGuard`: skip a step whose loss is NaN/inf, stop after many in a row.
- `Improvement`: best-metric bookkeeping and early stopping.
- `collapse_check`: the all-black / all-white failure that DE-GAN users report.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

# Data loading lives with the datasets (evaluation uses it too); training code reaches it here.
from ..data.loading import loader, subset, to_numpy_images  # noqa: F401

log = logging.getLogger("docrestore")


class EpochBatches(torch.utils.data.Sampler):
    """Batch sampler over one epoch whose order depends only on (seed, epoch).

    ``start`` skips the batches already consumed before an interruption.
    """

    def __init__(self, n: int, batch_size: int, seed: int, epoch: int, start: int = 0,
                 shuffle: bool = True, drop_last: bool = True):
        self.n, self.batch_size, self.start = n, batch_size, start
        if shuffle:
            g = torch.Generator().manual_seed(seed * 100_003 + epoch)
            order = torch.randperm(n, generator=g).tolist()
        else:
            order = list(range(n))
        stop = (n // batch_size) * batch_size if drop_last and n >= batch_size else n
        self.batches = [order[i:i + batch_size] for i in range(0, stop, batch_size)]

    def __iter__(self):
        return iter(self.batches[self.start:])

    def __len__(self) -> int:
        return max(0, len(self.batches) - self.start)


def steps_per_epoch(n: int, batch_size: int) -> int:
    return max(1, n // batch_size) if n >= batch_size else 1


class NonFiniteGuard:
    """Counts steps skipped for a non-finite loss and stops the run after too many in a row."""

    def __init__(self, limit: int):
        self.limit, self.in_a_row, self.total = limit, 0, 0

    def ok(self, *losses: torch.Tensor, step: int) -> bool:
        if all(torch.isfinite(t).all() for t in losses):
            self.in_a_row = 0
            return True
        self.in_a_row += 1
        self.total += 1
        log.warning("step %d: non-finite loss, step skipped (%d in a row, %d in all)",
                    step, self.in_a_row, self.total)
        if self.in_a_row >= self.limit:
            raise FloatingPointError(
                f"{self.in_a_row} consecutive steps had a non-finite loss (last at step {step}). "
                "Check the learning rates (train.lr_g, train.lr_d), the CTC weight and schedule "
                "(train.ctc.*), and that the "
                "transcriptions fit the recognizer's frames (data.max_chars). Resume from last.pt "
                "with changed settings.")
        return False


@dataclass
class Improvement:
    """Tracks the best value of a metric; lower is better for CER/WER, higher for PSNR/SSIM."""

    metric: str
    patience: int = 0
    best: float | None = None
    bad: int = 0

    @property
    def higher_is_better(self) -> bool:
        return self.metric.endswith(("psnr", "ssim"))

    def update(self, value: float) -> bool:
        """Record ``value``; True when it is a new best."""
        if value is None or not math.isfinite(value):
            self.bad += 1
            return False
        better = (self.best is None or
                  (value > self.best if self.higher_is_better else value < self.best))
        if better:
            self.best, self.bad = value, 0
        else:
            self.bad += 1
        return better

    @property
    def should_stop(self) -> bool:
        return self.patience > 0 and self.bad >= self.patience

    def state(self) -> dict:
        return {"metric": self.metric, "best": self.best, "bad": self.bad}

    def load(self, state: dict) -> None:
        self.best, self.bad = state.get("best"), state.get("bad", 0)


def collapse_check(restored: torch.Tensor, clean: torch.Tensor | None = None) -> str:
    """'' when the output looks like text on paper; else what collapsed ('all-white', 'all-black',
    'flat'). Text lines hold a few % ink, so a restoration with almost no ink where the clean lines
    have some, or almost all ink, has collapsed."""
    x = restored.detach().float()
    ink = (x < 0.5).float().mean().item()
    std = x.std().item()
    if clean is not None:
        clean_ink = (clean.detach().float() < 0.5).float().mean().item()
        if clean_ink > 0.005 and ink < 0.1 * clean_ink:
            return "all-white"
    elif ink < 1e-4:
        return "all-white"
    if ink > 0.9:
        return "all-black"
    if std < 0.01:
        return "flat"
    return ""


def metric_file_name(metric: str) -> str:
    return "best_" + metric.replace("/", "_") + ".pt"


def save_grid(rows: dict[str, np.ndarray], texts: list[str], path: Path, title: str = "") -> Path:
    """A sample grid: one column per line, one row per kind (degraded / restored / clean)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(rows)
    n = len(texts)
    h, w = next(iter(rows.values())).shape[1:]
    fig_w = 8.0
    row_h = fig_w * h / w + 0.25
    fig, axes = plt.subplots(n * len(names), 1, figsize=(fig_w, row_h * n * len(names)), squeeze=False)
    k = 0
    for i in range(n):
        for name in names:
            ax = axes[k, 0]
            ax.imshow(rows[name][i], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            label = f"{name}" + (f" — {texts[i]}" if name == names[-1] else "")
            ax.set_title(label, fontsize=7, loc="left", pad=2)
            k += 1
    if title:
        fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


@dataclass
class History:
    """Records (step, metrics) for curves; saved in checkpoints and history.json."""

    records: list[dict] = field(default_factory=list)

    def add(self, step: int, metrics: dict) -> None:
        rec = {"step": int(step)}
        rec.update({k: float(v) for k, v in metrics.items() if v is not None})
        self.records.append(rec)


class CTCRecord:
    """Per step of a GAN run: the raw CTC (before the clip), the weighted CTC term (what entered
    the generator's loss) and whether the CTC gradient reached the generator; :meth:`summary` is
    what the run's result and ledger entry keep (``train.ctc``)."""

    PERCENTILES = (5, 25, 50, 75, 95)

    def __init__(self):
        self.raw: list[float] = []
        self.weighted: list[float] = []
        self.grad: list[bool] = []
        self.clamped = 0  # steps with a positive weight whose CTC sat above a clamp (no gradient)

    def add(self, raw: float, weighted: float, grad: bool, clamped: bool) -> None:
        self.raw.append(float(raw))
        self.weighted.append(float(weighted))
        self.grad.append(bool(grad))
        self.clamped += int(clamped)

    def state(self) -> dict:
        return {"raw": self.raw, "weighted": self.weighted, "grad": self.grad, "clamped": self.clamped}

    def load(self, state: dict) -> None:
        self.raw, self.weighted = list(state.get("raw", [])), list(state.get("weighted", []))
        self.grad, self.clamped = [bool(g) for g in state.get("grad", [])], int(state.get("clamped", 0))

    def summary(self) -> dict:
        """``onset_step``: the first step (1-based, as the history counts) whose CTC gradient reached
        the generator, None if none did; ``zero_grad_share``: share of steps without it (weight 0,
        clamped, or skipped); ``clamped_steps``; percentiles and max of the raw and weighted CTC."""
        n = len(self.grad)
        onset = next((i + 1 for i, g in enumerate(self.grad) if g), None)

        def pct(values: list[float]) -> dict:
            v = np.asarray([x for x in values if math.isfinite(x)], dtype=float)
            if not v.size:
                return {}
            out = {f"p{q:02d}": float(np.percentile(v, q)) for q in self.PERCENTILES}
            out["max"] = float(v.max())
            return out

        return {"steps": n, "onset_step": onset,
                "zero_grad_share": (1.0 - sum(self.grad) / n) if n else None,
                "clamped_steps": self.clamped, "raw": pct(self.raw), "weighted": pct(self.weighted)}


def plateau(records: list[dict], key: str = "val/cer", window: float = 0.25, tol: float = 0.005) -> dict:
    """Whether ``key`` (lower is better) has plateaued: it fell by less than ``tol`` over the last
    ``window`` share of the steps so far, measured from the last validation at or before the
    window's start. Not reached while no validation lies that early (too few to judge)."""
    vals = [(int(r["step"]), float(r[key])) for r in records
            if isinstance(r.get(key), (int, float)) and math.isfinite(r[key])]
    out = {"reached": False, "fall": None, "rule": f"{key} fell by < {tol:g} over the last {window:g} of the steps"}
    if not vals:
        return out
    start = vals[-1][0] * (1.0 - window)
    before = [v for s, v in vals if s <= start]
    after = [v for s, v in vals if s > start]
    if not before or not after:
        return out
    fall = before[-1] - min(after)
    return {**out, "reached": bool(fall < tol), "fall": float(fall)}


@torch.no_grad()
def recognizer_frames(recognizer, height: int, width: int, device) -> int:
    """CTC frames the recognizer outputs for a ``height x width`` line."""
    was_training = recognizer.training
    recognizer.eval()
    frames = recognizer(torch.ones(1, 1, height, width, device=device)).logits.shape[0]
    recognizer.train(was_training)
    return int(frames)
