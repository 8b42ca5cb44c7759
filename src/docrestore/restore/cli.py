"""``docrestore restore``: restore users' page or line images of any size with a trained generator.

    docrestore restore scans/ folio_3.tif --checkpoint runs/<run>/best_val_cer.pt --out restored/
    docrestore restore page.png --out restored/     # the page model of `make page-model`

Without ``--checkpoint`` the page model at ``restore.page_model`` (``models/page_model.pt``,
written by ``make page-model``) is used; when it does not exist, one line says how to make it.

Each input becomes ``<out>/<relative path>.png`` with its whole name kept (``scans/vol1/f.tif``
found in ``scans/`` -> ``<out>/vol1/f.tif.png``; folders are searched one level deep unless
``--recursive``; see ``restore/io.py`` for the naming rule), grayscale, the input's size and
resolution (DPI), 8-bit, or 16-bit for a 16-bit input with ``--keep-depth``. Beside it
``<name>.json`` records the checkpoint (path, sha256), the settings, the page's text-size
decision and the docrestore version. Files in the folders that are not images are listed as
skipped. The output folder is checked writable before any page is computed; an output that
already exists is kept (and counted in the summary) unless ``--overwrite``.

Tile size: by default the generator's own training size, read from the checkpoint's config
(``data.height`` x ``data.width``), because that is what it learned on; for a checkpoint trained
on pages, the square tile the page benchmark measured it with (``pages.tile``). A ``restore.tile_height``
or ``restore.tile_width`` set in a config file or on the command line, i.e. one that differs from
the value the profile alone gives, wins over the checkpoint's (per side; tiles must be multiples
of 16). Setting it to exactly the profile's value therefore has no effect.

Text size: by default (``--text-height off``) pages are restored at their native scale. With
``--text-height auto`` each page is resized so that its writing has the size of the checkpoint's
training lines (``restore/scale.py``), restored, and resized back, but never shrunk below
``restore.min_scale`` (0.8); the estimate and the factor are logged per page.
``--text-height PIXELS`` gives the pages' text height instead of the estimate. Why off by default:
on DIBCO pages across 2009-2017 a checkpoint trained on 32-px synthetic lines scored worse with
``auto`` than at native scale (pages that must shrink 3-8x lose their thin strokes), and no shrink
limit scored better than native (logbook 2026-11-30). A checkpoint trained on page patches
restores at native scale.

Exit status: 0 all pages restored; 1 some pages failed (each named); 2 nothing to do or a usage
error (no inputs, missing input path, missing or unreadable checkpoint, bad tile size).
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import sys
import tempfile
from pathlib import Path
from typing import Any

from .. import config as C
from .. import device as D
from . import scale as S
from .io import IMAGE_EXTENSIONS, find_inputs, output_clashes
from .tiling import check_tile, restore_files, sha256_file

PROG = "docrestore restore"


def _error(msg: str) -> int:
    print(f"{PROG}: {msg}", file=sys.stderr)
    return 2


def training_size(ckpt_cfg: Any) -> tuple[int, int] | None:
    """``(data.height, data.width)`` of a checkpoint's config (a dict or a Config), or None."""
    try:
        if isinstance(ckpt_cfg, dict):
            data = ckpt_cfg["data"]
            return int(data["height"]), int(data["width"])
        return int(ckpt_cfg.data.height), int(ckpt_cfg.data.width)
    except (KeyError, AttributeError, TypeError, ValueError):
        return None


def page_tile(ckpt_cfg: Any) -> tuple[int, int] | None:
    """The square tile a page checkpoint was measured with (``pages.tile``, or its patch size when
    that is 0), or None for a line checkpoint: the page benchmark restores pages in these tiles,
    so `restore` does too (a 32 x 256 line tile gives a page model far less context)."""
    if not S.trained_on_pages(ckpt_cfg):
        return None
    cfg = ckpt_cfg if isinstance(ckpt_cfg, dict) else C.to_dict(ckpt_cfg)
    try:
        pages = cfg["pages"]
        tile = int(pages.get("tile") or 0)
        if tile:
            return tile, tile
        h, w = int(pages.get("patch_height") or 0), int(pages.get("patch_width") or 0)
        size = training_size(cfg)
        return (h or size[0], w or size[1]) if size else None
    except (KeyError, AttributeError, TypeError, ValueError):
        return None


