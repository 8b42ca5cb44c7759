"""What a config does, measured: the behavioural fingerprint a ledger entry records.

A ledger entry is stale when the code that made it would now make something else, not when a
byte under ``src/`` changed. :func:`fingerprint` runs the arm's own config (its generator,
discriminator, losses, weights, CTC schedule and scenario) for :data:`STEPS` deterministic
training steps on a fixed tiny batch that the arm's own synthesis settings draw, on the CPU with
one thread, and evaluates the result on that batch with the evaluation code. It records:

- ``data``: a hash of the tiny batch (manifest records and pixels): the synthesis code;
- ``steps``: the losses of each step (the steps sit at spread-out points of the training, so a
  CTC schedule's warm-up, ramp and end are all exercised);
- ``params``: for each trained model, its parameter count and three sums of its parameters
  after the steps (plain, absolute, and weighted by a fixed pseudo-random sign per parameter);
- ``eval``: the means of the per-line metrics (PSNR, SSIM, CER, WER) on the tiny batch.

:func:`differences` compares two fingerprints number by number with a relative tolerance
(:data:`RTOL`): a comment, a docstring or a moved function leaves every number equal; a changed
loss constant changes the losses or parameters of exactly the arms whose config uses that loss.
What it cannot see is said in docs/experiments.md ("Stale entries").

:func:`page_fingerprint` is the same for a page arm (DIBCO benchmark): its page trainer on patches
of fixed tiny synthetic pages, then the page evaluation (tiled restoration, binarisation, DIBCO
scores, the classical references) on a tiny test page. :func:`local_page_data_hash` re-makes a
page entry's ``data_hash`` from the page files.

Entries also record the machine they were made on (:func:`docrestore.machine.machine_info`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import shutil
import tempfile
from pathlib import Path

from . import config as C

log = logging.getLogger("docrestore")

# Bump when the fingerprint's recipe changes (tiny batch, steps, what is recorded): fingerprints
# of another version are not compared, the entry is reported as made under another recipe.
VERSION = 1
LINES = 4            # lines in the tiny batch (train and test alike)
STEPS = 3            # training steps
RECOGNIZER_STEPS = 30  # steps fitting the tiny recognizer to the tiny batch
SEED = 0             # the fingerprint's seed: the arms' seeds share one fingerprint
DIGITS = 7           # significant digits recorded
RTOL = 1e-4          # relative tolerance when comparing (cross-machine float differences)
ATOL = 1e-6          # absolute tolerance for numbers near zero
# What each step records: the generator's loss and each weighted term that enters it (so a change
# to one loss shows at full size, not diluted in the sum), the discriminator's and the trained
# recognizer's loss. Not the CTC monitor: it is computed at weight 0 too, where it changes nothing.
_LOSS_KEYS = ("train/loss_g", "train/adv", "train/pixel", "train/feature", "train/ctc_term", "train/ctc_weight",
              "train/loss_d", "train/recognizer_ctc")

_cache: dict[str, dict] = {}


def _round(x: float) -> float:
    x = float(x)
    if not math.isfinite(x) or x == 0:
        return x
    return float(f"{x:.{DIGITS}g}")


def _cache_key(cfg: C.Config) -> str:
    d = C.to_dict(cfg)
    d["seed"] = SEED
    for k in ("desc", "device", "runs_dir", "tracking"):  # where things go: no part of what it does
        d.pop(k, None)
    d.get("eval", {}).pop("ledger_dir", None)
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()


@contextlib.contextmanager
def _quiet_single_thread():
    """One thread (reductions then run in one order on every machine) and no INFO chatter."""
    import torch

    threads = torch.get_num_threads()
    level = log.level
    torch.set_num_threads(1)
    log.setLevel(logging.WARNING)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        log.setLevel(level)


def _tiny_config(cfg: C.Config, folder: Path) -> C.Config:
    import copy

    fcfg = copy.deepcopy(cfg)
    fcfg.seed, fcfg.device = SEED, "cpu"
    fcfg.tracking.enabled = False
    fcfg.runs_dir = str(folder / "runs")
    fcfg.data.loader_workers = 0
    fcfg.train.resume, fcfg.train.init_from = "", ""
    fcfg.train.batch_size = LINES
    fcfg.eval.lines = 0
    return fcfg


def _tiny_data(cfg: C.Config, folder: Path):
    """The fixed tiny batch: LINES train and LINES test lines drawn by the arm's synthesis
    settings (its fonts, corpus, degradations), written as a small dataset in ``folder``."""
    import numpy as np

    from .data import manifest as M
    from .data.charset import Charset
    from .data.dataset import LineDataset
    from .data.loading import Data
    from .data.synth import make_plan, make_sample, save_png

    plan = make_plan(cfg, folder)
    records, digest = [], hashlib.sha256()
    for split in ("train", "test"):
        (folder / "images" / split).mkdir(parents=True, exist_ok=True)
        for i in range(LINES):
            record, clean, degraded = make_sample(plan, split, i)
            save_png(folder / record["clean"], clean)
            save_png(folder / record["degraded"], degraded)
            records.append(record)
            digest.update(M.record_line(record).encode())
            digest.update(np.ascontiguousarray(clean).tobytes() + np.ascontiguousarray(degraded).tobytes())
    charset = Charset.from_texts(r["text"] for r in records)
    charset.to_file(folder / M.CHARSET)
    manifest = M.write_manifest(folder / M.MANIFEST, records)
    h, w = cfg.data.height, cfg.data.width
    train, test = (LineDataset(manifest, s, h, w, charset) for s in ("train", "test"))
    return Data(manifest, charset, train, test, test, digest.hexdigest()[:16])


def _tiny_recognizer(cfg: C.Config, data, folder: Path) -> Path:
    """A recognizer checkpoint with the arm's architecture, seeded and fitted for
    :data:`RECOGNIZER_STEPS` steps to the tiny batch's clean lines, so that its features tell
    text from a blank (a freshly initialised one barely does, and the feature loss would read
    about 1e-7 on every line). The real pretraining is not part of the fingerprint: see
    docs/experiments.md."""
    import torch

    from . import checkpoint as CK
    from . import device as D
    from .data.dataset import collate_lines
    from .losses import ctc_loss
    from .models import build_recognizer

    D.seed_everything(SEED)
    recognizer = build_recognizer(cfg.recognizer, num_classes=len(data.charset.chars) + 1, height=cfg.data.height)
    batch = collate_lines([data.train[i] for i in range(len(data.train))])
    opt = torch.optim.Adam(recognizer.parameters(), lr=3e-3)
    recognizer.train()
    for _ in range(RECOGNIZER_STEPS):
        loss = ctc_loss(recognizer(batch["clean"]).logits.float(), batch["targets"], batch["target_lengths"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    recognizer.eval()
    path = folder / "recognizer.pt"
    CK.save_checkpoint(path, {"kind": "recognizer", "config": C.to_dict(cfg), "charset": list(data.charset.chars),
                              "step": 0, "epoch": 0, "models": {"recognizer": recognizer.state_dict()},
                              "optimizers": {}, "scaler": None, "rng": CK.capture_rng(), "best": {},
                              "history": []})
    return path


def _param_summary(module) -> dict:
    """Count and three sums of a module's parameters: equal (within RTOL) exactly when the
    parameters are, short of a change that cancels in all three."""
    import torch

    flat = torch.cat([p.detach().float().reshape(-1) for p in module.parameters()]) if any(
        True for _ in module.parameters()) else torch.zeros(0)
    gen = torch.Generator().manual_seed(1234)
    signs = torch.randint(0, 2, flat.shape, generator=gen).float() * 2 - 1
    flat64 = flat.double()
    return {"n": int(flat.numel()), "sum": _round(flat64.sum()), "abs": _round(flat64.abs().sum()),
            "signed": _round((flat64 * signs.double()).sum())}


def _step_points(total: int) -> list[int]:
    """STEPS steps spread over training: the first, the middle and the last (schedules are
    functions of the step, so warm-up, ramp and end all show)."""
    total = max(1, total)
    return sorted({0, total // 2, total - 1}) if total >= STEPS else list(range(total))


def _steps_and_params(trainer, cfg: C.Config, batch, number) -> tuple[list[dict], dict]:
    """The arm's train step on ``batch`` at :func:`_step_points` of its own length (the tiny data
    would give another, and schedules depend on it): each step's losses through ``number``, then
    a summary of every trained module's parameters."""
    total = C.total_steps(cfg)
    trainer.total_steps = total
    steps = []
    for s in _step_points(total):
        trainer.step = s
        m = trainer.train_step(batch)
        steps.append({"step": s, **{k: number(m[k]) for k in _LOSS_KEYS if k in m}})
    params = {name: _param_summary(mod) for name, mod in
              zip(("generator", "discriminator", "recognizer"), trainer.trained_modules())}
    return steps, params


