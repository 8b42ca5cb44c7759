"""Synthesise a dataset of (degraded, clean, transcription) line triplets.

``synthesize(cfg, run)`` is the pipeline stage; ``ensure_dataset(cfg)`` is what every other
stage calls to get the manifest of a complete dataset (made, or finished, when missing).

Determinism: sample ``index`` of ``split`` draws everything (text, hand, style, degradations)
from its own ``numpy.random.Generator`` seeded with ``(data.seed, split, index)``, so the same
config and seed give byte-identical files whatever the number of worker processes or the order they
finish in. PNGs carry no timestamps; dataset.json none either.

Interruptions: finished samples are appended to ``manifest.partial.jsonl`` as they come in; a
rerun with the same settings (recorded in ``.synth-state.json``) keeps every sample whose two
images exist and decode, and makes the rest. The manifest is
written under a temporary name and renamed, and ``dataset.json`` with ``complete: true`` is
written last, so a folder without it is never taken for a finished dataset.
"""

from __future__ import annotations

import json
import logging
import math
import multiprocessing as mp
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from .. import config as C
from ..files import write_json_atomic
from ..runs import file_lock, progress_options
from . import manifest as M
from .charset import Charset
from .corpus import Corpus, build_corpus
from .dataset import save_png
from .degrade import degrade, to_uint8
from .fonts import Font, FontError, check_usable, load_fonts
from .paths import DataError, SYNTH_VERSION, settings_hash, dataset_root, ensure_writable, synthesis_settings
from .render import clean_from_mask, render_line

log = logging.getLogger("docrestore")

SPLIT_CODE = {"train": 0, "val": 1, "test": 2, "reader": 3}
PARTIAL = "manifest.partial.jsonl"
STATE = ".synth-state.json"
LOCK = ".synth.lock"


@dataclass
class SynthPlan:
    """Everything a worker process needs to make any sample."""

    root: Path
    seed: int
    height: int
    width: int
    severity_min: float
    severity_max: float
    fonts: dict[str, Font]
    train_fonts: list[str]
    test_fonts: list[str]
    corpus: Corpus


def sample_id(split: str, index: int) -> str:
    return f"{split}_{index:06d}"