def resolve_restore_config(cfg: C.Config, ckpt_cfg: Any) -> tuple[C.RestoreConfig, str]:
    """The RestoreConfig to run with and a line saying where the tile size came from.

    Per side: a value the user set (different from what ``cfg.profile`` alone gives) is kept;
    otherwise the generator's training size from ``ckpt_cfg`` is used.
    """
    profile_default = C.load_config(profile=cfg.profile).restore
    paged = page_tile(ckpt_cfg)
    trained = paged or training_size(ckpt_cfg)
    r = cfg.restore
    user_h = r.tile_height != profile_default.tile_height
    user_w = r.tile_width != profile_default.tile_width
    if trained is None:
        return r, (f"{r.tile_height} x {r.tile_width} from restore.tile_height/tile_width "
                   "(the checkpoint's config has no data.height/width)")
    h = r.tile_height if user_h else trained[0]
    w = r.tile_width if user_w else trained[1]
    src_h = "restore.tile_height" if user_h else ("checkpoint pages.tile" if paged else "checkpoint data.height")
    src_w = "restore.tile_width" if user_w else ("checkpoint pages.tile" if paged else "checkpoint data.width")
    return dataclasses.replace(r, tile_height=h, tile_width=w), f"{h} x {w} ({src_h}, {src_w})"


def pick_runtime(requested: str, device) -> str:
    """``torch`` or ``onnx``: ``auto`` is ONNX Runtime on a CPU (faster there, see
    restore/runtime.py) and PyTorch on a GPU."""
    if requested == "auto":
        return "onnx" if device.type == "cpu" else "torch"
    return requested


def text_height_mode(cfg: C.Config, args) -> str | float:
    """``--text-height`` when given, else ``restore.text_height``; ValueError when malformed."""
    value = getattr(args, "text_height", None)
    return S.parse_text_height(cfg.restore.text_height if value is None else value)


def text_height_note(cfg: C.Config, args, mode: str | float) -> str:
    """Why the text-size step is (not) applied, for the log line: the default ``off`` says why it
    is the default; a ``restore.min_scale`` that cannot act (``off``) is said, not ignored."""
    if mode != "off":
        return f", shrink limited to x{cfg.restore.min_scale:g} (restore.min_scale)"
    default = C.load_config(profile=cfg.profile).restore
    note = ""
    if getattr(args, "text_height", None) is None and cfg.restore.text_height == default.text_height:
        note = (" (the default: auto measured worse than native scale on DIBCO pages with a "
                "checkpoint trained on synthetic lines; --text-height auto fits the text size)")
    if cfg.restore.min_scale != default.min_scale:
        note += "; restore.min_scale has no effect with text height off"
    return note


def docrestore_version() -> dict:
    """The installed docrestore version and, in a git checkout, its commit (and whether the work
    tree had uncommitted changes): what a sidecar needs to say which code made an output."""
    from ..runs import git_info

    try:
        version = importlib.metadata.version("docrestore")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    return {"version": version, **git_info()}


def provenance(ckpt: Path, ckpt_cfg: Any, restore_cfg: C.RestoreConfig, runtime: str, mode: str | float,
               trained: float | None, on_pages: bool, keep_depth: bool, device) -> dict:
    """The part of every sidecar that is the same for all pages of one run."""
    return {
        "docrestore": docrestore_version(),
        "checkpoint": {"path": str(ckpt.resolve()), "sha256": sha256_file(ckpt),
                       "profile": (ckpt_cfg or {}).get("profile") if isinstance(ckpt_cfg, dict)
                       else getattr(ckpt_cfg, "profile", None),
                       "trained_on_pages": on_pages},
        "settings": {"tile_height": restore_cfg.tile_height, "tile_width": restore_cfg.tile_width,
                     "overlap": restore_cfg.overlap, "batch_size": restore_cfg.batch_size,
                     "runtime": runtime, "device": str(device), "text_height": str(mode),
                     "trained_text_height_px": trained,
                     "min_scale": restore_cfg.min_scale,
                     "text_height_factor_bounds": [max(restore_cfg.min_scale, S.MIN_FACTOR), S.MAX_FACTOR],
                     "keep_depth": keep_depth},
    }


def output_inside_input(inputs, out: Path) -> str:
    """A problem line when ``out`` is an input folder or lies inside one (a rerun would take the
    outputs for pages, and with ``--recursive`` this run would), else ``""``."""
    target = out.expanduser().resolve()
    for item in inputs:
        folder = Path(item).expanduser().resolve()
        if folder.is_dir() and (target == folder or folder in target.parents):
            return (f"the output folder {out} is inside the input folder {item}: the outputs would be "
                    "read as pages by the next run; choose an --out outside it")
    return ""


