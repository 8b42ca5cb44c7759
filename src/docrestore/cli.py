"""The `docrestore` command line: one subcommand per pipeline stage.

Every stage takes ``--config PATH``, trailing ``key=value`` overrides and ``--dry-run``.
A dry run prints the resolved config (values that differ from the defaults are marked), the
run folder, the device and what would run, then exits 0 without doing it.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from dataclasses import dataclass

from . import config as C
from . import runs

log = logging.getLogger("docrestore")


@dataclass(frozen=True)
class Stage:
    target: str  # "module:function" taking (cfg, run)
    what: str    # one line for --help and the dry run


STAGES: dict[str, Stage] = {
    "synth": Stage("docrestore.data.synth:synthesize",
                   "synthesise degraded/clean/transcription line triplets and their manifest"),
    "pretrain": Stage("docrestore.training.recognizer:pretrain",
                      "pretrain the CTC recognizer on clean lines (reused frozen by the GAN stages)"),
    "train": Stage("docrestore.training.gan:train",
                   "train the restoration GAN (ERB baseline and the research methods)"),
    "evaluate": Stage("docrestore.evaluation.evaluate:evaluate",
                      "evaluate a generator checkpoint on the test split and write a ledger entry"),
    "distill": Stage("docrestore.training.distill:distill",
                     "train a light generator to copy a trained one (--teacher CKPT) for fast CPU restoration"),
    "page-model": Stage("docrestore.training.page_model:train_page_model",
                        "train the deployable page model on every page pair of pages.root and install it at "
                        "restore.page_model (what `restore` uses without --checkpoint)"),
    "figures": Stage("docrestore.figures.paper:make_figures",
                     "draw every paper figure and table from the results ledger"),
}


def _resolve(target: str):
    mod, fn = target.split(":")
    try:
        return getattr(importlib.import_module(mod), fn)
    except (ImportError, AttributeError) as exc:
        raise SystemExit(f"docrestore: stage {target} is not available yet ({exc})") from exc


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", "-c", help="YAML config file (see configs/)")
    p.add_argument("--dry-run", action="store_true", help="print the resolved config and plan, run nothing")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="dotted overrides, e.g. data.n_train=5000 train.ctc.weight=0")


def dry_run_text(cfg: C.Config, stage: str) -> str:
    from . import device as D

    dev = D.pick_device(cfg.device)
    changed = C.diff_from_defaults(cfg)
    return "\n".join([
        f"# docrestore {stage} --dry-run",
        f"# what would run : {STAGES[stage].what if stage in STAGES else stage}",
        f"# run folder     : {runs.plan_run_dir(cfg, stage)}/",
        f"# device         : {D.describe(dev)}",
        f"# profile        : {cfg.profile}",
        f"# {len(changed)} value(s) differ from the defaults (marked '* changed')",
        C.render(cfg),
    ])


# Stages that run data-parallel under `torchrun` (docs/distributed.md).
DISTRIBUTED_STAGES = ("train",)


def run_stage(stage: str, cfg: C.Config):
    """Start a run folder for ``stage`` and call its library function.

    Under ``torchrun`` (WORLD_SIZE > 1) every process joins the process group, rank 0 alone
    creates the run folder and the others are told its path."""
    fn = _resolve(STAGES[stage].target)
    from .training import distributed

    if distributed.env_world_size() > 1 and stage not in DISTRIBUTED_STAGES:
        raise SystemExit(f"docrestore: only {', '.join(DISTRIBUTED_STAGES)} runs under torchrun; "
                         f"run `docrestore {stage}` as one process")
    info = distributed.init_from_env(cfg.device)
    try:
        run = None
        if info.is_main:
            from .training import survive

            # `train` continues an interrupted run of the same config (train.auto_resume)
            run = survive.start_or_continue(cfg, stage)
        folder, git, resume = distributed.broadcast_object(
            (str(run.dir), run.git, cfg.train.resume) if run else None, info)
        cfg.train.resume = resume  # the other ranks continue the same checkpoint
        if run is None:
            logging.getLogger("docrestore").setLevel(logging.WARNING)  # rank 0 tells the story
            run = runs.join_run(folder, cfg, stage, git)
        return fn(cfg, run)
    finally:
        distributed.cleanup()


def train_background(cfg: C.Config, args) -> int:
    """`docrestore train --background` (the same command, detached) and `--status`."""
    from . import background
    from .training import survive

    if args.status:
        print(background.status_text("train"))
        print(survive.progress_text(cfg))
        return 0
    cmd = [sys.executable, "-m", "docrestore.cli", "train", *(["--config", args.config] if args.config else []),
           *args.overrides]
    background.launch("train", cmd)
    print("  progress  : docrestore train --status " + " ".join(cmd[4:]))  # the same config: the same runs_dir
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Every subcommand: the config stages (STAGES) and the tools that take their own options."""
    parser = argparse.ArgumentParser(prog="docrestore", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    _add_stages(sub)
    _add_restore(sub)
    _add_export(sub)
    _add_experiments(sub)
    _add_ingest(sub)
    k = sub.add_parser("config", help="print every config key with its default and meaning")
    k.add_argument("--config", "-c")
    k.add_argument("overrides", nargs="*", metavar="key=value")
    return parser


def _add_stages(sub) -> None:
    for name, st in STAGES.items():
        sp = sub.add_parser(name, help=st.what, description=st.what)
        _common(sp)
        if name == "train":
            sp.add_argument("--background", action="store_true",
                            help="run detached (goes on after the terminal closes); log in runs/background/train.log")
            sp.add_argument("--status", action="store_true",
                            help="show the background training job and the newest training run's progress")
        if name == "distill":
            sp.add_argument("--teacher", default=None,
                            help="trained generator checkpoint to copy (sets distill.teacher)")


def _add_restore(sub) -> None:
    r = sub.add_parser("restore", help="restore page or line images of any size with a trained generator")
    r.add_argument("inputs", nargs="+", help="image files or folders (PNG, JPEG, TIFF)")
    r.add_argument("--checkpoint", default=None,
                   help="generator checkpoint (last.pt / best_*.pt); default: the page model at "
                        "restore.page_model (models/page_model.pt, made by `make page-model`)")
    r.add_argument("--out", required=True, help="output folder")
    r.add_argument("--text-height", default=None, metavar="auto|PIXELS|off",
                   help="resize each page so its writing matches the checkpoint's training scale: off "
                        "(native scale, the default), auto (estimate per page; never shrinks below "
                        "restore.min_scale) or PIXELS (the pages' text height); sets restore.text_height")
    r.add_argument("--overwrite", action="store_true",
                   help="replace outputs that already exist (default: keep them and say so)")
    r.add_argument("--recursive", action="store_true",
                   help="also restore images in sub-folders; the output mirrors the folder tree")
    r.add_argument("--keep-depth", action="store_true",
                   help="write 16-bit outputs for 16-bit inputs (default: 8-bit gray for all)")
    _common(r)


def _add_export(sub) -> None:
    x = sub.add_parser("export", help="write a generator checkpoint as ONNX, checked against PyTorch within 1e-3")
    x.add_argument("--checkpoint", required=True, help="generator checkpoint (last.pt / best_*.pt)")
    x.add_argument("--out", required=True, help="the .onnx file to write (an existing one is kept unless --overwrite)")
    x.add_argument("--check-page", default=None,
                   help="page image whose crop the export is checked on (default: a made-up page)")
    x.add_argument("--overwrite", action="store_true", help="replace an existing --out")


def _add_experiments(sub) -> None:
    e = sub.add_parser("experiments", help="run an experiment plan of notebooks in the background")
    e.add_argument("plan", help="plan YAML in configs/experiments/")
    e.add_argument("--status", action="store_true", help="show the table of jobs and exit")
    e.add_argument("--dry-run", action="store_true", help="list the jobs, validate parameters, run nothing")
    e.add_argument("--force", action="store_true", help="rerun completed jobs too")
    e.add_argument("--foreground", action="store_true", help="run in this process (no detaching)")
    e.add_argument("--workers", type=int, default=None, help="jobs at once (default: one per GPU, or the plan's)")
    e.add_argument("--gpus", type=int, default=None,
                   help="GPUs to plan for (default: all visible); e.g. --dry-run --gpus 2 on a laptop")


def _add_ingest(sub) -> None:
    g = sub.add_parser("ingest", help="cut real archive lines (PAGE XML, ALTO, line-image folders) into a manifest")
    g.add_argument("inputs", nargs="+", help="PAGE XML / ALTO files, line images, or folders of them")
    g.add_argument("--out", required=True, help="output folder (manifest.jsonl, charset.txt, lines/)")
    g.add_argument("--test-pages", default="", help="comma-separated page names for the test split")
    g.add_argument("--val-pages", default="", help="comma-separated page names for the validation split")
    g.add_argument("--test-share", type=float, default=0.2, help="share of the other pages for test")
    g.add_argument("--val-share", type=float, default=0.1, help="share of the other pages for validation")
    g.add_argument("--seed", type=int, default=0, help="seed of the page order for the shares")
    g.add_argument("--line-height", type=float, default=0.0,
                   help="line height in px where only a baseline is given (0: the page's baseline spacing)")


def parse_args(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Parse ``argv``; key=value words after an option (`restore a.png --out o device=cpu`) come
    back unparsed from argparse: they are overrides too; anything else is a real error."""
    args, extra = parser.parse_known_args(argv)
    bad = [w for w in extra if "=" not in w or w.startswith("-")]
    if bad:
        parser.error(f"unrecognized arguments: {' '.join(bad)}")
    if extra:
        if not hasattr(args, "overrides"):
            parser.error(f"'{args.cmd}' takes no key=value overrides: {' '.join(extra)}")
        args.overrides = list(args.overrides) + extra
    return args


# Subcommands with their own options and no config tree: module whose main_cli(args) runs them.
TOOLS = {"ingest": "docrestore.data.ingest", "export": "docrestore.restore.runtime"}


def _print_config(args) -> int:
    if args.config or args.overrides:
        print(C.render(C.load_config(args.config, args.overrides)))
    else:
        print("\n".join(C.help_text()))
    return 0


def _split_restore_words(args) -> None:
    """argparse gives every trailing word to `inputs`; key=value words that are not files are overrides."""
    from pathlib import Path

    words = list(args.inputs) + list(args.overrides)
    args.overrides = [w for w in words if "=" in w and not Path(w).exists()]
    args.inputs = [w for w in words if w not in args.overrides]


def _run_stage_command(cfg: C.Config, args) -> int:
    """A config stage: preflight, then the dry run, the background job or the stage itself."""
    from . import preflight

    preflight.check(cfg, args.cmd)  # the dry run refuses what the real run would die on
    if args.cmd == "distill":
        from .training import distill
        distill.check(cfg)
    if args.dry_run:
        print(dry_run_text(cfg, args.cmd))
        return 0
    if getattr(args, "status", False) or getattr(args, "background", False):
        return train_background(cfg, args)
    result = run_stage(args.cmd, cfg)
    return result if isinstance(result, int) else 0


def dispatch(args) -> int:
    """Run the parsed command; errors propagate to :func:`main`, which turns them into messages."""
    if args.cmd == "config":
        return _print_config(args)
    if args.cmd in TOOLS:
        return importlib.import_module(TOOLS[args.cmd]).main_cli(args)
    if args.cmd == "experiments":  # the scheduler knows no recipe: the study gives it the time estimate
        from .scheduler import runner
        from .study.estimate import plan_estimate
        return runner.main_cli(args, estimate=plan_estimate)
    if args.cmd == "restore":
        _split_restore_words(args)
    if getattr(args, "teacher", None):
        args.overrides = list(args.overrides) + [f"distill.teacher={args.teacher}"]
    cfg = C.load_config(args.config, args.overrides,
                        profile=evaluate_profile(args) if args.cmd == "evaluate" else None)
    if args.cmd == "restore":
        from .restore import cli as restore_cli
        return restore_cli.main_cli(cfg, args)
    return _run_stage_command(cfg, args)


def evaluate_profile(args) -> str | None:
    """`docrestore evaluate` with no profile given (not in the overrides, the config file or
    $DOCRESTORE_PROFILE): the profile the checkpoint was trained with, so its eval.* (the held-out
    reader's recipe, the bootstrap) are that profile's, not those of the profile a bare command
    would pick for this machine (quick on a CPU: a 3000-step reader for a smoke checkpoint).
    None (the usual rule) when a profile is given or the checkpoint cannot be read here (evaluate
    then names the problem)."""
    import os

    over = dict(C.parse_override(o) for o in args.overrides)
    file_data = C._read_yaml(C.resolve_path(args.config)) if args.config else {}
    if over.get("profile") or file_data.get("profile") or os.environ.get(C.PROFILE_ENV, "").strip():
        return None
    ckpt = over.get("eval.checkpoint") or (file_data.get("eval") or {}).get("checkpoint")
    path = C.resolve_path(str(ckpt)) if ckpt else None
    if path is None or not path.is_file():
        return None
    from . import checkpoint as CK

    profile = (CK.load_checkpoint(path).get("config") or {}).get("profile")
    if profile not in C.PROFILES:
        return None
    logging.getLogger("docrestore").info(
        "evaluate: no profile given: using the checkpoint's own profile %r (its eval.* settings, the "
        "held-out reader's recipe included); give profile=... to evaluate with another", profile)
    return profile


# A user's data problem (a manifest, a line image, an XML export, a checkpoint file): its message
# names the file and what to do, so the command prints that one line rather than a traceback.
USER_DATA_ERRORS = (("docrestore.data.paths", "DataError"), ("docrestore.data.ingest", "IngestError"),
                    ("docrestore.data.pages", "PageDataError"), ("docrestore.checkpoint", "CheckpointError"),
                    ("docrestore.restore.io", "ImageReadError"))


def is_user_data_error(exc: BaseException) -> bool:
    """Whether ``exc`` is one of :data:`USER_DATA_ERRORS` (a module not imported raised none of them)."""
    return any(isinstance(exc, getattr(sys.modules[mod], name))
               for mod, name in USER_DATA_ERRORS if mod in sys.modules)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(build_parser(), argv)
    runs.setup_logging()
    try:
        return dispatch(args)
    except C.ConfigError as exc:
        print(f"docrestore: config error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        if not is_user_data_error(exc):
            raise
        print(f"docrestore: data error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        if getattr(args, "cmd", "") == "train":
            print("docrestore: interrupted; rerun the same command to continue the run in its folder "
                  "(or pass train.resume=<run>/last.pt)", file=sys.stderr)
        else:
            print("docrestore: interrupted", file=sys.stderr)
        return getattr(exc, "exit_code", 130)


if __name__ == "__main__":
    sys.exit(main())