_batches: dict[str, object] = {}


def _tiny_data_cached(cfg: C.Config):
    """:func:`_tiny_data`, made once per process for each set of synthesis settings (the arms
    of a profile share one), in a folder removed when the process ends."""
    import atexit

    from .data.paths import synthesis_settings

    key = json.dumps(synthesis_settings(cfg), sort_keys=True, default=str)
    if key not in _batches:
        folder = Path(tempfile.mkdtemp(prefix="docrestore-fingerprint-data-"))
        atexit.register(shutil.rmtree, folder, True)
        _batches[key] = _tiny_data(cfg, folder)
    return _batches[key]


def _tiny_recognizer_cached(fcfg: C.Config, data, folder: Path) -> Path:
    """:func:`_tiny_recognizer`, fitted once per tiny batch and recognizer settings (the arms
    of a profile share it) and kept beside the batch."""
    key = hashlib.sha256(json.dumps([data.data_hash, C.to_dict(fcfg)["recognizer"]], sort_keys=True,
                                    default=str).encode()).hexdigest()[:16]
    path = data.manifest.parent / f"recognizer-{key}.pt"
    if not path.exists():
        shutil.copyfile(_tiny_recognizer(fcfg, data, folder), path)
    return path


def local_data_hash(cfg: C.Config) -> str | None:
    """The manifest hash (an entry's ``data_hash``) of the dataset this checkout has for
    ``cfg``: ``data.manifest``, or the complete synthetic dataset; None when not made yet."""
    from .data import manifest as M
    from .data.paths import dataset_root

    if cfg.data.manifest:
        path = C.resolve_path(cfg.data.manifest)
        return M.manifest_hash(path) if path.is_file() else None
    root = dataset_root(cfg)
    meta = M.read_meta(root) or {}
    manifest = root / M.MANIFEST
    return M.manifest_hash(manifest) if meta.get("complete") is True and manifest.is_file() else None


