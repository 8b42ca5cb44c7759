"""Evaluation: metrics (PSNR, SSIM, CER, WER, DIBCO), statistics over lines and seeds, the
reference binarisations (Otsu, Sauvola) and the results ledger. Definitions: docs/metrics.md."""

from . import ledger, metrics, references, stats

__all__ = ["ledger", "metrics", "references", "stats"]