def sample_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The generator of one sample: independent of every other sample and of the worker."""
    return np.random.default_rng([seed % 2**64, SPLIT_CODE[split], index])


def split_sizes(cfg: C.Config) -> dict[str, int]:
    sizes = {"train": cfg.data.n_train, "val": cfg.data.n_val, "test": cfg.data.n_test}
    if cfg.data.n_reader:
        sizes[M.READER_SPLIT] = cfg.data.n_reader
    return sizes


def make_plan(cfg: C.Config, root: Path | None = None) -> SynthPlan:
    """Resolve the fonts (missing ones are errors), check they are text hands, build the corpus."""
    data = cfg.data
    heldout = list(dict.fromkeys(data.heldout_fonts))
    train_specs = [f for f in dict.fromkeys(data.fonts) if f not in heldout]
    if not train_specs:
        raise FontError(f"no training fonts: every font of data.fonts {data.fonts} is in data.heldout_fonts "
                        f"{data.heldout_fonts}; keep at least one font for training")
    fonts = load_fonts(train_specs + heldout)
    for font in fonts:
        check_usable(font)
    corpus = build_corpus(data, fonts, train_fonts=fonts[:len(train_specs)])
    return SynthPlan(root=root or dataset_root(cfg), seed=data.seed, height=data.height, width=data.width,
                     severity_min=data.severity_min, severity_max=data.severity_max,
                     fonts={f.name: f for f in fonts}, train_fonts=train_specs,
                     test_fonts=train_specs + heldout, corpus=corpus)


def make_sample(plan: SynthPlan, split: str, index: int) -> tuple[dict, np.ndarray, np.ndarray]:
    """One triplet: its manifest record, the clean and the degraded image (uint8, H x W)."""
    rng = sample_rng(plan.seed, split, index)
    # Test lines and the reader's lines come in every hand; train and val only in the training hands.
    names = plan.test_fonts if split in ("test", M.READER_SPLIT) else plan.train_fonts
    font = plan.fonts[names[rng.integers(len(names))]]
    text = plan.corpus.line(rng, font.name)
    severity = float(rng.uniform(plan.severity_min, plan.severity_max))
    mask, _ = render_line(text, font, plan.height, plan.width, rng)
    clean = clean_from_mask(mask)

    def bleed() -> np.ndarray:  # only drawn when the page shows through
        other, _ = render_line(plan.corpus.line(rng, font.name), font, plan.height, plan.width, rng,
                               per_glyph=False)
        return clean_from_mask(other)

    degraded, spec = degrade(clean, rng, severity, bleed=bleed)
    sid = sample_id(split, index)
    record = {
        "id": sid, "split": split,
        "degraded": f"images/{split}/{sid}_degraded.png", "clean": f"images/{split}/{sid}_clean.png",
        "text": text, "font": font.name, "severity": round(severity, 4), "degradations": spec,
        "height": plan.height, "width": plan.width,
    }
    return record, to_uint8(clean), to_uint8(degraded)


def _png_ok(path: Path, width: int, height: int) -> bool:
    try:
        with Image.open(path) as im:
            im.load()
            return im.mode == "L" and im.size == (width, height)
    except (OSError, ValueError, SyntaxError):
        return False


# ------------------------------------------------------------------------------ workers
_PLAN: SynthPlan | None = None


def _init_worker(plan: SynthPlan) -> None:
    global _PLAN
    _PLAN = plan


def _work(task: tuple[str, int, dict | None]) -> tuple[dict, bool]:
    """Make sample (split, index), or keep it when its record is known and both files decode.
    Returns the record and whether it was (re)made."""
    split, index, known = task
    plan = _PLAN
    assert plan is not None, "worker used before _init_worker"
    if known is not None and all(_png_ok(plan.root / known[k], plan.width, plan.height)
                                 for k in ("clean", "degraded")):
        return known, False
    record, clean, degraded = make_sample(plan, split, index)
    save_png(plan.root / record["clean"], clean)
    save_png(plan.root / record["degraded"], degraded)
    return record, True


def _pool_context():
    # fork on Linux (as torch's DataLoader does): workers start at once with the plan in memory,
    # and scripts without a __main__ guard, `python -c` and stdin scripts work. Elsewhere spawn
    # (fork is unsafe on macOS).
    if sys.platform.startswith("linux") and "fork" in mp.get_all_start_methods():
        return mp.get_context("fork")
    return mp.get_context("spawn")


def _run_tasks(plan: SynthPlan, tasks: list, workers: int, partial_path: Path) -> list[dict]:
    records: list[dict] = []
    made = 0
    bar = tqdm(total=len(tasks), desc="synthesising lines", unit="line", **progress_options())
    with open(partial_path, "a", encoding="utf-8") as partial:
        def collect(result):
            nonlocal made
            record, fresh = result
            records.append(record)
            if fresh:
                made += 1
                partial.write(M.record_line(record) + "\n")
                if made % 64 == 0:
                    partial.flush()
            bar.update(1)

        if workers <= 1:
            _init_worker(plan)
            for task in tasks:
                collect(_work(task))
        else:
            with _pool_context().Pool(workers, initializer=_init_worker, initargs=(plan,)) as pool:
                for result in pool.imap_unordered(_work, tasks, chunksize=8):
                    collect(result)
    bar.close()
    log.info("synthesis: %d lines made, %d kept from an earlier run", made, len(tasks) - made)
    return records


# ------------------------------------------------------------------------------ datasets
def _folder_lock(root: Path):
    """One synthesiser per folder: parallel jobs asking for the same dataset wait, then find it
    complete."""
    return file_lock(root / LOCK)


def _settings_diff(old: dict, new: dict) -> str:
    keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    return ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys) or "unknown"


def _complete_manifest(root: Path, cfg: C.Config, digest: str) -> Path | None:
    """The manifest of the complete dataset in ``root``, or None when it is not complete.

    A complete dataset made with other settings is used as it is (with a warning): an explicit
    data.root says "this dataset"."""
    meta = M.read_meta(root)
    manifest = root / M.MANIFEST
    if not (meta and meta.get("complete") is True and manifest.is_file() and (root / M.CHARSET).is_file()):
        return None
    # Cheap check that nobody deleted images since (decoding every file is left to a rerun).
    for rec in M.read_manifest(manifest):
        if not (root / rec["degraded"]).is_file() or not (root / rec["clean"]).is_file():
            log.warning("dataset %s lacks %s; finishing it", root, rec["degraded"])
            return None
    if meta.get("hash") != digest:
        log.warning("data.root %s holds a complete dataset made with other settings (%s); using it as it is",
                    root, _settings_diff(meta.get("settings") or {}, synthesis_settings(cfg)))
    return manifest


def _check_same_settings(root: Path, digest: str) -> None:
    """An unfinished dataset made with other settings is neither finished nor overwritten."""
    other = _recorded_hash(root)
    if other and other != digest:
        raise DataError(
            f"data.root {root} holds an unfinished dataset made with other settings (hash {other}, "
            f"these give {digest}). Use another data.root, data.root=auto (one folder per setting), "
            f"or delete the folder to remake it")


def _recorded_hash(root: Path) -> str | None:
    """The settings hash the folder's files were made with (dataset.json, or the state file a
    synthesis writes first and keeps), or None when neither says."""
    for name in (M.META, STATE):
        try:
            found = json.loads((root / name).read_text(encoding="utf-8")).get("hash")
        except (OSError, json.JSONDecodeError, AttributeError):
            continue
        if found:
            return found
    return None


def _known_records(root: Path) -> dict[str, dict]:
    """Records of samples made by an earlier (maybe interrupted) run of the same settings."""
    known: dict[str, dict] = {}
    for name in (M.MANIFEST, PARTIAL):
        path = root / name
        if not path.is_file():
            continue
        with path.open(encoding="utf-8") as f:
            for line in f:
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:  # the line being written when the run was killed
                    continue
                if isinstance(rec, dict) and "id" in rec:
                    known[rec["id"]] = rec
    return known


def _synthesise(cfg: C.Config) -> Path:
    """Make (or finish) the synthetic dataset of ``cfg``; returns its manifest path."""
    root = dataset_root(cfg)
    digest = settings_hash(cfg)
    manifest_path = root / M.MANIFEST
    if root.is_dir():
        done = _complete_manifest(root, cfg, digest)
        if done:
            return done
        _check_same_settings(root, digest)
    ensure_writable(root)
    with _folder_lock(root):
        done = _complete_manifest(root, cfg, digest)
        if done:  # another job finished it while we waited
            return done
        _check_same_settings(root, digest)
        # Earlier samples are kept only when the folder says which settings made them.
        known = _known_records(root) if _recorded_hash(root) == digest else {}
        write_json_atomic(root / STATE, {"hash": digest}, sort_keys=True)
        plan = make_plan(cfg, root)
        for split in split_sizes(cfg):
            (root / "images" / split).mkdir(parents=True, exist_ok=True)
        tasks = [(split, i, known.get(sample_id(split, i)))
                 for split, n in split_sizes(cfg).items() for i in range(n)]
        workers = cfg.data.workers or os.cpu_count() or 1
        workers = max(1, min(workers, math.ceil(len(tasks) / 16)))
        log.info("synthesising %d lines into %s with %d process(es)", len(tasks), root, workers)
        records = _run_tasks(plan, tasks, workers, root / PARTIAL)
        order = {sample_id(s, i): n for n, (s, i, _) in enumerate(tasks)}
        records.sort(key=lambda r: order[r["id"]])
        charset = Charset.from_texts(r["text"] for r in records)
        charset.to_file(root / M.CHARSET)
        M.write_manifest(manifest_path, records)
        counts = M.split_counts(records)
        meta = {
            "complete": True, "hash": digest, "synth_version": SYNTH_VERSION,
            "settings": synthesis_settings(cfg), "counts": counts,
            "fonts": {name: font.path for name, font in plan.fonts.items()},
            # Which file drew each hand, by content: two machines with other font packages differ here.
            "font_sha256": {name: _file_sha(font.path) for name, font in plan.fonts.items()},
            "train_fonts": plan.train_fonts, "test_fonts": plan.test_fonts,
            "heldout_fonts": [f for f in plan.test_fonts if f not in plan.train_fonts],
            "charset_size": len(charset.chars), "manifest": M.MANIFEST, "charset": M.CHARSET,
        }
        write_json_atomic(root / M.META, meta, sort_keys=True)  # last: from now on the dataset counts as complete
        (root / PARTIAL).unlink(missing_ok=True)
    log.info("dataset complete: %s (%s lines, %d characters)", root, counts, len(charset.chars))
    return manifest_path


def _file_sha(path: str | Path) -> str:
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def content_hash(manifest: str | Path) -> str:
    """16 hex digits over a dataset's manifest and the decoded pixels of every image it lists,
    in manifest order: equal on two machines exactly when they synthesised the same lines (PNG
    bytes are left out: another zlib may compress the same pixels differently)."""
    import hashlib

    manifest = Path(manifest)
    digest = hashlib.sha256(manifest.read_bytes())
    for rec in M.read_manifest(manifest):
        for key in ("clean", "degraded"):
            if rec.get(key):
                with Image.open(M.resolve(manifest, rec[key])) as im:
                    digest.update(np.asarray(im).tobytes())
    return digest.hexdigest()[:16]


def use_real_manifest(cfg: C.Config) -> Path:
    """Validate ``data.manifest`` (real lines) and return its path. A charset.txt is written
    next to it when missing (derived from its texts) if the folder is writable."""
    path = C.resolve_path(cfg.data.manifest)
    records = M.validate_manifest(path)
    charset_path = path.parent / M.CHARSET
    if not charset_path.is_file():
        charset = Charset.from_texts(r["text"] for r in records)
        try:
            charset.to_file(charset_path)
            log.info("wrote %s (%d characters, derived from the manifest's texts)", charset_path, len(charset.chars))
        except OSError as exc:
            log.warning("cannot write %s (%s); the charset is derived from the texts when loaded", charset_path, exc)
    return path


def ensure_dataset(cfg: C.Config) -> Path:
    """The manifest path of a complete dataset for ``cfg``: ``data.manifest`` (validated) when
    set, the real-line pairs for ``data.source=real`` (data/real_pairs.py), else the synthetic
    dataset, synthesised or finished when missing."""
    if cfg.data.manifest:
        return use_real_manifest(cfg)
    if cfg.data.source == "real":
        from .real_pairs import ensure_pairs

        return ensure_pairs(cfg)
    return _synthesise(cfg)


def notebook_overrides(seed: int | None = None, n_train: int | None = None, root: str | None = None,
                       fonts: list[str] | str | None = None, overrides: list[str] | None = None) -> list[str]:
    """Config overrides from the data notebook's parameters; None means "the profile's".
    ``seed`` is the data seed (``data.seed``)."""
    out = C.override_list(overrides)
    if seed is not None:
        out.append(f"data.seed={seed}")
    if n_train is not None:
        out.append(f"data.n_train={n_train}")
    if root is not None:
        out.append(f"data.root={root}")
    if fonts is not None:
        fonts = [f.strip() for f in fonts.split(",")] if isinstance(fonts, str) else list(fonts)
        out.append("data.fonts=" + json.dumps(fonts))  # JSON is YAML: names with spaces stay whole
    return out


def dataset_summary(manifest: Path) -> dict:
    """Counts per split, fonts and charset size of a dataset (for logs and MLflow)."""
    records = M.read_manifest(manifest)
    fonts: dict[str, int] = {}
    for r in records:
        fonts[r.get("font") or "real"] = fonts.get(r.get("font") or "real", 0) + 1
    charset = M.charset_for(manifest, records)
    meta = M.read_meta(Path(manifest).parent) or {}
    return {"manifest": str(manifest), "hash": meta.get("hash", ""), "counts": M.split_counts(records),
            "fonts": fonts, "charset_size": len(charset.chars), "charset": "".join(charset.chars)}


def synthesize(cfg: C.Config, run) -> Path:
    """Pipeline stage ``synth``: make the dataset (or find it made), write a sample grid and a
    summary into the run folder, log them to MLflow; returns the manifest path."""
    from .. import tracking
    from .stats import plot_sample_grid

    manifest = ensure_dataset(cfg)
    summary = dataset_summary(manifest)
    summary_path = run.write_json("dataset_summary.json", summary)
    fig = plot_sample_grid(manifest, n=min(8, sum(summary["counts"].values())))
    grid_path = run.path("samples.png")
    fig.savefig(grid_path, dpi=100)
    log.info("dataset %s: %s lines per split, %d fonts, %d characters; sample grid %s",
             manifest.parent, summary["counts"], len(summary["fonts"]), summary["charset_size"], grid_path)
    with tracking.tracked(cfg, run.dir, run.name, tags={"stage": "synth"}) as tracker:
        tracker.set_tags({"data.hash": summary["hash"], "data.manifest": str(manifest),
                          "data.fonts_used": ", ".join(sorted(summary["fonts"]))})
        tracker.log_metrics({f"data/n_{split}": n for split, n in summary["counts"].items()}
                            | {"data/charset_size": summary["charset_size"],
                               "data/fonts": len(summary["fonts"])}, step=0)
        for path in (summary_path, grid_path, manifest.parent / M.META, manifest.parent / M.CHARSET):
            tracker.log_artifact(path, "dataset")
    return manifest
