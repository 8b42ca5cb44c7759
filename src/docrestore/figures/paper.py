"""Draw every figure and table of the paper from the results ledger (never retraining).

``make_all`` reads ``<ledger_dir>/<profile>/*.json``, writes each figure (PDF, 300 dpi PNG and a
provenance JSON) to figures_dir and each table (.tex) to tables_dir, and returns a report of
what was written and what was skipped, and why. ``make_figures`` is the `docrestore figures`
pipeline stage; ``show_report`` displays a report in a notebook.
"""

from __future__ import annotations

import logging
from pathlib import Path

import matplotlib.pyplot as plt

from docrestore import config as C
from docrestore.evaluation import ledger as L

from . import entries as E
from . import plots, style, tables

log = logging.getLogger("docrestore")

FIGURES_DIR = "paper/figures"
TABLES_DIR = "paper/tables"


def profile_dirs(figures_dir: str | Path, tables_dir: str | Path, profile: str) -> tuple[Path, Path]:
    """Where ``profile``'s figures and tables go, so that no profile's output replaces another's:
    the paper's folders (paper/figures, paper/tables) get a subfolder per paper profile
    (paper/figures/quick, paper/figures/full), and a smoke run (a test, a curious user) never
    writes under paper/ at all but under runs/paper-smoke/. Any other folder is used as given."""
    out = []
    for given, kind in ((figures_dir, "figures"), (tables_dir, "tables")):
        path = C.resolve_path(given)
        if path.resolve() == (C.PROJECT_ROOT / "paper" / kind).resolve():
            path = (C.resolve_path("runs") / "paper-smoke" / kind if profile == "smoke" else path / profile)
        out.append(path)
    return out[0], out[1]


class EmptyLedgerError(FileNotFoundError):
    """The ledger holds no entry for the requested profile: the experiments have not run."""


def load_entries(ledger_dir: str | Path, profile: str | None = None) -> list[dict]:
    """The validated ledger entries of ``profile`` (copies, each noting its JSON file under
    :data:`entries.SOURCE_KEY`).

    With ``profile=None`` the ledger must hold a single profile (figures never mix profiles).
    Raises :class:`EmptyLedgerError` when there is nothing to draw.
    """
    root = C.resolve_path(ledger_dir)
    found = L.read_ledger(root, profile)
    if not found:
        where = root / profile if profile else root
        raise EmptyLedgerError(
            f"the results ledger {where} holds no entries{f' for profile {profile!r}' if profile else ''}: "
            f"run the experiments first (`make paper-figures` runs them, then draws the figures)")
    profiles = sorted({e["profile"] for e in found})
    if len(profiles) > 1:
        raise ValueError(f"the ledger {root} holds profiles {profiles}; a figure shows one profile, "
                         f"pass profile= one of them")
    out = []
    for e in found:
        e = dict(e)
        e[E.SOURCE_KEY] = str(L.entry_path(root, e["profile"], e["experiment"]))
        out.append(e)
    return E.merge_seeds(out)  # one entry per arm: seeds are averaged, never separate rows


def output_dirs(ledger_dir: str | Path) -> tuple[Path, Path]:
    """(figures, tables) folders beside the ledger folder: paper/results -> paper/figures and
    paper/tables; the smoke profile's runs/results -> runs/figures and runs/tables (so a smoke
    run never replaces the paper's figures)."""
    parent = C.resolve_path(ledger_dir).parent
    return parent / "figures", parent / "tables"


def declared_comparisons(plan: str | Path | None, profile: str,
                         ledger_dir: str | Path | None = None) -> tuple[dict, str]:
    """(the plan's declared families of comparisons, the plan's path or ""): ``plan="auto"`` is the
    profile's paper plan (configs/experiments/paper_<profile>.yaml) when there is one and the
    ledger is the profile's own (``eval.ledger_dir``; another ledger folder was made by another
    plan, which is then given by name); None: no plan (each table tests its own rows)."""
    from docrestore.scheduler import plan as PL

    if plan is None:
        return {}, ""
    if plan == "auto":
        path = PL.PLAN_DIR / f"paper_{profile}.yaml"
        own = C.resolve_path(C.load_config(profile=profile).eval.ledger_dir).resolve()
        if not path.is_file() or (ledger_dir is not None and C.resolve_path(ledger_dir).resolve() != own):
            return {}, ""
        plan = path
    loaded = PL.load_plan(plan)
    return loaded.comparisons, str(C.project_relative(loaded.path))