def _skipped_lines(skipped) -> list[str]:
    return [f"  skipped {p}: {why}" for p, why in skipped]


def _peek_checkpoint(path: Path) -> tuple[Any, str]:
    """The checkpoint's config for the dry run (read on the CPU) and what is wrong with it, if
    anything, without building the generator."""
    if not path.is_file():
        return None, f"checkpoint {path} not found; give --checkpoint a generator checkpoint " \
                     "(runs/<run>/last.pt or best_*.pt)"
    try:
        from .. import checkpoint as CK
        ckpt = CK.load_checkpoint(path)
    except Exception as exc:  # a dry run reports the problem instead of stopping on it
        return None, f"cannot read checkpoint {path}: {exc}"
    if "generator" not in (ckpt.get("models") or {}):
        return ckpt.get("config"), (f"checkpoint {path} holds no generator (kind "
                                    f"{ckpt.get('kind')!r}); give a GAN checkpoint from the train stage")
    return ckpt.get("config"), ""


def dry_run_text(cfg: C.Config, args, found) -> tuple[str, list[str]]:
    """The plan of a restore run, and the problems that would stop the real run."""
    device = D.pick_device(cfg.device)
    ckpt = Path(args.checkpoint)
    ckpt_cfg, ckpt_problem = _peek_checkpoint(ckpt)
    restore_cfg, tile_src = resolve_restore_config(cfg, ckpt_cfg)
    problems = [ckpt_problem] if ckpt_problem else []
    try:
        check_tile((restore_cfg.tile_height, restore_cfg.tile_width))
    except ValueError as exc:
        problems.append(str(exc))
    try:
        mode = text_height_mode(cfg, args)
    except ValueError as exc:
        problems.append(str(exc))
        mode = "?"
    on_pages = ckpt_cfg is not None and S.trained_on_pages(ckpt_cfg)
    scale_line = ("native (the checkpoint was trained on pages)" if on_pages and mode != "off"
                  else f"{mode}" + (text_height_note(cfg, args, mode) if mode != "?" else ""))
    lines = [
        f"# {PROG} --dry-run",
        f"# checkpoint : {ckpt}" + ("  (PROBLEM, see below)" if ckpt_problem else ""),
        f"# device     : {D.describe(device)}",
        f"# tile       : {tile_src}",
        f"# overlap    : {restore_cfg.overlap}  batch_size: {restore_cfg.batch_size} tiles",
        f"# text height: {scale_line}",
        f"# runtime    : {pick_runtime(restore_cfg.runtime, device)} (restore.runtime={restore_cfg.runtime})",
        f"# output     : {Path(args.out)}/<relative path>.png + .json sidecar (grayscale, input size "
        f"and DPI, {'16-bit for 16-bit inputs' if getattr(args, 'keep_depth', False) else '8-bit'})",
        f"# {len(found.pages)} image(s) would be restored:",
    ]
    lines += [f"  {page.path} -> {page.output}" for page in found.pages]
    if found.skipped:
        lines.append(f"# {len(found.skipped)} file(s) skipped:")
        lines += _skipped_lines(found.skipped)
    for first, second, name in output_clashes(found.pages):
        problems.append(f"{first} and {second} would both be restored to {name}; restore them into "
                        "separate --out folders, or their parent folder with --recursive")
    return "\n".join(lines), problems


