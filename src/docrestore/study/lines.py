"""The line benchmark: the paper's line arms as named recipes, and the functions notebooks 01–03 call.

An arm = a name, a display name (method), a group (which figure/table it feeds) and config
overrides on top of a profile (:class:`~.benchmark.Experiment`). :func:`run_experiment` trains
it, evaluates it on the test split with the held-out reader and writes its results-ledger entry;
:data:`LINES` decides, announces, runs-or-reuses and tabulates (:mod:`.benchmark`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path

from .. import config as C
from .. import runs as R
from . import reuse as RU
from .benchmark import (Benchmark, Experiment, arm_config, auto_profile, entry_name,  # noqa: F401
                        parameter_overrides)

log = logging.getLogger("docrestore")

TAPS = ("cnn1", "cnn2", "cnn3", "cnn4", "cnn5")  # cnn5 = cnn_last, the weight sweep's tap


def baseline(arm: str, ctc_weight: float = 1.0, pixel_weight: float = 10.0) -> Experiment:
    """ERB arms: 'cgan' (lambda = 0), 'S1', 'S2'."""
    common = (f"train.pixel_weight={pixel_weight}",)
    if arm == "cgan":
        return Experiment("baseline_cgan", "cGAN (λ=0)", "baseline",
                          common + ("train.ctc.weight=0", "train.scenario=frozen"))
    if arm in ("S1", "S2"):
        return Experiment(f"baseline_{arm.lower()}", f"ERB {arm}", "baseline",
                          common + (f"train.scenario={arm}", f"train.ctc.weight={ctc_weight}"))
    raise ValueError(f"baseline arm must be cgan, S1 or S2, got {arm!r}")


NOTES_WEIGHT = 10.0  # the research notes' CTC weight (ramp target and abrupt switch)


def annealing(schedule: str, target_weight: float, warmup: int, ramp: int, steps: int | None = None,
              name: str | None = None, method: str | None = None) -> Experiment:
    """An annealing arm: ``schedule`` to ``target_weight`` (ERB's lambda: ``train.ctc.reduction=sum``).
    ``constant`` is the control at the same weight (no warm-up, no ramp); ``switch`` and
    ``balanced`` have no ramp. Arms at a weight other than 5 carry it in their name."""
    names = {"linear": "linear ramp", "cosine": "cosine ramp", "step": "step ramp",
             "switch": "abrupt switch", "balanced": "gradient-balanced", "constant": "constant"}
    if schedule not in names:
        raise ValueError(f"schedule must be one of {sorted(names)}, got {schedule!r}")
    if schedule == "constant":
        warmup, ramp = 0, 0
    elif schedule in ("switch", "balanced"):
        ramp = 0
    w = f"{target_weight:g}"
    overrides = ["train.scenario=S1", f"train.ctc.weight={target_weight}", f"train.ctc.schedule={schedule}"]
    overrides += [f"train.ctc.warmup={warmup}"] if warmup else []
    overrides += [f"train.ctc.ramp={ramp}"] if ramp else []
    overrides += [f"train.ctc.steps={steps}"] if steps is not None and schedule == "step" else []
    return Experiment(name or (f"anneal_{schedule}" + ("" if target_weight == 5.0 else f"_w{w}")),
                      method or f"CTC {names[schedule]} (λ={w})", "annealing", tuple(overrides))


def notes_epoch(total_steps: int) -> float:
    """One epoch of the research notes, in generator steps of this profile: the notes' schedule
    counts epochs of the full profile's run (``train.epochs`` of configs/profiles/full.yaml), so a
    shorter profile keeps the same shares of its training."""
    full = C.load_config(profile="full").train.epochs
    return total_steps / full


def notes_arms(total_steps: int) -> list[Experiment]:
    """The user's own CTC settings (research notes), at ERB's lambda semantics: λ = 0 for 10
    epochs then +1 per epoch up to 10 (the step schedule with 10 stairs over 10 epochs), the
    abrupt switch to 10 after a 3-epoch warm-up, and the constant control at 10."""
    e = notes_epoch(total_steps)
    w = NOTES_WEIGHT
    switch = annealing("switch", w, round(3 * e), 0, name="notes_switch", method="CTC switch to 10 (notes)")
    return [annealing("step", w, round(10 * e), round(10 * e), steps=10, name="notes_ramp",
                      method="CTC ramp +1/epoch to 10 (notes)"),
            switch, clamped(switch, "notes_switch_clamp"),
            annealing("constant", w, 0, 0, name="notes_constant", method="CTC constant 10 (control)")]


def clamped(exp: Experiment, name: str) -> Experiment:
    """``exp`` with the research notes' clip (``train.ctc.clip_mode=clamp``): above the clip the
    CTC passes no gradient, the failure the notes saw (CTC pinned at its clip)."""
    return Experiment(name, f"{exp.method}, clamped clip", exp.group,
                      tuple(exp.overrides) + ("train.ctc.clip_mode=clamp",))


# The annealing study at a scale where schedules act (configs/experiments/ctc_study.yaml): warm-up
# and ramp in epochs of the training split (the run records the steps they map to).
STUDY_WARMUP_EPOCHS = 3
STUDY_RAMP_EPOCHS = 10  # +1 per epoch to the notes' 10 for the step ramp


def study_arms(warmup_epochs: float = STUDY_WARMUP_EPOCHS, ramp_epochs: float = STUDY_RAMP_EPOCHS,
               target_weight: float = NOTES_WEIGHT) -> list[Experiment]:
    """The research notes' annealing study with a CTC term that passes its gradient: after
    ``warmup_epochs`` at weight 0, the abrupt switch, the ramps over ``ramp_epochs`` (linear,
    cosine, and the notes' step ramp of +target/ramp_epochs per epoch), gradient balancing, the
    constant control from step 0, and the notes' clamped switch that reproduces their failure."""
    w = f"{target_weight:g}"
    warm, ramp = f"train.ctc.warmup_epochs={warmup_epochs:g}", f"train.ctc.ramp_epochs={ramp_epochs:g}"
    base = ("train.scenario=S1", f"train.ctc.weight={target_weight}")

    def arm(schedule: str, method: str, *extra: str) -> Experiment:
        return Experiment(f"study_{schedule}", f"CTC {method} (\u03bb={w})", "annealing",
                          base + (f"train.ctc.schedule={schedule}",) + extra)

    switch = arm("switch", f"switch after {warmup_epochs:g} epochs", warm)
    return [switch, clamped(switch, "study_switch_clamp"),
            arm("linear", f"linear ramp over {ramp_epochs:g} epochs", warm, ramp),
            arm("cosine", f"cosine ramp over {ramp_epochs:g} epochs", warm, ramp),
            arm("step", f"step ramp, {ramp_epochs:g} stairs of an epoch", warm, ramp,
                f"train.ctc.steps={max(1, round(ramp_epochs))}"),
            arm("balanced", f"gradient-balanced after {warmup_epochs:g} epochs", warm),
            arm("constant", "constant")]


def feature_loss(weight: float, tap: str = "cnn_last", distance: str = "mse",
                 discriminator: str = "patch", pixel: str = "bce") -> Experiment:
    """The recognition feature loss at ``weight`` (the weight sweep at the last CNN block, the tap
    sweep at other taps), optionally with the dual-modal discriminator, and with the L1 pixel loss
    the user's own runs used (``pixel="l1"``) beside ERB's BCE."""
    w = f"{weight:g}"
    name = f"feature_w{w}_{tap}" + (f"_{distance}" if distance != "mse" else "")
    method = f"feature loss w={w} ({tap})"
    group = "feature_weight" if tap == "cnn_last" else "feature_tap"
    if discriminator == "dual_modal":
        name, group = f"dual_modal_w{w}" + (f"_{tap}" if tap != "cnn_last" else ""), "dual_modal"
        method = "dual-modal D" if weight == 0 else f"dual-modal D + feature loss w={w}"
    overrides = ("train.scenario=frozen", "train.ctc.weight=0", f"train.feature_loss.weight={weight}")
    if weight > 0:  # with weight 0 the feature settings have no effect (config.no_effect)
        overrides += (f"train.feature_loss.taps=[{tap}]", f"train.feature_loss.distance={distance}")
    overrides += (f"discriminator.name={discriminator}",)
    if pixel != "bce":
        name, method = f"{name}_pix{pixel}", f"{method}, {pixel.upper()} pixel loss"
        overrides += (f"train.pixel_loss={pixel}",)
    return Experiment(name, method, group, overrides)


def paper_arms(profile: str) -> list[Experiment]:
    """Every line arm the paper's figures and tables need, in table order."""
    cfg = C.load_config(profile=profile)
    total = C.total_steps(cfg)
    warmup, ramp = default_annealing(total)
    exps = [baseline("cgan"), baseline("S1"), baseline("S2")]
    exps += [annealing(s, 5.0, warmup, ramp) for s in ("linear", "cosine", "step", "switch", "balanced", "constant")]
    exps += notes_arms(total)
    exps += [feature_loss(w) for w in (0.0, 1.0, 5.0, 10.0)]
    exps += [feature_loss(5.0, pixel="l1")]
    exps += [feature_loss(5.0, tap) for tap in TAPS[:-1]]
    exps += [feature_loss(0.0, discriminator="dual_modal"), feature_loss(5.0, discriminator="dual_modal")]
    return exps


def paper_experiments(profile: str, seeds: bool = False) -> list[Experiment]:
    """Every experiment the paper's figures and tables need (:func:`paper_arms`); with ``seeds``
    as (experiment, seed) pairs, one per seed the profile's plan (configs/experiments/
    paper_<profile>.yaml, what `make paper-figures` runs) trains it with: the plan is the one
    place seeds are set, so what counts as missing is what the plan would make. A profile
    without a plan (smoke) has one seed per arm."""
    exps = paper_arms(profile)
    if not seeds:
        return exps
    plan = C.CONFIG_DIR / "experiments" / f"paper_{profile}.yaml"
    if not plan.exists():
        return [(e, 0) for e in exps]
    seeds_of: dict[str, list[int]] = {}
    for exp, seed in plan_experiments(plan):
        seeds_of.setdefault(exp.name, []).append(seed)
    return [(e, s) for e in exps for s in sorted(seeds_of.get(e.name, [0]))]


def plan_experiments(plan_path: str | Path) -> list[tuple[Experiment, int]]:
    """The (line experiment, seed) pairs a plan's jobs train, in job order, each once (notebook
    03's closing ERB S1 and the main arm that is also in a sweep run once: they are reused)."""
    from ..scheduler import plan as PL

    plan = PL.load_plan(plan_path)
    out: list[tuple[Experiment, int]] = []
    seen: set[tuple[str, int]] = set()
    for job in PL.expand(plan):
        params = {**PL.notebook_parameters(job.notebook), **job.parameters}
        seed = int(params.get("seed") or 0)
        for exp in job_experiments(job.notebook, params):
            if (exp.name, seed) not in seen:
                seen.add((exp.name, seed))
                out.append((exp, seed))
    return out


def job_experiments(notebook: str | Path, params: Mapping) -> list[Experiment]:
    """The line experiments that notebook 01, 02 or 03 trains with ``params`` (its parameters
    cell updated by a job's): the same lists its ``run_*`` call builds. Other notebooks: none."""
    stem = Path(notebook).stem
    overrides = params.get("overrides") or []
    if stem.startswith("01_"):
        return baseline_arms(params["scenario"], params["with_cgan"], params["ctc_weight"], params["pixel_weight"])
    if stem.startswith("02_"):  # warm-up and ramp follow the run's length (steps, data_root)
        overrides = notebook_overrides(params.get("steps"), params.get("data_root"), overrides)
        return annealing_arms(params.get("profile"), schedules(params["schedule"]), params["target_weight"],
                              params.get("warmup"), params.get("ramp"), overrides)
    if stem.startswith("03_"):
        main, weights, taps = feature_arms(params["weight"], params["tap"], params["distance"],
                                           params["discriminator"], params["sweep_weights"],
                                           params["sweep_taps"], overrides)
        return [main] + weights + taps + [baseline("S1")]
    return []


def default_annealing(total_steps: int) -> tuple[int, int]:
    """Warm-up for the first 20 % of training, then a ramp over the next 40 %."""
    return int(0.2 * total_steps), int(0.4 * total_steps)


# The line arms need nothing beyond the common recipe: the arm's overrides and seed on a profile.
make_config = arm_config


def run_experiment(exp: Experiment, profile: str | None = None, seed: int = 0,
                   overrides: list[str] | tuple = (), config: str | None = None) -> dict:
    """Train ``exp``, evaluate it with the held-out reader and write its ledger entry."""
    from ..data import loading
    from ..evaluation import ledger as L
    from ..evaluation.evaluate import evaluate_checkpoint
    from ..fingerprint import fingerprint
    from ..training import survive
    from ..training.gan import GANTrainer
    from ..training.recognizer import ensure_recognizer

    cfg = make_config(exp, profile, seed, overrides, config)
    R.setup_logging()
    # Refused before minutes of training, not after: a paper entry from a dirty tree.
    L.check_clean_tree(cfg.profile, cfg.eval.ledger_dir, cfg.eval.allow_dirty)
    data = loading.open_data(cfg)
    recognizer = ensure_recognizer(cfg, "loss")
    # What this code does with this config, recorded in the entry (the reuse rule compares it).
    behaviour = fingerprint(cfg)
    run = survive.start_or_continue(cfg, "train")  # an interrupted run of this experiment continues
    result = GANTrainer(cfg, run, data, recognizer).fit()
    result["fingerprint"] = behaviour
    result.update(git_commit=run.git["commit"], git_dirty=run.git["dirty"])
    # Only evaluation reads with the held-out reader: while `prepare` still trains it, the plan's
    # first jobs train their GANs and wait here (on the reader's cache lock), not before training.
    ensure_recognizer(cfg, "reader")
    name = entry_name(exp, seed)
    entry = evaluate_checkpoint(cfg, Path(result["best"]), experiment=name, method=exp.method,
                                group=exp.group, train_result=result)
    run.write_json("ledger_entry.json", {k: v for k, v in entry.items() if k != "per_line"})
    _job_result(entry)
    return entry


def _job_result(entry: dict) -> None:
    """Tell the background runner (when this runs inside a plan) the headline numbers so far."""
    import os

    from ..scheduler.status import JOB_DIR_ENV, record_result

    job_dir = os.environ.get(JOB_DIR_ENV)
    if not job_dir:
        return
    path = Path(job_dir) / "result.json"
    head = json.loads(path.read_text()).get("headline", {}) if path.exists() else {}
    m = entry["metrics"]
    head.update({f"{entry['experiment']}:{k}": round(m[k]["mean"], 4) for k in ("psnr", "cer")})
    record_result(head)


# ------------------------------------------------------------------------------ notebook entry
def notebook_overrides(steps: int | None = None, data_root: str | None = None,
                       overrides: list[str] | tuple = ()) -> list[str]:
    """The overrides notebooks 01–03's parameters stand for (None = the profile's value)."""
    return parameter_overrides({"train.max_steps": None if steps is None else int(steps), "data.root": data_root},
                               overrides)


LINES = Benchmark(
    name="lines", configure=make_config, folder=lambda ledger_dir, profile: C.resolve_path(ledger_dir) / profile,
    fields=RU.CURRENT_FIELDS, train=run_experiment, columns=("psnr", "ssim", "cer", "wer"), digits=4,
    extra_columns=lambda e: {"run": e["mlflow_run_id"][:8], "profile": e["profile"], "lines": line_source(e)})


def line_source(entry: Mapping) -> str:
    """Which lines an entry measured, as every table says: font lines, or real hands (the ingest's
    manifest named; clean = the background-flattened real crop, degraded = our damage model)."""
    data = (entry.get("config") or {}).get("data") or {}
    if data.get("source") == "real":
        return f"real hands ({Path(str(data.get('real_lines', ''))).parent.name or 'ingested'}; clean flattened)"
    return "font lines" if not data.get("manifest") else f"manifest {Path(str(data['manifest'])).parent.name}"


def run_or_reuse(exp: Experiment, profile: str | None = None, seed: int = 0,
                 overrides: list[str] | tuple = (), reuse: bool = True) -> dict:
    """The ledger entry of ``exp``, reused or trained now (:meth:`.benchmark.Benchmark.run_or_reuse`)."""
    return LINES.run_or_reuse(exp, profile, seed, overrides, reuse)


def announce_plan(exps: list[Experiment], profile: str | None = None, seed: int = 0,
                  overrides: list[str] | tuple = (), reuse: bool = True) -> str:
    """What the notebook is about to train and reuse, and for how long (:meth:`.benchmark.Benchmark.announce`)."""
    return LINES.announce(exps, profile, seed, overrides, reuse)


results_table = LINES.table


def baseline_arms(scenario: str, with_cgan: bool, ctc_weight: float = 1.0,
                  pixel_weight: float = 10.0) -> list[Experiment]:
    """Notebook 01's arms: the cGAN (lambda = 0) when asked, then ERB S1, S2 or both."""
    arms = (["cgan"] if with_cgan else []) + (["S1", "S2"] if scenario == "both" else [scenario])
    return [baseline(a, ctc_weight, pixel_weight) for a in arms]


def annealing_arms(profile: str | None, schedules: list[str] | tuple, target_weight: float,
                   warmup: int | None, ramp: int | None, overrides: list[str] | tuple = ()) -> list[Experiment]:
    """Notebook 02's arms: one per schedule; warm-up and ramp default to 20 % and 40 % of the
    profile's training; the research notes' and the CTC study's arms by their names."""
    cfg = C.load_config(None, list(overrides), profile=auto_profile(profile))
    total = C.total_steps(cfg)
    dw, dr = default_annealing(total)
    warmup = dw if warmup is None else warmup
    ramp = dr if ramp is None else ramp
    notes = {e.name: e for e in notes_arms(total) + study_arms()}
    return [notes[s] if s in notes else annealing(s, target_weight, warmup, ramp) for s in schedules]


def feature_arms(weight: float, tap: str, distance: str, discriminator: str, sweep_weights, sweep_taps,
                 overrides: list[str] | tuple = ()) -> tuple[Experiment, list[Experiment], list[Experiment]]:
    """Notebook 03's arms: (the method at ``weight``, the weight sweep, the tap sweep); a
    ``train.pixel_loss`` override names the method's arm (:func:`split_pixel_loss`)."""
    pixel = split_pixel_loss(overrides)[0]
    return (feature_loss(weight, tap, distance, discriminator, pixel),
            [feature_loss(w, tap, distance) for w in sweep_weights],
            [feature_loss(weight, t, distance) for t in sweep_taps])


def run_baseline(profile: str | None = None, scenario: str = "both", ctc_weight: float = 1.0,
                 pixel_weight: float = 10.0, with_cgan: bool = True, seed: int = 0,
                 overrides: list[str] | tuple = (), reuse: bool = True) -> list[dict]:
    """Notebook 01: the cGAN (lambda = 0) and ERB S1 / S2, each trained, evaluated and recorded."""
    exps = baseline_arms(scenario, with_cgan, ctc_weight, pixel_weight)
    announce_plan(exps, profile, seed, overrides, reuse)
    return [run_or_reuse(e, profile, seed, overrides, reuse) for e in exps]


def run_annealing(profile: str | None = None, schedules: list[str] | tuple = ("linear",),
                  target_weight: float = 5.0, warmup: int | None = None, ramp: int | None = None,
                  seed: int = 0, overrides: list[str] | tuple = (), reuse: bool = True) -> list[dict]:
    """Notebook 02: one run per CTC-weight schedule (warm-up/ramp default to 20 %/40 % of training);
    ``constant`` is the control at ``target_weight``; ``notes_ramp``, ``notes_switch`` and
    ``notes_constant`` are the research notes' own settings at weight 10 (:func:`notes_arms`)."""
    exps = annealing_arms(profile, schedules, target_weight, warmup, ramp, overrides)
    announce_plan(exps, profile, seed, overrides, reuse)
    return [run_or_reuse(e, profile, seed, overrides, reuse) for e in exps]


def run_feature_loss(profile: str | None = None, weight: float = 5.0, tap: str = "cnn_last",
                     distance: str = "mse", discriminator: str = "patch",
                     sweep_weights: list[float] | tuple = (), sweep_taps: list[str] | tuple = (),
                     seed: int = 0, overrides: list[str] | tuple = (), reuse: bool = True) -> dict[str, list[dict]]:
    """Notebook 03: the method at ``weight``, then the weight sweep and the tap sweep.
    An override ``train.pixel_loss=l1`` makes the L1-pixel arm (its own ledger name)."""
    main_exp, weight_exps, tap_exps = feature_arms(weight, tap, distance, discriminator, sweep_weights,
                                                   sweep_taps, overrides)
    overrides = split_pixel_loss(overrides)[1]
    announce_plan([main_exp] + weight_exps + tap_exps, profile, seed, overrides, reuse)
    done: dict[str, dict] = {}  # an arm in two lists (the main one in the weight sweep) runs once

    def get(e: Experiment) -> dict:
        if e.name not in done:
            done[e.name] = run_or_reuse(e, profile, seed, overrides, reuse)
        return done[e.name]

    main = get(main_exp)
    return {"main": [main], "weights": [get(e) for e in weight_exps], "taps": [get(e) for e in tap_exps]}


def split_pixel_loss(overrides: list[str] | tuple | str) -> tuple[str, list[str]]:
    """``(pixel loss, the other overrides)``: ``train.pixel_loss=...`` names notebook 03's arm
    (feature_..._pixl1), so it is the arm's own setting, never one for every run of the notebook."""
    overrides = C.override_list(overrides) if isinstance(overrides, str) else list(overrides)
    pixel = next((o.split("=", 1)[1].strip() for o in overrides if o.startswith("train.pixel_loss=")), "bce")
    return pixel, [o for o in overrides if not o.startswith("train.pixel_loss=")]


SCHEDULES = ("linear", "cosine", "step", "switch", "balanced")
CONTROLS = ("constant", "notes_ramp", "notes_switch", "notes_switch_clamp", "notes_constant")
STUDY = tuple(e.name for e in study_arms())


def schedules(choice: str) -> list[str]:
    """'all' or one schedule name -> the list of annealing arms to run ('all' = the five ramps
    and the constant control at the same weight)."""
    if choice == "all":
        return list(SCHEDULES) + ["constant"]
    if choice not in SCHEDULES + CONTROLS + STUDY:
        raise ValueError(f"schedule must be one of {list(SCHEDULES + CONTROLS + STUDY)} or 'all', got {choice!r}")
    return [choice]


def with_baseline(entries: list[dict], profile: str | None = None, seed: int = 0,
                  overrides: list[str] | tuple = (), reuse: bool = True) -> list[dict]:
    """ERB S1 (reused from the ledger when recorded with the same settings) followed by ``entries``.
    A pixel-loss override is the feature arm's own (:func:`split_pixel_loss`): S1 keeps ERB's BCE,
    so notebook 03's L1 job never re-trains and overwrites the ledger's ``baseline_s1``."""
    overrides = split_pixel_loss(overrides)[1]
    announce_plan([baseline("S1")], profile, seed, overrides, reuse)
    return [run_or_reuse(baseline("S1"), profile, seed, overrides, reuse)] + list(entries)