def _compute(cfg: C.Config) -> dict:
    import numpy as np

    from . import device as D
    from .data.loading import loader
    from .evaluation.evaluate import evaluate_generator
    from .training.gan import GANTrainer

    with tempfile.TemporaryDirectory(prefix="docrestore-fingerprint-") as tmp, _quiet_single_thread():
        folder = Path(tmp)
        fcfg = _tiny_config(cfg, folder)
        data = _tiny_data_cached(fcfg)
        trainer = GANTrainer(fcfg, None, data, _tiny_recognizer_cached(fcfg, data, folder))
        batch = next(iter(loader(data.train, fcfg, batch_size=LINES)))
        steps, params = _steps_and_params(trainer, cfg, batch, _round)
        device = D.pick_device("cpu")
        ev = evaluate_generator(fcfg, trainer.generator, data, trainer.frozen_recognizer,
                                trainer.frozen_recognizer, device, with_references=False)
        evaluation = {k: _round(np.mean(ev["per_line"][k])) for k in ("psnr", "ssim", "cer", "wer")}
    out = {"version": VERSION, "data": data.data_hash, "steps": steps, "params": params, "eval": evaluation}
    out["digest"] = hashlib.sha256(json.dumps(out, sort_keys=True).encode()).hexdigest()[:16]
    return out


def fingerprint(cfg: C.Config) -> dict:
    """The fingerprint of ``cfg`` (line arms), computed once per process for each config (the
    arms' seeds share it: it runs with its own seed)."""
    key = _cache_key(cfg)
    if key not in _cache:
        _cache[key] = _compute(cfg)
    return _cache[key]


# ------------------------------------------------------------------------------- page arms
# The page recipe: its own version, bumped when the tiny pages, the steps or what is recorded change.
PAGE_VERSION = 1
PAGES = (2, 1, 1)   # tiny pages: training, validation, test
PAGE_PATCHES = 2    # patches per tiny training page; the batch is LINES of them


def _number(x: float) -> float | None:
    """:func:`_round`, with a value that is not computed (NaN, e.g. the supervised control's
    discriminator loss) or infinite as None: ledger entries are JSON without NaN."""
    x = float(x)
    return _round(x) if math.isfinite(x) else None


