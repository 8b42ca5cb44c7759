"""One benchmark of the study, written once for the line and the page benchmarks.

A benchmark is: arms (:class:`Experiment`: a name, a display name, a group and config overrides),
how an arm becomes a config, the ledger folder its entries live in and the fields an entry of the
current code records, the run that trains and evaluates an arm and writes its entry, and the
columns of its notebook table. Deciding whether a recorded entry is reused (the rule of
:mod:`.reuse`), announcing the plan, running-or-reusing and tabulating are the same for both:

- :data:`docrestore.study.lines.LINES`: synthetic lines, the results ledger
  ``<ledger_dir>/<profile>/``;
- :data:`docrestore.study.pages.PAGES`: DIBCO pages, the page ledger
  ``<ledger_dir>/<profile>/pages/``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .. import config as C
from .. import runs as R
from . import reuse as RU

log = logging.getLogger("docrestore")


@dataclass(frozen=True)
class Experiment:
    """An arm: its ledger name, its display name (method), the group (which figure or table it
    feeds) and its config overrides on top of a profile."""

    name: str
    method: str
    group: str
    overrides: tuple[str, ...] = field(default_factory=tuple)


def auto_profile(profile: str | None) -> str:
    """No profile given: the CLI's rule (config.choose_profile): $DOCRESTORE_PROFILE, else full on
    a GPU, quick on a CPU."""
    return C.choose_profile(profile)[0]


def entry_name(exp: Experiment, seed: int = 0) -> str:
    """The ledger name of ``exp`` trained with ``seed`` (seed 0 keeps the plain name)."""
    return exp.name + (f"_seed{seed}" if seed else "")


def arm_config(exp: Experiment, profile: str | None = None, seed: int = 0,
               overrides: Sequence[str] = (), config: str | None = None) -> C.Config:
    """``exp``'s overrides, the seed and ``overrides`` on ``profile`` (None: :func:`auto_profile`);
    the run folder is named after the arm and seed."""
    cfg = C.load_config(config, list(exp.overrides) + [f"seed={seed}"] + list(overrides),
                        profile=auto_profile(profile))
    cfg.desc = exp.name + (f"-seed{seed}" if seed else "")
    return cfg


def parameter_overrides(values: Mapping[str, object], overrides: Sequence[str] | str = ()) -> list[str]:
    """The overrides a notebook's parameters stand for: ``key=value`` for each given value (None
    or empty = the profile's value; a list as ``[a,b]``), then the notebook's own ``overrides``."""
    out = []
    for key, value in values.items():
        if value is None or (isinstance(value, (str, list, tuple)) and not value):
            continue
        out.append(f"{key}=[{','.join(map(str, value))}]" if isinstance(value, (list, tuple)) else f"{key}={value}")
    return out + C.override_list(overrides)


@dataclass(frozen=True)
class Benchmark:
    """See the module docstring. ``train(exp, profile, seed, overrides, **context)`` trains and
    evaluates one arm and writes its entry; ``extra_columns(entry)`` are the table's columns
    after the metrics."""

    name: str
    configure: Callable[..., C.Config]  # (exp, profile, seed, overrides) -> Config
    folder: Callable[[str | Path, str], Path]  # (ledger_dir, profile) -> the entries' folder
    fields: tuple[str, ...]
    train: Callable[..., dict]
    columns: tuple[str, ...]
    digits: int
    extra_columns: Callable[[Mapping], dict]
    reference_labels: Mapping[str, str] = field(default_factory=dict)
    # (cfg) -> the current code's fingerprint of an arm, and the local data's hash (None: not
    # there to compare): what a recorded entry is judged by (docrestore.fingerprint, .reuse).
    behaviour: Callable[[C.Config], dict] = RU.line_fingerprint
    data_hash: Callable[[C.Config], str | None] = RU.local_data_hash

    def decide(self, exp: Experiment, profile: str | None, seed: int, overrides: Sequence[str], reuse: bool,
               head: dict, ledger_dir: str | Path | None = None) -> RU.Decision:
        """Reuse ``exp``'s recorded entry (in ``ledger_dir``, default the config's) or train it."""
        cfg = self.configure(exp, profile, seed, overrides)
        name = entry_name(exp, seed)
        path = self.folder(ledger_dir or cfg.eval.ledger_dir, cfg.profile) / f"{name}.json"
        return RU.decide(name, cfg, path, reuse, head, fields=self.fields, behaviour=self.behaviour,
                         data_hash=self.data_hash)

    def run_or_reuse(self, exp: Experiment, profile: str | None = None, seed: int = 0,
                     overrides: Sequence[str] = (), reuse: bool = True, **context) -> dict:
        """The entry of ``exp``: reused when the ledger holds one made with exactly this resolved
        config by code that behaves the same (:func:`.reuse.decide`), else trained now."""
        d = self.decide(exp, profile, seed, overrides, reuse, R.git_info())
        if not d.train:
            log.info("reusing %s: %s", d.name, d.reason)
            return d.entry
        log.info("training %s: %s", d.name, d.reason)
        return self.train(exp, profile, seed, overrides, **context)

    def announce(self, exps: Sequence[Experiment], profile: str | None = None, seed: int = 0,
                 overrides: Sequence[str] = (), reuse: bool = True) -> str:
        """Say (notebook output and papermill's terminal) which profile was chosen and why, which
        arms train and which entries are reused, and how long it should take (timed by earlier
        runs whose entries are in the same folder)."""
        from ..notebook import announce

        prof, why = C.choose_profile(profile)
        head = R.git_info()
        decisions = [self.decide(e, prof, seed, overrides, reuse, head) for e in exps]
        folder = Path()
        if exps:
            cfg = self.configure(exps[0], prof, seed, overrides)
            folder = self.folder(cfg.eval.ledger_dir, prof)
        text = RU.plan_text(prof, why, decisions, folder.parent, timed_by=folder)
        announce(text)
        return text

    def table(self, entries: Sequence[Mapping]):
        """References and methods side by side (a notebook's display): the references of the
        first entry (the same for every method on one test set), then one row per entry."""
        rows = []
        if entries:
            for k, ref in entries[0]["references"].items():
                rows.append({"method": f"{self.reference_labels.get(k, k)} (reference)",
                             **{m: round(ref[m]["mean"], self.digits) for m in self.columns}})
        for e in entries:
            rows.append({"method": e["method"], **{m: round(e["metrics"][m]["mean"], self.digits)
                                                   for m in self.columns}, **self.extra_columns(e)})
        try:
            import pandas as pd

            return pd.DataFrame(rows)
        except ImportError:  # pragma: no cover - pandas comes with mlflow
            return rows
