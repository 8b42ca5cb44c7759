"""Data: archival text, handwriting fonts, rendering, degradations, manifests, torch datasets.

Entry points: :func:`ensure_dataset` (the manifest of a complete dataset, made when missing),
:func:`synthesize` (the ``synth`` pipeline stage), :class:`LineDataset` / :func:`collate_lines`
and :class:`Charset`. Names are imported lazily so that synthesis workers never import torch.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "dataset_root": "paths", "settings_hash": "paths", "DataError": "paths",
    "OutputFolderError": "paths",
    "synthesize": "synth", "ensure_dataset": "synth", "dataset_summary": "synth",
    "Charset": "charset", "CharsetError": "charset",
    "LineDataset": "dataset", "collate_lines": "dataset",
    "read_manifest": "manifest", "validate_manifest": "manifest", "charset_for": "manifest",
    "ManifestError": "manifest",
    "FontError": "fonts", "CorpusError": "corpus",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
