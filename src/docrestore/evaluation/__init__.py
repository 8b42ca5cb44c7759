"""Evaluation: metrics (PSNR, SSIM, CER, WER, DIBCO), statistics over lines and seeds, the
reference binarisations (Otsu, Sauvola) and the results ledger. Definitions: docs/metrics.md."""

import importlib

__all__ = ["ledger", "metrics", "references", "stats"]


def __getattr__(name: str):
    # Submodules load on first use: reading the ledger (study, figures) then needs no scipy or
    # scikit-image, which cost about a second of CPU at every process and notebook kernel start.
    if name in __all__:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