def _tiny_page(i: int, height: int, width: int):
    """Tiny page ``i``: dark strokes on a stained, noisy background, drawn from a fixed seed;
    (scan float32 in [0, 1], ground-truth ink mask)."""
    import numpy as np

    rng = np.random.default_rng([SEED, i])
    ink = np.zeros((height, width), bool)
    for _ in range(height * width // 400):
        y, x = int(rng.integers(0, height - 10)), int(rng.integers(0, width - 8))
        ink[y:y + int(rng.integers(4, 10)), x:x + int(rng.integers(1, 4))] = True
        ink[y + 3:y + 5, x:x + int(rng.integers(3, 8))] = True
    stain = np.linspace(0.6, 0.85, width, dtype=np.float32)[None, :].repeat(height, 0)
    scan = np.where(ink, 0.25, stain) + rng.normal(0.0, 0.05, (height, width))
    return np.clip(scan, 0.0, 1.0).astype(np.float32), ink


def _tiny_pages(fcfg: C.Config):
    """The fixed tiny pages (:data:`PAGES`), 3 patch heights by 1.5 patch widths each, as page
    splits held in memory. They are drawn here, not read from DIBCO: the fingerprint must not
    need the page data, whose identity the entry's ``data_hash`` records."""
    from .data.pages import PagePair, PageSplits, patch_size

    h, w = patch_size(fcfg)
    pages = []
    for i in range(sum(PAGES)):
        scan, ink = _tiny_page(i, 3 * h, 3 * w // 2)
        digest = hashlib.sha256(scan.tobytes() + ink.tobytes()).hexdigest()[:16]
        pages.append(PagePair("FP", f"P{i}", Path("."), Path("."), scan, ink, digest))
    n_train, n_val, _ = PAGES
    return PageSplits(Path("."), pages[:n_train], pages[n_train:n_train + n_val], pages[n_train + n_val:])


def _compute_pages(cfg: C.Config) -> dict:
    import numpy as np

    from . import device as D
    from .data.loading import loader
    from .evaluation import dibco
    from .training.pages import PageTrainer, apply_page_budget, reads_with_recognizer

    with tempfile.TemporaryDirectory(prefix="docrestore-fingerprint-") as tmp, _quiet_single_thread():
        folder = Path(tmp)
        fcfg = apply_page_budget(_tiny_config(cfg, folder))
        fcfg.pages.patches_per_page = PAGE_PATCHES
        splits = _tiny_pages(fcfg)
        # The feature loss and the dual-modal D read with a recognizer: the line recipe's tiny one.
        recognizer = (_tiny_recognizer_cached(fcfg, _tiny_data_cached(fcfg), folder)
                      if reads_with_recognizer(fcfg) else None)
        trainer = PageTrainer(fcfg, None, splits, recognizer)
        batch = next(iter(loader(trainer.data.train, fcfg, batch_size=LINES)))
        data = hashlib.sha256(splits.data_hash.encode())
        for k in ("degraded", "clean"):  # the patches cut from the pages
            data.update(batch[k].numpy().tobytes())
        steps, params = _steps_and_params(trainer, cfg, batch, _number)
        device = D.pick_device("cpu")
        threshold = 0.5
        if fcfg.pages.binarize == "val":  # as the benchmark: chosen on the validation page
            threshold, _ = dibco.choose_threshold(trainer.generator, splits.val, fcfg, device)
        per_page, _ = dibco.evaluate_generator(trainer.generator, splits.test, fcfg, device, crops=0,
                                               threshold=threshold)
        references = dibco.evaluate_references(splits.test, fcfg.pages.references)
        evaluation = {"threshold": threshold, **{k: _number(np.mean(v)) for k, v in per_page.items()}}
        # A generator a few steps old restores every pixel to about grey, so the binarised scores
        # barely move (F-measure 0): the restored page itself shows a change in the restoration.
        page = splits.test[0]
        restored = dibco.restore_page(trainer.generator, page.image, fcfg, device)
        evaluation.update(restored_mean=_number(restored.mean()),
                          restored_l1=_number(np.abs(restored - page.clean).mean()))
        refs = {name: {k: _number(np.mean(v)) for k, v in scores.items()} for name, scores in references.items()}
    out = {"version": PAGE_VERSION, "kind": "pages", "data": data.hexdigest()[:16], "steps": steps,
           "params": params, "eval": evaluation, "references": refs}
    out["digest"] = hashlib.sha256(json.dumps(out, sort_keys=True).encode()).hexdigest()[:16]
    return out


def page_fingerprint(cfg: C.Config) -> dict:
    """The fingerprint of a page arm's ``cfg`` (:func:`docrestore.study.pages.make_page_config`):
    its page trainer runs :data:`STEPS` steps on :data:`LINES` patches of fixed tiny pages, and
    the benchmark's evaluation (tiled restoration, binarisation with the arm's rule, DIBCO scores,
    the classical references) scores the result on a tiny test page, whose restoration's mean and
    L1 distance to the ground truth are recorded too. Computed once per process for each config."""
    key = "pages:" + _cache_key(cfg)
    if key not in _cache:
        _cache[key] = _compute_pages(cfg)
    return _cache[key]


_page_hashes: dict[str, str] = {}


def local_page_data_hash(cfg: C.Config) -> str | None:
    """The ``data_hash`` a page entry of ``cfg`` records (:attr:`docrestore.data.pages.PageSplits.data_hash`:
    the names and file bytes of its training, validation and test pages), computed here from the
    files without decoding them, once per process while they are unchanged (size, mtime). None
    when the page folder is absent or its splits cannot be made (training then says why)."""
    from .data.pages import PageDataError, open_pages, pair_digest, resolve_root

    if not resolve_root(cfg.pages.root).is_dir():
        return None
    try:
        splits = open_pages(cfg, load=False)
    except PageDataError:
        return None
    pages = splits.train + splits.val + splits.test
    key = json.dumps([[p.name, str(f), f.stat().st_size, f.stat().st_mtime_ns]
                      for p in pages for f in (Path(p.source), Path(p.target))])
    if key not in _page_hashes:
        for p in pages:
            p.digest = pair_digest(p.source, p.target)
        _page_hashes[key] = splits.data_hash
    return _page_hashes[key]


def _numbers(fp: dict, prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for k, v in fp.items():
        if k == "digest":
            continue
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_numbers(v, name + "."))
        elif isinstance(v, list):
            for i, item in enumerate(v):
                out.update(_numbers(item, f"{name}[{i}].") if isinstance(item, dict) else {f"{name}[{i}]": item})
        else:
            out[name] = v
    return out


def _close(a, b, atol: float = ATOL) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        if math.isnan(a) and math.isnan(b):
            return True
        return math.isclose(a, b, rel_tol=RTOL, abs_tol=atol)
    return a == b


def _atol(key: str, numbers: dict) -> float:
    """The plain and signed sums of a model's parameters cancel to small numbers: they are
    compared against the model's absolute sum (float noise scales with that, not with them)."""
    if key.startswith("params.") and key.endswith((".sum", ".signed")):
        scale = numbers.get(key.rsplit(".", 1)[0] + ".abs")
        if isinstance(scale, (int, float)):
            return max(ATOL, RTOL * abs(scale))
    return ATOL


def differences(recorded: dict, current: dict) -> list[str]:
    """What differs between two fingerprints, e.g. ``steps[0].train/loss_g 0.412 -> 0.398``;
    empty when every number agrees within :data:`RTOL`."""
    if recorded.get("version") != current.get("version"):
        return [f"fingerprint recipe v{recorded.get('version')} -> v{current.get('version')}"]
    a, b = _numbers(recorded), _numbers(current)
    return [f"{k} {a.get(k)} -> {b.get(k)}" for k in sorted(a.keys() | b.keys())
            if not _close(a.get(k), b.get(k), _atol(k, a))]


def describe(diffs: list[str], limit: int = 3) -> str:
    """A short account of :func:`differences` for a notebook or terminal line."""
    areas = []
    for d in diffs:
        area = {"data": "tiny batch", "steps": "training losses", "params": "trained parameters",
                "eval": "evaluation", "references": "references"}.get(d.split("[")[0].split(".")[0], d.split(" ")[0])
        if area not in areas:
            areas.append(area)
    more = f" (+{len(diffs) - limit} more)" if len(diffs) > limit else ""
    return f"{', '.join(areas)} changed: {'; '.join(diffs[:limit])}{more}"
