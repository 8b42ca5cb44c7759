"""Whether a notebook reuses a recorded ledger entry or trains, and the plan it announces.

An entry is reused only when it was made with exactly the resolved config, by code that records
every field of :data:`CURRENT_FIELDS`, and the code under it (``runs.CODE_PATHS``: src, configs,
notebooks, the lock) is unchanged since its commit (so committing the ledger, the paper or the
logbook does not make it stale, and any code change does); ``reuse=False`` always trains. Before anything runs, the notebook states the profile it
chose and why, each training it will run or entry it reuses (commit, date), and a time estimate
measured from earlier runs of the same profile. The statement goes to the notebook's output and
to the terminal running papermill.
"""

from __future__ import annotations

import datetime as _dt
import json
import statistics
from dataclasses import dataclass
from pathlib import Path

from .. import config as C
from .. import runs as R

# Keys that do not change a result (where things are written, how many loader processes ...).
IGNORED_KEYS = frozenset({"desc", "train.resume", "device", "data.loader_workers", "data.workers", "tracking.uri",
                          "tracking.enabled", "runs_dir", "eval.ledger_dir"})


def config_differences(a: dict, b: dict) -> list[str]:
    """Dotted keys whose values differ between two config dicts (ignoring :data:`IGNORED_KEYS`)."""
    fa = {k: v for k, v in C.flatten(a).items() if k not in IGNORED_KEYS}
    fb = {k: v for k, v in C.flatten(b).items() if k not in IGNORED_KEYS}
    return sorted(k for k in fa.keys() | fb.keys() if fa.get(k) != fb.get(k))


# Fields a ledger entry made by older code lacks: such an entry is stale and is made again.
CURRENT_FIELDS = ("val_reader", "eval_git_commit", "train_git_commit")


@dataclass
class Decision:
    name: str
    train: bool
    reason: str
    entry: dict | None = None
    steps: int = 0


def _short(commit: str | None) -> str:
    return (commit or "unknown")[:8]


def decide(name: str, cfg: C.Config, path: Path, reuse: bool, head: dict,
           fields: tuple[str, ...] = CURRENT_FIELDS) -> Decision:
    """Reuse the entry at ``path`` or train ``name`` with ``cfg``; ``head`` is runs.git_info();
    ``fields`` are those an entry of the current code has (page entries have their own)."""
    steps = C.total_steps(cfg)
    if not reuse:
        return Decision(name, True, "reuse=False", steps=steps)
    if not path.exists():
        return Decision(name, True, "no ledger entry yet", steps=steps)
    try:
        entry = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return Decision(name, True, f"the ledger entry {path} cannot be read ({exc})", steps=steps)
    diff = config_differences(entry.get("config", {}), C.to_dict(cfg))
    if diff:
        more = f" (+{len(diff) - 3} more)" if len(diff) > 3 else ""
        return Decision(name, True, f"the entry was made with other settings: {', '.join(diff[:3])}{more}",
                        steps=steps)
    lacking = [k for k in fields if k not in entry]
    if lacking:
        return Decision(name, True, f"the entry was made by older code (it lacks {', '.join(lacking)})",
                        steps=steps)
    made, when = entry.get("git_commit"), entry.get("date", "?")
    if made != head.get("commit") and R.code_changed_since(made):
        return Decision(name, True, f"the code (src, configs, notebooks) changed since the entry's commit "
                                    f"{_short(made)} ({when})", steps=steps)
    if entry.get("git_dirty") and not head.get("dirty"):
        return Decision(name, True, f"the entry was made from uncommitted changes on {_short(made)} ({when})",
                        steps=steps)
    note = ", uncommitted changes" if entry.get("git_dirty") else ""
    return Decision(name, False, f"ledger entry of commit {_short(made)}{note}, {when}", entry=entry)


def seconds_per_step(ledger_dir: Path, profile: str, folder: Path | None = None) -> tuple[float, int] | None:
    """(median seconds per generator step, entries measured) from the ledger entries of
    ``profile`` (or those in ``folder``, e.g. the page ledger): from the run folder's start time
    (its name) to the entry's date, over its steps (evaluation included). None when no entry tells."""
    rates = []
    for p in sorted((folder or ledger_dir / profile).glob("*.json")):
        try:
            e = json.loads(p.read_text(encoding="utf-8"))
            start = _dt.datetime.strptime(Path(e["run_dir"]).name[:15], "%Y%m%d-%H%M%S")
            end = _dt.datetime.fromisoformat(e["date"])
            steps = int(e.get("train", {}).get("steps") or e.get("steps") or 0)
        except (OSError, ValueError, KeyError, TypeError):
            continue
        secs = (end - start).total_seconds()
        if steps > 0 and secs > 0:
            rates.append(secs / steps)
    return (statistics.median(rates), len(rates)) if rates else None


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def plan_text(profile: str, why: str, decisions: list[Decision], ledger_dir: Path,
              timed_by: Path | None = None) -> str:
    """What the notebook is about to do, in a few lines; ``timed_by``: the folder of entries
    whose runs time the estimate (default: the profile's line ledger)."""
    lines = [f"profile: {profile} ({why})"]
    seen: set[str] = set()
    todo = []
    for d in decisions:
        if d.name in seen:
            continue
        seen.add(d.name)
        lines.append(f"  {'train ' if d.train else 'reuse '} {d.name}: {d.reason}")
        if d.train:
            todo.append(d)
    if not todo:
        lines.append("estimate: nothing to train (reuse=False trains again)")
        return "\n".join(lines)
    steps = sum(d.steps for d in todo)
    rate = seconds_per_step(ledger_dir, profile, timed_by)
    if rate is None:
        lines.append(f"estimate: {len(todo)} training(s), {steps} generator steps; no earlier {profile} run in "
                     f"{timed_by or ledger_dir / profile} to time them by")
    else:
        per, n = rate
        lines.append(f"estimate: {len(todo)} training(s), {steps} generator steps, about {_duration(per * steps)} "
                     f"(median {per:.2f} s/step over {n} earlier {profile} run(s), evaluation included; "
                     "recognizer pretraining not counted)")
    return "\n".join(lines)
