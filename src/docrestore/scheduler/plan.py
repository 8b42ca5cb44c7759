"""Experiment plans: a YAML file that names notebooks, a parameter grid, seeds and a profile.

A plan (``configs/experiments/<name>.yaml``)::

    name: ctc_annealing            # the plan's folder: runs/experiments/<name>/
    profile: quick                 # passed to every notebook as the parameter `profile`
    seeds: [0, 1, 2]               # one job per seed, passed as the parameter `seed`
    jobs_per_gpu: 1                # jobs sharing one GPU at a time
    cpu_workers: 2                 # jobs at a time when no GPU is visible
    notebooks:
      - notebook: notebooks/02_ctc_annealing.ipynb
        name: ctc                  # job id prefix
        parameters: {epochs: 5}    # fixed for every job of this notebook
        grid:                      # the cartesian product of these lists
          ctc_schedule: [constant, linear]
          ctc_weight: [0.1, 1.0]

expands to 2 x 2 x 3 = 12 jobs with ids such as ``ctc-ctc_schedule=linear-ctc_weight=0.1-seed2``.
Optional keys: ``description``, ``runs_dir`` (default ``runs``), ``tracking_uri`` (default
``$MLFLOW_TRACKING_URI`` or ``sqlite:///<runs_dir>/mlflow.db``); per notebook, ``seeds``
(overrides the plan's).

``comparisons`` declares, before anything runs, the families of tests the results are read
with: each family is a reference arm and the arms compared with it on one metric, and Holm's
adjustment runs over exactly that family (a declared arm missing from the results still counts,
as untested). An arm is a ledger experiment name (seeds merged), or ``{best_of: [names]}``: the
one of those arms with the lowest validation CER read by the held-out reader (never test data)::

    comparisons:
      main_comparison:             # a paper table's name: that table tests this family
        reference: baseline_s1
        metric: cer                # default cer
        arms: [baseline_cgan, baseline_s2, {best_of: [anneal_linear, anneal_cosine]}]

Nothing is silently ignored: an unknown key is an error that names it, and every parameter
name is checked against the assignments in the notebook's cell tagged ``parameters`` before
any job starts (papermill itself only warns about an unknown parameter and runs anyway).
"""

from __future__ import annotations

import difflib
import hashlib
import itertools
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .. import config as C
from .. import notebook as NB

PLAN_DIR = C.CONFIG_DIR / "experiments"

PLAN_KEYS = {
    "name": "the plan's name: its folder is <runs_dir>/experiments/<name>/",
    "description": "one line saying what the plan is for",
    "profile": "smoke | quick | full, passed to every notebook as the parameter `profile`",
    "notebooks": "list of {notebook, name, parameters, grid, seeds}",
    "seeds": "list of integer seeds, one job per seed, passed as the parameter `seed`",
    "jobs_per_gpu": "jobs that share one GPU at a time (default 1)",
    "cpu_workers": "jobs at a time when no GPU is visible (default 2)",
    "runs_dir": "where the plan's folder goes (default: runs)",
    "tracking_uri": "MLflow store for every job (default: $MLFLOW_TRACKING_URI or sqlite:///<runs_dir>/mlflow.db)",
    "comparisons": "families of tests declared before the runs: {family: {reference, arms, metric}}, Holm over each",
}
COMPARISON_METRICS = ("cer", "wer", "psnr", "ssim", "cer_loss_reader", "wer_loss_reader", "cer_reader2", "wer_reader2")
COMPARISON_KEYS = {
    "reference": "the experiment every arm is compared with, e.g. baseline_s1",
    "arms": "list of experiment names, or {best_of: [names]} (the lowest validation CER of those)",
    "metric": "the metric tested (default cer): " + ", ".join(COMPARISON_METRICS),
}
NOTEBOOK_KEYS = {
    "notebook": "path of the .ipynb, relative to the project root",
    "name": "short prefix of the job ids (default: the notebook's file name)",
    "parameters": "mapping of parameters fixed for every job of this notebook",
    "grid": "mapping of parameter -> list of values; one job per combination",
    "seeds": "seeds for this notebook only (overrides the plan's seeds)",
}
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class PlanError(ValueError):
    """A problem with an experiment plan, naming the key, job or parameter and how to fix it."""


