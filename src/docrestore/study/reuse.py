"""Whether a notebook reuses a recorded ledger entry or trains, and the plan it announces.

An entry is reused only when it was made with exactly the resolved config, by code that records
every field of :data:`CURRENT_FIELDS` (page entries: their own fields), on the data this checkout
has (its ``data_hash`` equals the local one: the synthesised dataset's manifest hash, or the page
files' hash), and by code that still behaves the same: its recorded fingerprint
(:mod:`docrestore.fingerprint`: losses, parameters and evaluation of a few deterministic steps of
its config on a fixed tiny batch of lines or page patches) equals the current code's within a
tolerance. A comment, a docstring or a moved function therefore keeps an entry; a changed loss
makes the arms that use it stale. For an entry judged by its fingerprint, an option the entry's
config lacks (added to the code since) and that is at the code's default here is no other
setting: the fingerprint judges whether the default keeps the old behaviour. An entry recorded
before fingerprints falls back to the older rule: stale when any code under it
(``runs.CODE_PATHS``) changed since its commit, and said so; its settings are compared strictly.
``reuse=False`` always trains. Before anything runs, the notebook
states the profile it chose and why, each training it will run or entry it reuses (commit, date,
why), and a time estimate measured from earlier runs of the same profile. The statement goes to
the notebook's output and to the terminal running papermill.
"""

from __future__ import annotations

import datetime as _dt
import json
import statistics
from dataclasses import dataclass
from pathlib import Path

from .. import config as C
from .. import runs as R
from ..evaluation import ledger as L

# Keys that do not change a result, and the settings two configs differ in (one copy, beside the
# ledger whose entries they compare).
IGNORED_KEYS = L.SETTINGS_IGNORED_KEYS
config_differences = L.config_differences


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


NO_FINGERPRINT = "no fingerprint (recorded before fingerprints)"


# The checks of each benchmark (docrestore.fingerprint is imported when one runs: it needs torch).
def line_fingerprint(cfg: C.Config) -> dict:
    from .. import fingerprint as FP

    return FP.fingerprint(cfg)


def local_data_hash(cfg: C.Config) -> str | None:
    from .. import fingerprint as FP

    return FP.local_data_hash(cfg)


def page_fingerprint(cfg: C.Config) -> dict:
    from .. import fingerprint as FP

    return FP.page_fingerprint(cfg)


def local_page_data_hash(cfg: C.Config) -> str | None:
    from .. import fingerprint as FP

    return FP.local_page_data_hash(cfg)