def main_cli(cfg: C.Config, args) -> int:
    """Run ``docrestore restore``; ``args`` has ``inputs``, ``checkpoint``, ``out``, ``dry_run``.

    Returns 0 when every page was restored, 1 when some failed (named in the summary), 2 when
    there was nothing to restore or the run could not start.
    """
    recursive = bool(getattr(args, "recursive", False))
    keep_depth = bool(getattr(args, "keep_depth", False))
    if not getattr(args, "checkpoint", None):
        from ..training.page_model import make_page_model_hint, page_model_path

        default = page_model_path(cfg)
        if not default.is_file():
            return _error(make_page_model_hint(default))
        print(f"{PROG}: no --checkpoint given: using the page model {default} (restore.page_model)",
              file=sys.stderr)
        args.checkpoint = str(default)
    try:
        found = find_inputs(args.inputs, recursive=recursive)
    except FileNotFoundError as exc:
        return _error(str(exc))
    paths = [page.path for page in found.pages]
    if not paths:
        for line in _skipped_lines(found.skipped):
            print(line, file=sys.stderr)
        return _error(f"no images found in {', '.join(map(str, args.inputs))} (looked for "
                      f"{' '.join(IMAGE_EXTENSIONS)} files, "
                      + ("in all sub-folders)" if recursive else "top level of each folder; "
                         "--recursive searches sub-folders)"))
    ckpt = Path(args.checkpoint)
    inside = output_inside_input(args.inputs, Path(args.out))
    if args.dry_run:
        # A dry run that said "fine" about a run that cannot start would mislead: it prints the
        # plan either way and exits 2 with the problems (missing/unreadable checkpoint, bad tile).
        text, problems = dry_run_text(cfg, args, found)
        problems += [inside] if inside else []
        print(text)
        for problem in problems:
            _error(problem)
        return 2 if problems else 0
    if inside:
        return _error(inside)
    if not ckpt.is_file():
        return _error(f"checkpoint {ckpt} not found; give --checkpoint a generator checkpoint "
                      "(runs/<run>/last.pt or best_*.pt)")

    from .. import checkpoint as CK  # imported late: `--dry-run` and errors above need no torch models

    device = D.pick_device(cfg.device)
    try:
        generator, ckpt_cfg = CK.load_generator(ckpt, device)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        return _error(f"cannot load a generator from {ckpt}: {exc}")
    restore_cfg, tile_src = resolve_restore_config(cfg, ckpt_cfg)
    try:
        check_tile((restore_cfg.tile_height, restore_cfg.tile_width))
        mode = text_height_mode(cfg, args)
    except ValueError as exc:
        return _error(str(exc))
    on_pages = S.trained_on_pages(ckpt_cfg)
    trained = None
    if mode != "off" and not on_pages:
        try:
            trained = S.trained_text_height(ckpt_cfg)
        except ValueError as exc:
            return _error(str(exc))
    runtime = pick_runtime(restore_cfg.runtime, device)
    for line in _skipped_lines(found.skipped):
        print(line, file=sys.stderr)
    print(f"{PROG}: {len(paths)} image(s) on {D.describe(device)} ({runtime}), tile {tile_src}, "
          f"overlap {restore_cfg.overlap}, text height {mode}"
          + (f" (trained: {trained:.1f} px)" if trained else "") + text_height_note(cfg, args, mode),
          file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="docrestore-onnx-") as tmp:
        model = generator
        if runtime == "onnx":
            from .runtime import onnx_for

            if device.type != "cpu":
                print(f"{PROG}: restore.runtime=onnx runs on the CPU", file=sys.stderr)
                device = D.pick_device("cpu")
                generator = generator.to(device)
            try:
                model = onnx_for(generator, (restore_cfg.tile_height, restore_cfg.tile_width), folder=tmp)
            except Exception as exc:  # export or check failed: PyTorch gives the same pages, slower
                print(f"{PROG}: ONNX Runtime not used ({exc}); running PyTorch", file=sys.stderr)
                runtime = "torch"
        record = provenance(ckpt, ckpt_cfg, restore_cfg, runtime, mode, trained, on_pages, keep_depth, device)
        try:
            report = restore_files(model, found.pages, args.out, device, restore_cfg, text_height=mode,
                                   trained_height=trained, on_pages=on_pages,
                                   overwrite=bool(getattr(args, "overwrite", False)),
                                   keep_depth=keep_depth, provenance=record)
        except ValueError as exc:  # e.g. the output would overwrite an input
            return _error(str(exc))

    summary = f"restored {len(report.ok)}, failed {len(report.failed)}"
    if report.kept:
        summary += f", kept {len(report.kept)} existing output(s) (--overwrite replaces them)"
    if found.skipped:
        summary += f", skipped {len(found.skipped)} non-image file(s)"
    if report.failed:
        summary += ": " + ", ".join(p.name for p, _ in report.failed)
    print(summary)
    for p, decision in report.scales.items():
        print(f"  {p.name}: {decision.reason}", file=sys.stderr)
    for p, reason in report.failed:
        print(f"  failed {p}: {reason}", file=sys.stderr)
    if report.ok:
        print(f"outputs in {Path(args.out)}/ ({report.seconds:.1f} s, {report.tiles} tiles)")
    return 1 if report.failed else 0