@dataclass(frozen=True)
class NotebookEntry:
    notebook: Path
    name: str
    parameters: dict[str, Any]
    grid: dict[str, list]
    seeds: list[int]


@dataclass(frozen=True)
class Job:
    """One papermill execution: a notebook with fully resolved parameters."""

    id: str
    plan: str
    notebook: Path
    parameters: dict[str, Any]

    @property
    def fingerprint(self) -> str:
        """Hash of what decides the result (notebook path and parameters): a job recorded as
        done under another fingerprint ran other settings and is rerun."""
        blob = json.dumps({"notebook": str(self.notebook), "parameters": self.parameters},
                          sort_keys=True, default=str)
        return hashlib.sha1(blob.encode()).hexdigest()[:16]

    def to_dict(self) -> dict:
        return {"id": self.id, "plan": self.plan, "notebook": str(self.notebook),
                "parameters": self.parameters, "fingerprint": self.fingerprint}


@dataclass(frozen=True)
class BestOf:
    """A family member chosen after the runs by a rule fixed before them: the one of
    ``candidates`` with the lowest validation CER read by the held-out reader."""

    candidates: tuple[str, ...]

    def __str__(self) -> str:
        return "best_of(" + ", ".join(self.candidates) + ")"


@dataclass(frozen=True)
class Comparison:
    """A family of comparisons declared in a plan: each arm against ``reference`` on ``metric``;
    Holm's adjustment runs over all of ``arms`` (the family size is ``len(arms)``)."""

    name: str
    reference: str
    arms: tuple[str | BestOf, ...]
    metric: str = "cer"
    plan: str = ""  # the plan's file name, for captions


@dataclass
class Plan:
    name: str
    path: Path
    notebooks: list[NotebookEntry]
    profile: str | None = None
    description: str = ""
    seeds: list[int] = field(default_factory=list)
    jobs_per_gpu: int = 1
    cpu_workers: int = 2
    runs_dir: Path = field(default_factory=lambda: C.resolve_path("runs"))
    tracking_uri_setting: str = ""
    comparisons: dict[str, Comparison] = field(default_factory=dict)

    @property
    def state_dir(self) -> Path:
        """runs/experiments/<name>/: one folder per job, the lock and the scheduler's log."""
        return self.runs_dir / "experiments" / self.name

    def job_dir(self, job: Job | str) -> Path:
        return self.state_dir / (job if isinstance(job, str) else job.id)

    @property
    def tracking_uri(self) -> str:
        if self.tracking_uri_setting:
            return self.tracking_uri_setting
        if os.environ.get("MLFLOW_TRACKING_URI"):
            return os.environ["MLFLOW_TRACKING_URI"]
        return f"sqlite:///{self.runs_dir / 'mlflow.db'}"


# ------------------------------------------------------------------------------ loading
def resolve_plan_path(plan: str | Path) -> Path:
    """A path as given, or a plan name looked up in configs/experiments/."""
    p = Path(plan).expanduser()
    candidates = [p, C.resolve_path(p), PLAN_DIR / p, PLAN_DIR / f"{p}.yaml"]
    for c in candidates:
        if c.is_file():
            return c.resolve()
    known = sorted(x.name for x in PLAN_DIR.glob("*.yaml")) if PLAN_DIR.is_dir() else []
    raise PlanError(f"plan file not found: {plan}. Give a path to a YAML file or the name of one in "
                    f"{PLAN_DIR} (there: {', '.join(known) or 'none yet'})")