def decide(name: str, cfg: C.Config, path: Path, reuse: bool, head: dict,
           fields: tuple[str, ...] = CURRENT_FIELDS, behaviour=line_fingerprint,
           data_hash=local_data_hash) -> Decision:
    """Reuse the entry at ``path`` or train ``name`` with ``cfg``; ``head`` is runs.git_info();
    ``fields`` are those an entry of the current code has (page entries have their own);
    ``behaviour(cfg)`` is the current code's fingerprint (:func:`line_fingerprint`,
    :func:`page_fingerprint`) and ``data_hash(cfg)`` the local data's hash as an entry records it
    (None: not there to compare); None for either skips that check."""
    steps = C.total_steps(cfg)
    if not reuse:
        return Decision(name, True, "reuse=False", steps=steps)
    if not path.exists():
        return Decision(name, True, "no ledger entry yet", steps=steps)
    try:
        entry = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return Decision(name, True, f"the ledger entry {path} cannot be read ({exc})", steps=steps)
    recorded = entry.get("fingerprint")
    settings, now = entry.get("config", {}), C.to_dict(cfg)
    strict = config_differences(settings, now)
    # An option added since the entry, at its default, is left to the fingerprint to judge; the
    # byte rule has nothing that would see what it does, so there it stays a difference.
    by_fingerprint = recorded is not None and behaviour is not None
    diff = config_differences(settings, now, C.flat_defaults()) if by_fingerprint else strict
    if diff:
        return Decision(name, True, f"the entry was made with other settings: {settings_text(diff, settings, now)}",
                        steps=steps)
    added = [k for k in strict if k not in diff]
    added_text = (f"; new option(s) at their default, not in the entry's config: {_keys_text(added)}"
                  if added else "")
    lacking = [k for k in fields if k not in entry]
    if lacking:
        return Decision(name, True, f"the entry was made by older code (it lacks {', '.join(lacking)})",
                        steps=steps)
    made, when = entry.get("git_commit"), entry.get("date", "?")
    local = data_hash(cfg) if data_hash is not None else None
    if local and entry.get("data_hash") and entry["data_hash"] != local:
        return Decision(name, True, f"the entry was measured on other data (data_hash {entry['data_hash']}, "
                                    f"{_machine(entry)}) than the local dataset ({local})", steps=steps)
    if entry.get("git_dirty") and not head.get("dirty"):
        return Decision(name, True, f"the entry was made from uncommitted changes on {_short(made)} ({when})",
                        steps=steps)
    note = ", uncommitted changes" if entry.get("git_dirty") else ""
    if not by_fingerprint:
        # The byte rule: any change under the code paths since the entry's commit makes it stale.
        what = NO_FINGERPRINT if behaviour is not None else "no fingerprint"
        if made != head.get("commit") and R.code_changed_since(made):
            return Decision(name, True, f"{what}, and the code (src, configs, notebooks) changed since the "
                                        f"entry's commit {_short(made)} ({when})", steps=steps)
        return Decision(name, False, f"ledger entry of commit {_short(made)}{note}, {when}; {what}: the code "
                                     "is unchanged since", entry=entry)
    from .. import fingerprint as FP

    try:
        current = behaviour(cfg)
    except Exception as exc:  # noqa: BLE001 - any failure means "cannot tell": train, and say why
        return Decision(name, True, f"the current code's fingerprint cannot be computed ({type(exc).__name__}: "
                                    f"{exc})", steps=steps)
    diffs = FP.differences(recorded, current)
    if diffs:
        return Decision(name, True, f"the code behaves differently since the entry's commit {_short(made)} "
                                    f"({when}): {FP.describe(diffs)}{added_text}", steps=steps)
    return Decision(name, False, f"ledger entry of commit {_short(made)}{note}, {when}; fingerprint "
                                 f"{recorded.get('digest', '?')} unchanged{added_text}", entry=entry)


def _value(v) -> str:
    text = repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


def _keys_text(keys: list[str], limit: int = 3) -> str:
    more = f" (+{len(keys) - limit} more)" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def settings_text(diff: list[str], recorded: dict, current: dict, limit: int = 3) -> str:
    """The first ``limit`` keys of :func:`config_differences` with their values, e.g.
    ``train.pixel_weight 10.0 -> 3.0`` or, for an option the entry's config lacks,
    ``train.x (not in the entry's config; here 0.3, default 0.0)``."""
    fa, fb, defaults = C.flatten(dict(recorded)), C.flatten(dict(current)), C.flat_defaults()
    parts = []
    for k in diff[:limit]:
        if k not in fa:
            if k in defaults and fb[k] == defaults[k]:
                why = "the default, but the entry has no fingerprint to show that it behaves as before"
            else:
                why = f"default {_value(defaults[k])}" if k in defaults else "no default"
            parts.append(f"{k} (not in the entry's config; here {_value(fb[k])}, {why})")
        elif k not in fb:
            parts.append(f"{k} (no longer an option; the entry's {_value(fa[k])})")
        else:
            parts.append(f"{k} {_value(fa[k])} -> {_value(fb[k])}")
    more = f" (+{len(diff) - limit} more)" if len(diff) > limit else ""
    return "; ".join(parts) + more


def _machine(entry: dict) -> str:
    m = entry.get("machine")
    return f"made on {m.get('cpu', '?')}" if isinstance(m, dict) else "machine not recorded"


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
