"""Notebook 06's library side: an archive's lines read before and after restoration, as
`docrestore evaluate data.manifest=... eval.split=...` measures them (the same config rule and
the same real-lines entry, :mod:`.real`), and the before/after table."""

from __future__ import annotations

from .. import config as C
from . import evaluate as EV
from . import real as REAL


def archive_report(manifest: str, checkpoint: str, reader: str = "", *, experiment: str, split: str = "all",
                   profile: str | None = None, overrides=(), reuse: bool = True) -> dict:
    """Notebook 06: an archive's lines read before and after restoration, as `docrestore evaluate
    data.manifest=... eval.split=...` measures them (the same config rule, the same entry). The
    entry that command wrote is reused when it measured exactly this (:func:`real.reusable_entry`);
    else the lines are evaluated now. Returns ``{"entry", "rows" (the per-line CSV), "folder",
    "how"}``; without a manifest and a checkpoint (the notebook run as it is, as CI runs every
    notebook) an empty report whose ``how`` says what to give."""
    if not manifest or not checkpoint:
        return {"entry": None, "rows": [], "folder": None,
                "how": "nothing evaluated: give the archive's manifest (docrestore ingest --out FOLDER writes "
                       "FOLDER/manifest.jsonl) and the generator checkpoint (runs/<gan run>/best_val_cer.pt); "
                       "see the README, 'Your own archive lines'"}
    cfg = C.load_config(profile=profile, overrides={
        "data.manifest": manifest, "eval.checkpoint": checkpoint, "eval.reader": reader, "eval.split": split,
        "eval.experiment": experiment, **dict(C.parse_override(o) for o in C.override_list(overrides))})
    trained, ckpt, experiment = EV.checkpoint_config(cfg)
    entry, how = REAL.reusable_entry(trained, ckpt, experiment) if reuse else (None, "reuse=False")
    if entry is None:
        how = f"evaluated now ({how})"
        entry = REAL.evaluate_real_lines(trained, ckpt, experiment=experiment)
    folder = REAL.lines_dir(trained, experiment)
    return {"entry": entry, "rows": REAL.read_per_line(folder / REAL.PER_LINE_CSV), "folder": folder,
            "how": f"{how}; per line (most improved first): {folder / REAL.PER_LINE_CSV}"}


def archive_summary(report: dict):
    """The before/after table of :func:`archive_report`: per reading, mean CER and WER with their
    95 % intervals and the corpus CER, and the paired test (a DataFrame where pandas is present);
    None for an empty report."""
    if report["entry"] is None:
        return None
    m, p, corpus = report["entry"]["metrics"], report["entry"]["paired"], report["entry"]["corpus"]
    rows = []
    for k in REAL.READS:
        c, w = m[f"cer_{k}"], m[f"wer_{k}"]
        rows.append({"line read": k, "lines": c["n"],
                     "CER mean [95% CI]": f"{c['mean']:.3f} [{c['lo']:.3f}, {c['hi']:.3f}]",
                     "WER mean [95% CI]": f"{w['mean']:.3f} [{w['lo']:.3f}, {w['hi']:.3f}]",
                     "corpus CER": round(corpus[f"cer_{k}"], 4),
                     "paired Wilcoxon p (CER)": "" if k == "degraded" else f"{p['cer']['p_value']:.3g}"})
    try:
        import pandas as pd

        return pd.DataFrame(rows)
    except ImportError:  # pragma: no cover - pandas comes with mlflow
        return rows
