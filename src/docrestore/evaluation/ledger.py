"""The results ledger: one JSON file per experiment, the only source of the paper's figures and tables.

Layout: ``<ledger_dir>/<profile>/<experiment>.json`` and sample images under
``<ledger_dir>/<profile>/samples/<experiment>/<line_id>_<name>.png``. Every entry is validated
before it is written and again when it is read; nothing invalid is skipped silently.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .. import config as C
from ..files import write_json_atomic

__all__ = [
    "LedgerError", "REQUIRED_FIELDS", "REQUIRED_METRICS", "REFERENCE_METHODS", "SUMMARY_KEYS",
    "validate_entry", "write_entry", "read_ledger", "entry_path", "find", "entry_label",
    "make_entry", "save_sample_images", "meant_for_paper", "check_clean_tree", "SETTINGS_IGNORED_KEYS",
    "config_differences",
]

REQUIRED_FIELDS = (
    "experiment", "method", "group", "profile", "metrics", "per_line", "references", "samples",
    "history", "config", "git_commit", "git_dirty", "mlflow_run_id", "run_dir", "device", "date",
    "data_hash",
)
# cer/wer: the held-out reader (no loss was optimised against it); *_loss_reader: the recognizer
# used in the losses, reported to show how much of the gain is specific to it.
REQUIRED_METRICS = ("psnr", "ssim", "cer", "wer", "cer_loss_reader", "wer_loss_reader")
REFERENCE_METHODS = ("degraded", "otsu", "sauvola")
SUMMARY_KEYS = ("mean", "lo", "hi", "n")

# Config keys that cannot change a result (names, where things are written, how many loader
# processes, the checkpoint an interrupted run continued from): two configs that differ only
# here made the same experiment.
SETTINGS_IGNORED_KEYS = frozenset({"desc", "train.resume", "device", "data.loader_workers", "data.workers",
                                   "tracking.uri", "tracking.enabled", "runs_dir", "eval.ledger_dir",
                                   # a paper entry is always the test split; another split writes a real-lines entry
                                   "eval.split",
                                   # where restore finds its default model: no bearing on any result
                                   "restore.page_model"})


def config_differences(a: Mapping, b: Mapping, defaults: Mapping | None = None) -> list[str]:
    """Dotted keys whose values differ between two config dicts (``a`` the recorded one, ``b``
    the current one), ignoring :data:`SETTINGS_IGNORED_KEYS`.

    With ``defaults`` (flat ``{dotted key: the code's default}``: :func:`docrestore.config.flat_defaults`),
    a key that ``a`` lacks and that ``b`` holds at its default is no difference: an option added
    since ``a`` was recorded, left at the value meant to keep the old behaviour. That is only
    sound where something else checks the behaviour (the reuse rule passes ``defaults`` for
    entries judged by a fingerprint); without it every added key is a difference."""
    fa = {k: v for k, v in C.flatten(dict(a)).items() if k not in SETTINGS_IGNORED_KEYS}
    fb = {k: v for k, v in C.flatten(dict(b)).items() if k not in SETTINGS_IGNORED_KEYS}
    defaults = defaults or {}

    def added_at_default(k: str) -> bool:
        return k not in fa and k in fb and k in defaults and fb[k] == defaults[k]

    return sorted(k for k in fa.keys() | fb.keys() if fa.get(k) != fb.get(k) and not added_at_default(k))


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")  # experiment names become file names


class LedgerError(ValueError):
    """A ledger entry or file that breaks the contract of docs/architecture.md ("Results ledger")."""


# ---------------------------------------------------------------------------- validation
def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check_summaries(metrics: Any, where: str, problems: list[str]) -> None:
    """``metrics`` must map every required metric to {mean, lo, hi, n} with finite numbers."""
    if not isinstance(metrics, Mapping):
        problems.append(f"'{where}' must be a mapping {{metric: {{mean, lo, hi, n}}}}, got {type(metrics).__name__}")
        return
    missing = [m for m in REQUIRED_METRICS if m not in metrics]
    if missing:
        problems.append(f"'{where}' lacks metric(s) {missing}")
    for name, summary in metrics.items():
        if not isinstance(summary, Mapping):
            problems.append(f"'{where}.{name}' must be a mapping with {list(SUMMARY_KEYS)}")
            continue
        lacking = [k for k in SUMMARY_KEYS if k not in summary]
        if lacking:
            problems.append(f"'{where}.{name}' lacks {lacking}")
        for k in SUMMARY_KEYS:
            if k in summary and not (_is_number(summary[k]) and math.isfinite(summary[k])):
                problems.append(f"'{where}.{name}.{k}' must be a finite number, got {summary[k]!r}")
        n = summary.get("n")
        if n is not None and not (isinstance(n, int) and not isinstance(n, bool) and n >= 1):
            problems.append(f"'{where}.{name}.n' must be a positive integer, got {summary['n']!r}")


def _check_per_line(entry: Mapping, problems: list[str]) -> None:
    per_line = entry["per_line"]
    if not isinstance(per_line, Mapping):
        problems.append("'per_line' must be a mapping {metric: [one value per test line]}")
        return
    missing = [m for m in REQUIRED_METRICS if m not in per_line]
    if missing:
        problems.append(f"'per_line' lacks metric(s) {missing} (paired tests need them)")
    lengths = {}
    for name, vals in per_line.items():
        if not isinstance(vals, list) or not all(_is_number(v) and math.isfinite(v) for v in vals):
            problems.append(f"'per_line.{name}' must be a list of finite numbers")
            continue
        lengths[name] = len(vals)
        summary = entry["metrics"].get(name) if isinstance(entry["metrics"], Mapping) else None
        if isinstance(summary, Mapping) and summary.get("n") not in (None, len(vals)):
            problems.append(f"'per_line.{name}' has {len(vals)} values but 'metrics.{name}.n' is {summary['n']}")
    if len(set(lengths.values())) > 1:
        problems.append(f"'per_line' lists differ in length {lengths}; every metric needs one value per test line")


def _check_samples(samples: Any, problems: list[str]) -> None:
    if not isinstance(samples, list):
        problems.append("'samples' must be a list of {id, text, lines}")
        return
    for i, s in enumerate(samples):
        if not isinstance(s, Mapping):
            problems.append(f"'samples[{i}]' must be a mapping {{id, text, lines}}")
            continue
        lacking = [k for k in ("id", "text", "lines") if k not in s]
        if lacking:
            problems.append(f"'samples[{i}]' lacks {lacking}")
        lines = s.get("lines", {})
        if not isinstance(lines, Mapping):
            problems.append(f"'samples[{i}].lines' must map a name to {{pred, cer, image}}")
            continue
        for name, line in lines.items():
            # pred and cer are optional: the clean and degraded images of a sample need no reading.
            where = f"samples[{i}].lines.{name}"
            if not isinstance(line, Mapping) or "image" not in line:
                problems.append(f"'{where}' must be a mapping with 'image' (and optionally 'pred', 'cer')")
                continue
            if line["image"] is not None and not isinstance(line["image"], str):
                problems.append(f"'{where}.image' must be a path relative to the ledger folder, or null")
            if "pred" in line and not isinstance(line["pred"], str):
                problems.append(f"'{where}.pred' must be text, got {line['pred']!r}")
            if "cer" in line and not _is_number(line["cer"]):
                problems.append(f"'{where}.cer' must be a number, got {line['cer']!r}")


def _check_nonfinite(obj: Any, where: str, problems: list[str]) -> None:
    """JSON has no NaN or inf: name every such number so the caller can write null instead."""
    if isinstance(obj, float) and not math.isfinite(obj):
        problems.append(f"'{where}' is {obj}; JSON holds no NaN/inf, write null (None) for a missing value")
    elif isinstance(obj, Mapping):
        for k, v in obj.items():
            _check_nonfinite(v, f"{where}.{k}" if where else str(k), problems)
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _check_nonfinite(v, f"{where}[{i}]", problems)


def validate_entry(entry: Mapping) -> Mapping:
    """Return ``entry`` unchanged if it follows the ledger contract; otherwise raise
    :class:`LedgerError` listing every problem, each missing field by name."""
    if not isinstance(entry, Mapping):
        raise LedgerError(f"a ledger entry must be a mapping, got {type(entry).__name__}")
    missing = [f for f in REQUIRED_FIELDS if f not in entry]
    if missing:
        raise LedgerError(f"ledger entry {entry.get('experiment', '?')!r} is missing required field(s): "
                          f"{', '.join(missing)}")
    problems: list[str] = []
    for f in ("experiment", "method", "group", "run_dir", "device", "git_commit", "data_hash", "date"):
        if not isinstance(entry[f], str):
            problems.append(f"'{f}' must be text, got {entry[f]!r}")
    if isinstance(entry["experiment"], str) and not _NAME.match(entry["experiment"]):
        problems.append(f"'experiment' {entry['experiment']!r} must be a file name: letters, digits, '_', '.', '-'")
    if entry["profile"] not in C.PROFILES:
        problems.append(f"'profile' must be one of {list(C.PROFILES)}, got {entry['profile']!r}")
    if entry["git_dirty"] not in (True, False, None):
        problems.append(f"'git_dirty' must be true, false or null, got {entry['git_dirty']!r}")
    if entry["mlflow_run_id"] is not None and not isinstance(entry["mlflow_run_id"], str):
        problems.append(f"'mlflow_run_id' must be text or null, got {entry['mlflow_run_id']!r}")
    if isinstance(entry["date"], str):
        try:
            _dt.datetime.fromisoformat(entry["date"])
        except ValueError:
            problems.append(f"'date' must be an ISO 8601 date-time, got {entry['date']!r}")
    if not isinstance(entry["config"], Mapping):
        problems.append("'config' must be the resolved config as a mapping (config.to_dict(cfg))")
    _check_summaries(entry["metrics"], "metrics", problems)
    _check_per_line(entry, problems)
    refs = entry["references"]
    if not isinstance(refs, Mapping):
        problems.append(f"'references' must map each of {list(REFERENCE_METHODS)} to its metrics")
    else:
        lacking = [r for r in REFERENCE_METHODS if r not in refs]
        if lacking:
            problems.append(f"'references' lacks {lacking}")
        for name, metrics in refs.items():
            _check_summaries(metrics, f"references.{name}", problems)
    _check_samples(entry["samples"], problems)
    hist = entry["history"]
    if not isinstance(hist, list) or not all(isinstance(h, Mapping) and "step" in h for h in hist):
        problems.append("'history' must be a list of {step, key: value} records (empty for untrained methods)")
    _check_nonfinite(entry, "", problems)
    if problems:
        raise LedgerError(f"ledger entry {entry.get('experiment')!r} is invalid:\n  - " + "\n  - ".join(problems))
    return entry


# --------------------------------------------------------------------------- reading/writing
def _plain(obj: Any) -> Any:
    """NumPy scalars and arrays, tuples and Paths as plain JSON types."""
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _plain(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return obj.as_posix()
    return obj


def _gaps_as_null(history: Any) -> Any:
    """A training curve's NaN/inf points (skipped non-finite steps) as null: JSON has no NaN."""
    if not isinstance(history, list):
        return history
    return [{k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in rec.items()}
            if isinstance(rec, Mapping) else rec for rec in history]


def _prepared(entry: Mapping) -> dict:
    """Plain JSON types, with non-finite history points written as null; then validated."""
    entry = _plain(entry)
    if isinstance(entry, dict) and "history" in entry:
        entry["history"] = _gaps_as_null(entry["history"])
    return validate_entry(entry)


def entry_path(ledger_dir: str | Path, profile: str, experiment: str) -> Path:
    """Where the entry of ``experiment`` in ``profile`` lives."""
    return C.resolve_path(ledger_dir) / profile / f"{experiment}.json"


PAPER_LEDGER = "paper/results"


def meant_for_paper(profile: str, ledger_dir: str | Path) -> bool:
    """An entry of a paper profile (quick, full) written into the project's paper/results."""
    return profile != "smoke" and C.resolve_path(ledger_dir).resolve() == (C.PROJECT_ROOT / PAPER_LEDGER).resolve()


def check_clean_tree(profile: str, ledger_dir: str | Path, allow_dirty: bool, git: Mapping | None = None) -> None:
    """Refuse an entry meant for the paper from a tree with uncommitted changes (its numbers
    could not be re-made from any commit) unless ``eval.allow_dirty`` allows it; such an entry is
    marked ``git_dirty`` and its table rows carry a dagger."""
    if allow_dirty or not meant_for_paper(profile, ledger_dir):
        return
    if git is None:
        from ..runs import git_info

        git = git_info()
    if git.get("dirty"):
        raise LedgerError(
            f"the working tree has uncommitted changes (commit {str(git.get('commit'))[:10]}): a {profile} "
            f"entry in {PAPER_LEDGER} must be re-makeable from a commit. Commit first, write elsewhere "
            "(eval.ledger_dir=...), or set eval.allow_dirty=true (the entry is then marked in the tables)")


def write_entry(entry: Mapping, ledger_dir: str | Path) -> Path:
    """Validate ``entry`` and write it to <ledger_dir>/<profile>/<experiment>.json atomically
    (a temporary file renamed over the old one), keys sorted, indent 2. Returns the path.

    NumPy numbers become plain ones and NaN/inf points of ``history`` become null (a gap in the
    curve); a non-finite number anywhere else is an error."""
    entry = _prepared(entry)
    path = entry_path(ledger_dir, entry["profile"], entry["experiment"])
    return write_json_atomic(path, entry, sort_keys=True, allow_nan=False, default=None)


def read_ledger(ledger_dir: str | Path, profile: str | None = None) -> list[dict]:
    """Every entry of one profile (or of all profiles), sorted by profile then experiment.

    A file that is not valid JSON, breaks the contract, or sits in the wrong place for its
    profile and experiment raises :class:`LedgerError` naming the file. A missing folder
    holds no entries.
    """
    if profile is not None and profile not in C.PROFILES:
        raise LedgerError(f"profile must be one of {list(C.PROFILES)}, got {profile!r}")
    root = C.resolve_path(ledger_dir)
    entries = []
    for prof in [profile] if profile else C.PROFILES:
        for path in sorted((root / prof).glob("*.json")):
            try:
                entry = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as exc:
                raise LedgerError(f"ledger file {path} cannot be read as JSON: {exc}; fix or delete it") from exc
            try:
                validate_entry(entry)
            except LedgerError as exc:
                raise LedgerError(f"ledger file {path}: {exc}") from exc
            if entry["profile"] != prof or entry["experiment"] != path.stem:
                raise LedgerError(f"ledger file {path} holds experiment {entry['experiment']!r} of profile "
                                  f"{entry['profile']!r}; it belongs at {entry_path(root, entry['profile'], entry['experiment'])}")
            entries.append(entry)
    return entries


def find(entries: Iterable[Mapping], *, experiment: str | None = None, group: str | None = None,
         method: str | None = None, profile: str | None = None) -> list[Mapping]:
    """The entries whose fields equal every criterion given (None = any), in their order."""
    want = {k: v for k, v in dict(experiment=experiment, group=group, method=method,
                                  profile=profile).items() if v is not None}
    return [e for e in entries if all(e.get(k) == v for k, v in want.items())]


def _device_kind(device: str) -> str:
    from ..device import kind_of

    return kind_of(device) if device.strip() else "unknown device"


def entry_label(entry: Mapping) -> str:
    """The method's name, with '(profile, CPU|GPU)' added for anything but a full run, e.g.
    'ERB S1 (quick, CPU)', so a figure or table fed by a reduced run says so."""
    if entry["profile"] == "full":
        return str(entry["method"])
    return f"{entry['method']} ({entry['profile']}, {_device_kind(str(entry['device']))})"


def make_entry(*, experiment: str, method: str, group: str, profile: str, metrics: Mapping,
               per_line: Mapping, references: Mapping, device: Any, data_hash: str, config: Any,
               samples: list | None = None, history: list | None = None, mlflow_run_id: str | None = None,
               run_dir: str | Path = "", run: Any = None, git: Mapping | None = None,
               date: str | None = None) -> dict:
    """Build a validated ledger entry, filling the provenance fields.

    ``config`` is a :class:`docrestore.config.Config` or its dict; ``device`` a torch.device or
    a description; ``run`` (a :class:`docrestore.runs.Run`) supplies run_dir and git when given;
    otherwise git comes from ``git`` or :func:`docrestore.runs.git_info`. ``date`` defaults to now
    (ISO 8601, seconds).
    """
    from .. import runs  # runs imports logging setup; keep module import light

    if run is not None:
        git = git or run.git
        run_dir = run_dir or run.dir
    git = dict(git) if git is not None else runs.git_info()
    if not isinstance(config, Mapping):
        config = C.to_dict(config)
    if not isinstance(device, str):
        from .. import device as D  # torch is imported only when a torch.device is given
        device = D.describe(device)
    run_dir = C.project_relative(run_dir)
    entry = {
        "experiment": experiment, "method": method, "group": group, "profile": profile,
        "metrics": metrics, "per_line": per_line, "references": references,
        "samples": samples if samples is not None else [], "history": history if history is not None else [],
        "config": config, "git_commit": git.get("commit", "unknown"), "git_dirty": git.get("dirty"),
        "mlflow_run_id": mlflow_run_id, "run_dir": run_dir,
        "device": device, "date": date or _dt.datetime.now().isoformat(timespec="seconds"),
        "data_hash": data_hash,
    }
    return _prepared(entry)


def _to_uint8(img: Any, name: str) -> np.ndarray:
    if hasattr(img, "detach"):  # a torch tensor: take it off the graph and the device
        img = img.detach().cpu().numpy()
    a = np.asarray(img, dtype=np.float64)
    if a.ndim == 3 and a.shape[0] == 1:
        a = a[0]
    if a.ndim != 2:
        raise ValueError(f"sample image {name!r} must be grey (H, W) or (1, H, W) in [0, 1], got shape {a.shape}")
    return np.round(np.clip(np.nan_to_num(a), 0.0, 1.0) * 255.0).astype(np.uint8)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", str(text)).strip("-") or "line"


def save_sample_images(images: Mapping[str, Any], ledger_dir: str | Path, profile: str, experiment: str,
                       line_id: str) -> dict[str, str]:
    """Write each grey image (floats in [0, 1]) as an 8-bit PNG at
    <ledger_dir>/<profile>/samples/<experiment>/<line_id>_<name>.png.
    Returns {name: path relative to ledger_dir} for a sample's ``lines[name]["image"]``."""
    if profile not in C.PROFILES:
        raise LedgerError(f"profile must be one of {list(C.PROFILES)}, got {profile!r}")
    root = C.resolve_path(ledger_dir)
    folder = root / profile / "samples" / _slug(experiment)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, img in images.items():
        path = folder / f"{_slug(line_id)}_{_slug(name)}.png"
        Image.fromarray(_to_uint8(img, name)).save(path, optimize=True)
        out[name] = path.relative_to(root).as_posix()
    return out