def make_all(ledger_dir: str | Path | None, figures_dir: str | Path | None = None,
             tables_dir: str | Path | None = None, profile: str | None = None,
             plan: str | Path | None = "auto") -> dict:
    """Draw every figure and table the ledger has results for.

    Paths are resolved against the project root (:func:`docrestore.config.resolve_path`).
    ``ledger_dir=None``: the profile's ``eval.ledger_dir``; ``figures_dir``/``tables_dir`` None:
    beside the ledger folder (:func:`output_dirs`); the paper's own folders get the profile's
    subfolder (:func:`profile_dirs`).
    Returns a JSON-ready report: ``{"profile", "profile_label", "ledger_dir", "figures_dir",
    "tables_dir", "experiments", "figures": {name: [paths]}, "tables": {name: path},
    "skipped": {name: reason}, "identical": entries.identical_arms(...), "comparisons": {family:
    {reference, arms, metric}}, "plan": path}``. The tables test the families of comparisons the
    ``plan`` declares (:func:`declared_comparisons`). A figure or table whose group is missing is
    skipped with the reason (naming the group); any other error propagates.
    """
    if ledger_dir is None:
        ledger_dir = C.load_config(profile=profile).eval.ledger_dir
    ledger_root = C.resolve_path(ledger_dir)
    default_fig, default_tab = output_dirs(ledger_root)
    entries = load_entries(ledger_root, profile)
    prof = entries[0]["profile"]
    fig_dir, tab_dir = profile_dirs(figures_dir or default_fig, tables_dir or default_tab, prof)
    families, plan_path = declared_comparisons(plan, prof, ledger_root)
    report: dict = {
        "profile": prof,
        "profile_label": style.profile_label([prof]),
        "ledger_dir": str(ledger_root),
        "figures_dir": str(fig_dir),
        "tables_dir": str(tab_dir),
        "experiments": [e["experiment"] for e in entries],
        "figures": {},
        "tables": {},
        "skipped": {},
        # one result counted twice: same settings, or settings that had no effect
        "identical": E.identical_arms(entries),
        "plan": plan_path,
        "comparisons": {n: {"reference": c.reference, "arms": [str(a) for a in c.arms], "metric": c.metric}
                        for n, c in families.items()},
    }
    for c in report["identical"]:
        log.warning("identical arms (%s): %s%s", c["kind"], " = ".join(c["experiments"]),
                    f"; settings differ in {', '.join(c['differences'])}" if c["differences"] else "")
    for name, fn in plots.FIGURES.items():
        try:
            fig = fn(entries)
        except E.MissingResults as exc:
            report["skipped"][name] = str(exc)
            log.warning("figure %s skipped: %s", name, exc)
            continue
        try:
            report["figures"][name] = [str(p) for p in style.savefig(fig, fig_dir, name)]
        finally:
            plt.close(fig)
        log.info("figure %s written to %s", name, fig_dir)
    for name, fn in tables.TABLES.items():
        try:
            text = fn(entries, families=families)
        except E.MissingResults as exc:
            report["skipped"][name] = str(exc)
            log.warning("table %s skipped: %s", name, exc)
            continue
        report["tables"][name] = str(tables.write_table(text, tab_dir, name))
        log.info("table %s written to %s", name, tab_dir)
    for name, comparison in families.items():  # a declared family no paper table is named after
        if name in tables.TABLES:
            continue
        try:
            text = tables.family_table(entries, comparison)
        except E.MissingResults as exc:
            report["skipped"][f"family_{name}"] = str(exc)
            log.warning("table family_%s skipped: %s", name, exc)
            continue
        report["tables"][f"family_{name}"] = str(tables.write_table(text, tab_dir, f"family_{name}"))
    # the numbers the paper's text quotes (\res{experiment}{key}), never typed by hand
    report["macros"] = str(tables.write_table(tables.macros(entries, families), tab_dir, "macros"))
    return report


def make_figures(cfg: C.Config, run) -> dict:
    """The `docrestore figures` stage: every figure and table of ``cfg.profile`` from the
    ledger at ``cfg.eval.ledger_dir`` into the folders beside it (:func:`output_dirs`), with the
    profile's subfolder in the paper's (paper/figures/<profile>, paper/tables/<profile>).

    Writes the report to the run folder (figures_report.json) and returns it.
    """
    report = make_all(cfg.eval.ledger_dir, profile=cfg.profile)
    log.info("%d figure(s) and %d table(s) written for the %s from %d ledger entries",
             len(report["figures"]), len(report["tables"]), report["profile_label"],
             len(report["experiments"]))
    for name, why in report["skipped"].items():
        log.warning("skipped %s: %s", name, why)
    if run is not None:
        run.write_json("figures_report.json", report)
    return report


def show_report(report: dict) -> None:
    """Display a :func:`make_all` report in a notebook: each figure's PNG, each table's LaTeX
    and the list of skipped items with their reasons."""
    from IPython.display import Image, Markdown, display

    display(Markdown(f"**{report['profile_label']}** \u2014 {len(report['experiments'])} ledger "
                     f"entries from `{report['ledger_dir']}`"))
    for name, paths in report["figures"].items():
        png = next(p for p in paths if p.endswith(".png"))
        display(Markdown(f"### Figure `{name}`"))
        display(Image(filename=png, width=900))
    for name, path in report["tables"].items():
        display(Markdown(f"### Table `{name}` (`{path}`)\n```latex\n"
                         f"{Path(path).read_text(encoding='utf-8')}\n```"))
    if report["skipped"]:
        display(Markdown("### Skipped\n" + "\n".join(f"- `{k}`: {v}" for k, v in report["skipped"].items())))