def _unknown_key(key: str, allowed: dict[str, str], where: str) -> PlanError:
    close = difflib.get_close_matches(str(key), list(allowed), n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    listing = "; ".join(f"{k}: {v}" for k, v in allowed.items())
    return PlanError(f"unknown key '{key}' in {where}.{hint} Allowed keys: {listing}")


def _int_list(value: Any, where: str) -> list[int]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise PlanError(f"'{where}' must be a list of integers, e.g. [0, 1, 2], got {value!r}")
    if len(set(value)) != len(value):
        raise PlanError(f"'{where}' lists a seed twice: {value!r}")
    return list(value)


def _positive_int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise PlanError(f"'{where}' must be a whole number >= 1, got {value!r}")
    return value


def _mapping(value: Any, where: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise PlanError(f"'{where}' must be a mapping of parameter: value, got {value!r}")
    for k in value:
        if not isinstance(k, str) or not k.isidentifier():
            raise PlanError(f"'{where}' has the key {k!r}, which is not a Python name, so no notebook "
                            "parameter can have it")
    return dict(value)


def _comparisons(raw: Any, where: str, plan: str = "") -> dict[str, Comparison]:
    """The plan's ``comparisons``, strictly checked (see the module docstring)."""
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not raw:
        raise PlanError(f"{where}: 'comparisons' must be a mapping of family name: {{reference, arms, metric}}, "
                        f"got {raw!r}")
    out = {}
    for name, fam in raw.items():
        fw = f"{where}, comparisons.{name}"
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise PlanError(f"{where}: a family of comparisons needs a short name of letters, digits, '_', "
                            f"'.' or '-', got {name!r}")
        if not isinstance(fam, dict):
            raise PlanError(f"{fw} must be a mapping {{reference: name, arms: [names]}}, got {fam!r}")
        for key in fam:
            if key not in COMPARISON_KEYS:
                raise _unknown_key(key, COMPARISON_KEYS, fw)
        ref = fam.get("reference")
        if not isinstance(ref, str) or not ref:
            raise PlanError(f"{fw}: 'reference' (the experiment every arm is compared with) is missing")
        metric = fam.get("metric", "cer")
        if metric not in COMPARISON_METRICS:
            raise PlanError(f"{fw}: 'metric' must be one of {list(COMPARISON_METRICS)}, got {metric!r}")
        arms_raw = fam.get("arms")
        if not isinstance(arms_raw, list) or not arms_raw:
            raise PlanError(f"{fw}: 'arms' must be a non-empty list of experiment names or {{best_of: [names]}}")
        arms: list[str | BestOf] = []
        named: list[str] = []
        for a in arms_raw:
            if isinstance(a, str) and a:
                arms.append(a)
                named.append(a)
            elif (isinstance(a, dict) and set(a) == {"best_of"} and isinstance(a["best_of"], list)
                  and len(a["best_of"]) >= 2 and all(isinstance(x, str) and x for x in a["best_of"])):
                arms.append(BestOf(tuple(a["best_of"])))
                named += a["best_of"]
            else:
                raise PlanError(f"{fw}: an arm must be an experiment name or {{best_of: [two or more names]}}, "
                                f"got {a!r}")
        twice = sorted({n for n in named if named.count(n) > 1})
        if twice:
            raise PlanError(f"{fw}: {', '.join(twice)} appear(s) twice in the family; each comparison is "
                            "declared once, or Holm would count it twice")
        if ref in named:
            raise PlanError(f"{fw}: the reference {ref} is also one of its arms; an arm is never compared "
                            "with itself")
        out[name] = Comparison(name=name, reference=ref, arms=tuple(arms), metric=metric, plan=plan)
    return out


def load_plan(path: str | Path) -> Plan:
    """Read and strictly check a plan file; raises :class:`PlanError` naming the problem."""
    path = resolve_plan_path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise PlanError(f"plan file {path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise PlanError(f"plan file {path} must hold a mapping of keys (name, notebooks, ...)")
    where = f"plan {path}"
    for key in data:
        if key not in PLAN_KEYS:
            raise _unknown_key(key, PLAN_KEYS, where)
    name = data.get("name")
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise PlanError(f"{where}: 'name' must be a short name of letters, digits, '_', '.' or '-' "
                        f"(it becomes a folder name), got {name!r}")
    profile = data.get("profile")
    if profile is not None and profile not in C.PROFILES:
        raise PlanError(f"{where}: 'profile' must be one of {list(C.PROFILES)}, got {profile!r}")
    seeds = _int_list(data["seeds"], "seeds") if data.get("seeds") is not None else []
    entries_raw = data.get("notebooks")
    if not isinstance(entries_raw, list) or not entries_raw:
        raise PlanError(f"{where}: 'notebooks' must be a non-empty list of "
                        "{notebook: path, name: prefix, parameters: {...}, grid: {...}}")
    entries = []
    for i, raw in enumerate(entries_raw):
        ew = f"notebooks[{i}] of {path.name}"
        if not isinstance(raw, dict):
            raise PlanError(f"{ew} must be a mapping with at least 'notebook: path', got {raw!r}")
        for key in raw:
            if key not in NOTEBOOK_KEYS:
                raise _unknown_key(key, NOTEBOOK_KEYS, ew)
        if not isinstance(raw.get("notebook"), str):
            raise PlanError(f"{ew}: 'notebook' (the .ipynb path) is missing")
        nb_path = C.resolve_path(raw["notebook"])
        if not nb_path.is_file():
            raise PlanError(f"{ew}: notebook {raw['notebook']} not found (looked at {nb_path}); "
                            "paths are relative to the project root")
        short = raw.get("name", nb_path.stem)
        if not isinstance(short, str) or not _NAME_RE.match(short):
            raise PlanError(f"{ew}: 'name' must be letters, digits, '_', '.' or '-', got {short!r}")
        params = _mapping(raw.get("parameters"), f"{ew}.parameters")
        grid = _mapping(raw.get("grid"), f"{ew}.grid")
        for k, values in grid.items():
            if not isinstance(values, list) or not values:
                raise PlanError(f"{ew}.grid.{k} must be a non-empty list of values, got {values!r}; "
                                f"a single value belongs in 'parameters'")
            if k in params:
                raise PlanError(f"{ew}: '{k}' is both in 'parameters' and in 'grid'; keep it in one")
        nb_seeds = _int_list(raw["seeds"], f"{ew}.seeds") if raw.get("seeds") is not None else seeds
        if nb_seeds and ("seed" in params or "seed" in grid):
            raise PlanError(f"{ew}: 'seed' is set in parameters/grid and by 'seeds'; use 'seeds' only")
        if profile is not None and ("profile" in params or "profile" in grid):
            raise PlanError(f"{ew}: 'profile' is set in parameters/grid and at the plan's top level; "
                            "set it once")
        entries.append(NotebookEntry(nb_path, short, params, grid, nb_seeds))
    runs_dir = C.resolve_path(data.get("runs_dir") or "runs")
    uri = data.get("tracking_uri") or ""
    if not isinstance(uri, str):
        raise PlanError(f"{where}: 'tracking_uri' must be text such as sqlite:///runs/mlflow.db, got {uri!r}")
    return Plan(
        name=name, path=path, notebooks=entries, profile=profile,
        description=str(data.get("description") or ""), seeds=seeds,
        jobs_per_gpu=_positive_int(data.get("jobs_per_gpu", 1), "jobs_per_gpu"),
        cpu_workers=_positive_int(data.get("cpu_workers", 2), "cpu_workers"),
        runs_dir=runs_dir, tracking_uri_setting=uri,
        comparisons=_comparisons(data.get("comparisons"), where, path.name))


# ---------------------------------------------------------------------------- expanding
def _slug_value(v: Any) -> str:
    if isinstance(v, (list, tuple)):
        return "+".join(_slug_value(x) for x in v)
    if isinstance(v, dict):
        return "+".join(f"{k}.{_slug_value(x)}" for k, x in v.items())
    return str(v)


def job_slug(text: str) -> str:
    """A folder-safe id; long ids keep a hash of the full text so two jobs never share one."""
    s = re.sub(r"[^A-Za-z0-9_.=+-]+", "-", text).strip("-")
    if len(s) > 120:
        s = s[:110].rstrip("-") + "-" + hashlib.sha1(text.encode()).hexdigest()[:8]
    return s


def expand(plan: Plan) -> list[Job]:
    """One job per notebook x grid combination x seed, in plan order (seed-major within a
    notebook, so the first seed of every setting finishes before the second seed starts)."""
    jobs: list[Job] = []
    for entry in plan.notebooks:
        keys = list(entry.grid)
        combos = list(itertools.product(*(entry.grid[k] for k in keys))) if keys else [()]
        for seed in (entry.seeds or [None]):
            for combo in combos:
                params: dict[str, Any] = {}
                if plan.profile is not None:
                    params["profile"] = plan.profile
                params.update(entry.parameters)
                params.update(dict(zip(keys, combo)))
                parts = [entry.name] + [f"{k}={_slug_value(v)}" for k, v in zip(keys, combo)]
                if seed is not None:
                    params["seed"] = seed
                    parts.append(f"seed{seed}")
                jobs.append(Job(id=job_slug("-".join(parts)), plan=plan.name,
                                notebook=entry.notebook, parameters=params))
    seen: dict[str, Job] = {}
    for job in jobs:
        if job.id in seen:
            raise PlanError(f"plan {plan.name}: two jobs get the id '{job.id}' (notebooks "
                            f"{seen[job.id].notebook.name} and {job.notebook.name}); give the "
                            "notebook entries different 'name's")
        seen[job.id] = job
    return jobs


# ------------------------------------------------------------------ notebook parameters


def read_notebook(path: Path) -> dict:
    try:
        nb = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PlanError(f"cannot read notebook {path}: {exc}") from exc
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        raise PlanError(f"{path} is not a Jupyter notebook (no 'cells' list)")
    return nb


def _cell_source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else str(src)


def notebook_parameters(path: str | Path) -> dict[str, Any]:
    """{name: default} for every name assigned in the notebook's cell tagged ``parameters``
    (defaults that are not literals map to an opaque marker and are not type-checked)."""
    path = Path(path)
    nb = read_notebook(path)
    cells = [c for c in nb["cells"] if "parameters" in (c.get("metadata", {}).get("tags") or [])]
    if not cells:
        raise PlanError(f"notebook {path} has no cell tagged 'parameters', so papermill cannot set "
                        "any parameter; tag the cell of defaults with 'parameters' (JupyterLab: "
                        "property inspector > Cell Tags)")
    out: dict[str, Any] = {}
    for cell in cells:
        try:
            out.update(NB.parse_parameters(_cell_source(cell)))
        except SyntaxError as exc:
            raise PlanError(f"the parameters cell of {path} is not valid Python: {exc}") from exc
    return out


def check_parameters(job_params: dict[str, Any], declared: dict[str, Any], notebook: Path,
                     job_id: str) -> list[str]:
    """Problems (one line each) with a job's parameters against a notebook's declared ones."""
    return [f"job {job_id}: {p}" for p in NB.parameter_problems(job_params, declared, notebook.name)]


def validate_jobs(jobs: list[Job]) -> None:
    """Check every job's parameter names (and literal types) against its notebook; raises one
    :class:`PlanError` listing every problem, so nothing starts with a misspelt parameter."""
    cache: dict[Path, dict] = {}
    problems: list[str] = []
    for job in jobs:
        if job.notebook not in cache:
            cache[job.notebook] = notebook_parameters(job.notebook)
        problems += check_parameters(job.parameters, cache[job.notebook], job.notebook, job.id)
    if problems:
        # one line per distinct problem: a misspelt fixed parameter would repeat for every job
        seen, lines = set(), []
        for p in problems:
            key = p.split(": ", 1)[1]
            if key not in seen:
                seen.add(key)
                lines.append(p)
        raise PlanError("the plan sets parameters its notebooks do not declare, so nothing was "
                        "started:\n  " + "\n  ".join(lines))


def notebook_kernel(path: Path) -> str:
    nb = read_notebook(path)
    return (nb.get("metadata", {}).get("kernelspec") or {}).get("name") or "python3"
