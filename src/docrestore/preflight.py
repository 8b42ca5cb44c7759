"""Checks of list items and named things a config refers to, run by every CLI stage before it
starts and by its ``--dry-run``, so that the dry run refuses what the real run would die on.

config.validate checks types and ranges of each key; here: the recognizer taps of the feature
loss, the fonts and word-list languages of a dataset still to synthesise, and the files a config
names (checkpoints, a corpus file, a manifest).
"""

from __future__ import annotations

import difflib
import json

from . import config as C

STAGES_THAT_READ_DATA = ("synth", "pretrain", "train", "evaluate")


def _did_you_mean(value: str, allowed) -> str:
    close = difflib.get_close_matches(value, list(allowed), n=1)
    return f" Did you mean '{close[0]}'?" if close else ""


def tap_problems(cfg: C.Config) -> list[str]:
    from .models.recognizer import RECOGNIZERS

    fl = cfg.train.feature_loss
    taps = RECOGNIZERS[cfg.recognizer.name].TAPS
    out = [f"'train.feature_loss.taps' has {t!r}, which the {cfg.recognizer.name} recognizer does not offer."
           f"{_did_you_mean(t, taps)} Its taps: {', '.join(taps)}" for t in fl.taps if t not in taps]
    if fl.weight > 0 and not fl.taps:
        out.append(f"'train.feature_loss.taps' is empty but the feature loss is on (weight {fl.weight:g}); "
                   f"name at least one of {', '.join(taps)}")
    return out


def _dataset_complete(cfg: C.Config) -> bool:
    from .data.paths import dataset_root

    meta = dataset_root(cfg) / "dataset.json"
    try:
        return bool(json.loads(meta.read_text(encoding="utf-8")).get("complete"))
    except (OSError, ValueError):
        return False


def data_problems(cfg: C.Config) -> list[str]:
    """Fonts and languages of a dataset that still has to be synthesised."""
    d = cfg.data
    if d.manifest:
        path = C.resolve_path(d.manifest)
        return [] if path.is_file() else [f"'data.manifest' = {d.manifest!r}: no such file ({path})"]
    if d.source == "real":  # pairs are made from ingested lines: no font or corpus is used
        path = C.resolve_path(d.real_lines)
        return [] if path.is_file() else [f"'data.real_lines' = {d.real_lines!r}: no such file ({path}); "
                                          "run `docrestore ingest` first"]
    if _dataset_complete(cfg):
        return []  # nothing will be rendered
    from .data.fonts import FontError, resolve_font

    out = []
    for key in ("fonts", "heldout_fonts"):
        for i, spec in enumerate(getattr(d, key)):
            try:
                resolve_font(spec)
            except FontError as exc:
                out.append(f"'data.{key}[{i}]': {exc}")
    if d.corpus_file and not C.resolve_path(d.corpus_file).is_file():
        out.append(f"'data.corpus_file' = {d.corpus_file!r}: no such file")
    try:
        import wordfreq

        langs = wordfreq.available_languages()
        out += [f"'data.languages' has {lang!r}, which wordfreq does not know.{_did_you_mean(lang, langs)}"
                for lang in d.languages if lang not in langs]
    except ImportError:  # pragma: no cover - wordfreq is a dependency
        pass
    return out


def file_problems(cfg: C.Config) -> list[str]:
    keys = ("recognizer.checkpoint", "eval.reader", "eval.checkpoint", "train.resume")
    flat = C.flatten(C.to_dict(cfg))
    return [f"'{k}' = {flat[k]!r}: no such file ({C.resolve_path(flat[k])})"
            for k in keys if flat[k] and not C.resolve_path(flat[k]).is_file()]


def check(cfg: C.Config, stage: str) -> None:
    """Raise :class:`config.ConfigError` listing every problem found for ``stage``."""
    problems = tap_problems(cfg) + file_problems(cfg)
    if stage in STAGES_THAT_READ_DATA:
        problems += data_problems(cfg)
    if problems:
        raise C.ConfigError("the config names things that do not exist, so nothing ran:\n  " + "\n  ".join(problems))
