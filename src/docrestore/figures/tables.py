"""The paper's LaTeX tables (booktabs), drawn from ledger entries only.

Each table is a complete ``table*`` environment that paper/main.tex \\input's. Cells are the
mean over test lines with the 95% bootstrap interval in brackets (CER and WER in percent), the
best value per column in bold, and a paired Wilcoxon p-value of the per-line CER against the ERB
baseline where both entries have per-line values on the same test set. The caption names the
profile, and a LaTeX comment above every row names the experiment, MLflow run id, commit and
run folder the row was read from, so every cell traces back to one ledger entry.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .. import config as C
from . import entries as E
from . import style as S

MAIN_METRICS = ("psnr", "ssim", "cer", "wer")
READER_METRICS = ("cer", "cer_loss_reader", "wer", "wer_loss_reader")
REFERENCE_LABELS = {"degraded": "Degraded input", "otsu": "Otsu", "sauvola": "Sauvola"}
P_METRIC = "cer"


# ------------------------------------------------------------------------------- text
_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
    "\u2014": "---", "\u2013": "--", "\u201c": "``", "\u201d": "''", "\u03bb": r"$\lambda$",
    "\u03b1": r"$\alpha$", "\u03b2": r"$\beta$", "\u2026": r"\ldots{}", "\u00b1": r"$\pm$",
    "\u2020": r"\dag{}",
}


def latex_escape(text: object) -> str:
    """Text safe inside a LaTeX table cell or caption (special characters and a few Unicode
    symbols the project's names use)."""
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))


def _comment(text: str) -> str:
    """A LaTeX comment line (newlines folded so the comment cannot leak into the table)."""
    return "% " + " ".join(str(text).split())


def entry_comment(entry: dict) -> str:
    """`% experiment=... run_id=... commit=... run_dir=... ledger=...` for one ledger entry."""
    commit = str(entry.get("git_commit") or "unknown") + ("+dirty" if entry.get("git_dirty") else "")
    return _comment(f"experiment={entry.get('experiment')} run_id={entry.get('mlflow_run_id') or 'none'} "
                    f"commit={commit} run_dir={entry.get('run_dir')} "
                    f"ledger={C.project_relative(entry.get(E.SOURCE_KEY, 'unknown'))}")


# -------------------------------------------------------------------------- statistics
def paired_values(entry: dict, base: dict, metric: str = P_METRIC) -> tuple[list, list, str]:
    """Per-line values of ``metric`` of entry and base on the same test lines.

    Lines are matched by the entries' ``line_ids`` when both record them, else by position
    (then both must come from the same test set: same data hash and number of lines).
    Returns (a, b, "") or ([], [], why they cannot be paired).
    """
    a = (entry.get("per_line") or {}).get(metric)
    b = (base.get("per_line") or {}).get(metric)
    if not a or not b:
        return [], [], f"no per-line {metric}"
    ia, ib = entry.get("line_ids"), base.get("line_ids")
    if isinstance(ia, list) and isinstance(ib, list) and len(ia) == len(a) and len(ib) == len(b):
        if entry.get("data_hash") != base.get("data_hash"):
            return [], [], "different test sets (data_hash)"
        pos = {lid: i for i, lid in enumerate(ib)}
        common = [(i, pos[lid]) for i, lid in enumerate(ia) if lid in pos]
        if not common:
            return [], [], "no test line in common"
        return [a[i] for i, _ in common], [b[j] for _, j in common], ""
    if entry.get("data_hash") != base.get("data_hash"):
        return [], [], "different test sets (data_hash)"
    if len(a) != len(b):
        return [], [], f"different number of test lines ({len(a)} vs {len(b)})"
    return list(a), list(b), ""


def seed_test(entry: dict, base: dict, metric: str = P_METRIC) -> float | None:
    """Welch's two-sided t-test of the seed means of ``metric`` (entry vs base), when both were
    run with at least two seeds: a test whose unit is the training run, so it accounts for the
    variance between seeds (which a per-line test over one run cannot see). None otherwise."""
    a = (entry.get("seed_metrics") or {}).get(metric) or []
    b = (base.get("seed_metrics") or {}).get(metric) or []
    if len(a) < 2 or len(b) < 2:
        return None
    from docrestore.evaluation.stats import welch_over_seeds

    return welch_over_seeds(a, b)["p_value"]


def p_value(entry: dict, base: dict, metric: str = P_METRIC) -> tuple[float | None, str]:
    """p-value of ``metric``, entry vs base: Welch's t-test over seeds when both ran with several
    seeds (:func:`seed_test`), else the two-sided paired Wilcoxon test per line.

    Returns (p, "") or (None, why not): "reference" for the base itself, else why the lines
    cannot be paired (see :func:`paired_values`).
    """
    if entry is base:
        return None, "reference"
    over_seeds = seed_test(entry, base, metric)
    if over_seeds is not None:
        return over_seeds, ""
    a, b, why = paired_values(entry, base, metric)
    if why:
        return None, why
    try:
        from docrestore.evaluation.stats import paired_test
    except ImportError:  # the statistics module is optional for drawing tables
        from scipy.stats import wilcoxon
        if all(x == y for x, y in zip(a, b)):
            return 1.0, ""
        return float(wilcoxon(a, b, zero_method="wilcox", alternative="two-sided").pvalue), ""
    return float(paired_test(a, b)["p_value"]), ""


def format_p(p: float | None) -> str:
    if p is None or not math.isfinite(p):
        return "--"
    return r"$<$0.001" if p < 0.001 else f"{p:.3f}"


@dataclass
class Family:
    """A family of comparisons fixed before any test value is read: each of ``arms`` against
    ``reference`` on ``metric``. Declared in the plan (:func:`declared_family`: ``declared_in``
    names the plan, ``missing`` the declared arms the ledger lacks, which still count in Holm's
    family size), or, without a plan declaration, the table's rows (chosen by name or by
    validation CER, never by test results)."""

    name: str
    reference: dict
    arms: list[dict]
    metric: str = P_METRIC
    missing: list[str] = field(default_factory=list)
    declared_in: str = ""
    chosen: dict[str, str] = field(default_factory=dict)  # experiment -> how a best_of member was chosen


def declared_family(comparison, entries: Sequence[dict]) -> Family:
    """The :class:`Family` a plan declares (a :class:`docrestore.scheduler.plan.Comparison`),
    resolved against the ledger's arms (seeds merged, by experiment name). A ``best_of`` member
    is the candidate with the lowest validation CER read by the held-out reader
    (:func:`entries.representative`); a member none of whose names is in the ledger is listed in
    ``missing``. MissingResults when the reference is not in the ledger."""
    by_name = {str(e.get("experiment")): e for e in entries}
    ref = by_name.get(comparison.reference)
    if ref is None:
        raise E.MissingResults(f"the family {comparison.name!r} declared in {comparison.plan or 'the plan'}",
                               [comparison.reference], "its reference arm is not in the ledger")
    arms, missing, chosen = [], [], {}
    for member in comparison.arms:
        if isinstance(member, str):
            if member in by_name:
                arms.append(by_name[member])
            else:
                missing.append(member)
            continue
        found = [by_name[n] for n in member.candidates if n in by_name]
        if not found:
            missing.append(str(member))
            continue
        e, how = E.representative(found)
        arms.append(e)
        chosen[str(e.get("experiment"))] = f"{how}, of {', '.join(member.candidates)}"
    return Family(comparison.name, ref, arms, comparison.metric, missing, comparison.plan or "the plan", chosen)


def family_tests(family: Family) -> dict[str, dict]:
    """Test every comparison of ``family``; {experiment: {"p", "p_holm", "test", "why", "counted"}}.

    - Arms with at least two seeds, like the reference: Welch's t-test over seed means
      (``test="welch"``), Holm-adjusted over the family (``p_holm``).
    - Single-seed arms: no seed-level test exists. They still count in the family size (as
      p = 1, :func:`docrestore.evaluation.stats.holm`), and get the paired Wilcoxon test over
      the run's test lines as a within-seed diagnostic (``test="wilcoxon-within-seed"``): it
      sees line sampling only, so it is no evidence of a method effect and is never adjusted.
    - A declared arm the ledger lacks (``family.missing``) counts in the family size, untested.
    - An arm identical to the reference or to an arm before it (same settings, or identical
      results: :func:`entries.identical_arms`) is one result: counted once, not tested
      (``test=None``, ``why`` names its twin).
    ``counted``: whether the comparison is one of the family's m in Holm's adjustment.
    """
    from docrestore.evaluation.stats import holm

    ref_name = str(family.reference.get("experiment"))
    twin_of: dict[str, str] = {}
    members = [e for e in family.arms if e is not family.reference]
    seen = [family.reference]
    for e in members:
        for c in E.identical_arms(seen + [e]):
            if str(e.get("experiment")) in c["experiments"]:
                twin_of[str(e.get("experiment"))] = next(x for x in c["experiments"] if x != str(e.get("experiment")))
        seen.append(e)
    out: dict[str, dict] = {}
    seed_p: dict[str, float | None] = {}
    for e in members:
        name = str(e.get("experiment"))
        if name in twin_of:
            out[name] = {"p": None, "p_holm": None, "test": None, "counted": False,
                         "why": f"identical to {twin_of[name]} (counted once)"}
            continue
        p = seed_test(e, family.reference, family.metric)
        if p is not None:
            seed_p[name] = p
            out[name] = {"p": p, "p_holm": None, "test": "welch", "why": "", "counted": True}
            continue
        seed_p[name] = None  # in the family, untestable over seeds
        q, why = p_value(e, family.reference, family.metric)
        out[name] = {"p": q, "p_holm": None, "test": "wilcoxon-within-seed" if q is not None else None,
                     "why": why or "one seed: within-seed diagnostic only", "counted": True}
    for name in family.missing:
        seed_p[name] = None
        out[name] = {"p": None, "p_holm": None, "test": None, "counted": True,
                     "why": f"declared in {family.declared_in or 'the plan'} but not in the ledger"}
    for name, adj in holm(seed_p).items():
        out[name]["p_holm"] = adj
    for name, how in family.chosen.items():
        if name in out:
            out[name]["chosen"] = how
    out[ref_name] = {"p": None, "p_holm": None, "test": None, "why": "reference", "counted": False}
    return out


NOT_DECLARED = {"p": None, "p_holm": None, "test": None, "counted": False,
                "why": "not in the family of comparisons declared in the plan (not tested)"}


def family_size(results: dict[str, dict]) -> int:
    """m of Holm's adjustment: the comparisons :func:`family_tests` counted."""
    return sum(1 for r in results.values() if r.get("counted"))


def table_family(table: str, base: dict, shown: Sequence[dict], entries: Sequence[dict],
                 families: dict | None) -> tuple[Family, dict[str, dict], list[dict]]:
    """(family, its test results, arms to show): the plan's family named ``table`` when the plan
    declares one (with its declared arms the table would not show added to the rows), else the
    table's own rows against ``base``."""
    comparison = (families or {}).get(table)
    if comparison is None:
        family = Family(table, base, list(shown))
        return family, family_tests(family), list(shown)
    family = declared_family(comparison, entries)
    names = {str(e.get("experiment")) for e in shown}
    extra = [e for e in family.arms if str(e.get("experiment")) not in names]
    return family, family_tests(family), list(shown) + extra


def family_note(family: Family, results: dict[str, dict]) -> str:
    """The caption's words for the p column: the test, the family Holm ran over (declared in the
    plan, or the table's rows), the within-seed diagnostic and twin marks."""
    m = family_size(results)
    where = (f"declared in the plan {latex_escape(family.declared_in)} before the runs"
             + (f"; {len(family.missing)} declared arm{'s' if len(family.missing) != 1 else ''} not in the "
                f"ledger count{'' if len(family.missing) != 1 else 's'} as untested" if family.missing else "")
             if family.declared_in else "in this table (no family declared in the plan: the table's rows)")
    what = latex_escape(E.metric_label(family.metric).split(' (')[0])
    text = (f" $p$: two-sided test of {what} against "
            f"{latex_escape(E.display_name(family.reference))}. "
            f"$^{{t}}$: Welch's $t$-test over the seed means, Holm-adjusted over the family of the "
            f"{m} comparison{'s' if m != 1 else ''} {where} (an arm with one seed counts in the family "
            "as untested). $^{w}$: an arm with one seed, "
            f"paired Wilcoxon signed-rank test of per-line {what} within that one run: a diagnostic "
            "of line sampling, not evidence of a method effect, not adjusted. $\\equiv$: "
            "identical to another arm, counted once.")
    if family.declared_in:
        text += " --: not in the declared family, not tested."
    return text


def p_cell(result: dict | None) -> str:
    """The p column's cell for one :func:`family_tests` result: the Holm-adjusted p over seeds
    (marked $^{t}$), a within-seed diagnostic (marked $^{w}$), (ref.), or =twin for an arm
    counted once."""
    if result is None:
        return "--"
    if result["why"] == "reference":
        return "(ref.)"
    if result["test"] == "welch":
        return format_p(result["p_holm"]) + r"$^{t}$"
    if result["test"] == "wilcoxon-within-seed":
        return format_p(result["p"]) + r"$^{w}$"
    if result["why"].startswith("identical to"):
        return r"$\equiv$"
    return "--"


# ---------------------------------------------------------------------------- builder
@dataclass
class Row:
    """One table row: a label, metric stats {metric: (mean, lo, hi, n)}, extra text cells before
    the metrics, the p-value cell and the traceability comment."""

    label: str
    stats: dict[str, tuple | None]
    comment: str
    extra: list[str] = field(default_factory=list)
    p: str = ""
    rule_after: bool = False
    interval: str | None = None  # "pm" for a row averaged over seeds (mean +- sd over seeds)
    ranked: bool = True  # False: never bold (the clean-line upper bound is no method)


def _best(rows: Sequence[Row], metric: str) -> float | None:
    vals = [round(r.stats[metric][0], E.metric_decimals(metric)) for r in rows
            if r.stats.get(metric) is not None and r.ranked]
    if not vals:
        return None
    return max(vals) if E.higher_is_better(metric) else min(vals)


def _cell(stats: tuple | None, metric: str, bold: bool, interval: str) -> str:
    if stats is None:
        return "--"
    mean, lo, hi, _ = stats
    d = E.metric_decimals(metric)
    m = f"{mean:.{d}f}"
    m = rf"\textbf{{{m}}}" if bold else m
    if interval == "pm":
        return rf"{m} $\pm$ {max(hi - mean, mean - lo):.{d}f}"
    return rf"{m} {{\scriptsize[{lo:.{d}f}, {hi:.{d}f}]}}"


def render_table(rows: Sequence[Row], metrics: Sequence[str], caption: str, label: str,
                 extra_headers: Sequence[str] = (), with_p: bool = True, bold_best: bool = True,
                 interval: str = "brackets", header_comment: str = "",
                 first_header: str = "Method") -> str:
    """A booktabs ``table*`` with one comment line above each row."""
    best = {m: _best(rows, m) for m in metrics} if bold_best else {}
    cols = "l" + "l" * len(extra_headers) + "r" * len(metrics) + ("r" if with_p else "")
    heads = [first_header, *extra_headers, *(latex_escape(E.metric_label(m)) for m in metrics)]
    if with_p:
        heads.append(r"$p$ (CER)")
    arrows = {m: (r"$\uparrow$" if E.higher_is_better(m) else r"$\downarrow$") for m in metrics}
    heads = [h + (" " + arrows[m] if m in arrows else "") for h, m in
             zip(heads, [None] * (1 + len(extra_headers)) + list(metrics) + [None] * with_p)]
    out = [
        "% Generated by docrestore.figures.tables from the results ledger; do not edit by hand.",
    ]
    if header_comment:
        out.append(_comment(header_comment))
    out += [
        r"\begin{table*}[t]",
        r"\centering",
        r"\footnotesize",
        rf"\caption{{{caption}}}",
        rf"\label{{{label}}}",
        # never wider than the page: shrunk to the text width when its natural width exceeds it
        r"\resizebox{\ifdim\width>\linewidth\linewidth\else\width\fi}{!}{%",
        rf"\begin{{tabular}}{{@{{}}{cols}@{{}}}}",
        r"\toprule",
        " & ".join(heads) + r" \\",
        r"\midrule",
    ]
    for r in rows:
        cells = [latex_escape(r.label), *r.extra]
        for m in metrics:
            s = r.stats.get(m)
            bold = (bold_best and r.ranked and s is not None and best.get(m) is not None
                    and round(s[0], E.metric_decimals(m)) == best[m])
            cells.append(_cell(s, m, bold, r.interval or interval))
        if with_p:
            cells.append(r.p or "--")
        out.append(r.comment)
        out.append(" & ".join(cells) + r" \\")
        if r.rule_after:
            out.append(r"\midrule")
    out += [r"\bottomrule", r"\end{tabular}}", r"\end{table*}", ""]
    return "\n".join(out)


def _entry_row(entry: dict, metrics: Sequence[str], base: dict | None, label: str | None = None,
               extra: Sequence[str] = (), tested: dict | None = None) -> Row:
    """A table row of one entry; ``tested`` is its :func:`family_tests` result (without it the
    entry is tested against ``base`` on its own, unadjusted: a family of one)."""
    if tested is None and base is not None:
        tested = family_tests(Family("single", base, [entry]))[str(entry.get("experiment"))]
    why = (tested or {}).get("why", "no baseline")
    k = E.n_seeds(entry)
    comment = entry_comment(entry) + (f" p: {why}" if why else "")
    if tested and tested.get("test"):
        comment += f" test={tested['test']} p_raw={tested['p']}"
    if k > 1:
        comment += f" seeds={entry.get('seeds')} entries={','.join(entry.get('seed_entries') or [])}"
    name = (label or E.display_name(entry)) + (f" ({k} seeds)" if k > 1 else "")
    return Row(label=name + ("\u2020" if entry.get("git_dirty") else ""),
               stats={m: E.metric(entry.get("metrics"), m) for m in metrics},
               comment=comment, extra=list(extra), p=p_cell(tested),
               interval="pm" if k > 1 else None)


def _tested_rows(family: Family, labels: dict[str, str] | None = None,
                 extras: dict[str, Sequence[str]] | None = None, metrics: Sequence[str] = (),
                 results: dict[str, dict] | None = None, shown: Sequence[dict] | None = None) -> list[Row]:
    """Rows of the reference and every arm of ``shown`` (default: the family's arms), tested
    together (Holm over the family; ``results`` its :func:`family_tests`, computed when not
    given). A shown arm outside the family is marked as not tested."""
    results = family_tests(family) if results is None else results
    arms = family.arms if shown is None else shown
    rows = []
    for e in [family.reference] + [a for a in arms if a is not family.reference]:
        name = str(e.get("experiment"))
        rows.append(_entry_row(e, metrics or MAIN_METRICS, family.reference, label=(labels or {}).get(name),
                               extra=(extras or {}).get(name, ()), tested=results.get(name, NOT_DECLARED)))
        if results.get(name, {}).get("chosen"):
            rows[-1].comment += f" chosen: {results[name]['chosen']}"
    return rows


def _n_lines(entries: Sequence[dict]) -> str:
    ns = sorted({s[3] for e in entries for s in [E.metric(e.get("metrics"), "cer")] if s and s[3]})
    return "/".join(map(str, ns)) if ns else "?"


def _caption(title: str, entries: Sequence[dict], base: dict | None, with_p: bool = True,
             extra: str = "", tested: tuple[Family, dict] | None = None) -> str:
    """The table's caption; ``tested`` is the (family, results) its p column shows (default: the
    table's entries but ``base`` against ``base``)."""
    profile = S.profile_label(e.get("profile", "unknown") for e in entries)
    hashes = sorted({str(e.get("data_hash"))[:8] for e in entries})
    synthetic = all(not E.cfg_get(e, "data.manifest") and E.cfg_get(e, "data.source", "synthetic") == "synthetic"
                    for e in entries)
    real_pairs = all(E.cfg_get(e, "data.source") == "real" for e in entries)
    kind = ("synthetic " if synthetic else "real-hand (clean: background-flattened real line; degraded: "
            "our damage model) " if real_pairs else "")
    seeds = sorted({E.n_seeds(e) for e in entries})
    text = (f"{title} Mean over {_n_lines(entries)} {kind}test lines "
            "with the 95\\% bootstrap "
            "interval in brackets; CER and WER in percent, read by a held-out reader that no loss "
            "was trained against. Best value per column in bold.")
    if max(seeds, default=1) > 1:
        text += (" Rows marked ($k$ seeds) are the mean over $k$ training seeds $\\pm$ the half-width of "
                 "the 95\\% Student-$t$ interval over seeds: it covers the arm's mean over training "
                 "runs on these test lines (training variance), not line sampling.")
    if with_p and base is not None:
        if tested is None:
            family = Family("table", base, [e for e in entries if e is not base])
            tested = (family, family_tests(family))
        text += family_note(*tested)
    same = E.identical_note(entries)  # names the arms of E.identical_arms(entries)
    if same:
        text += " " + latex_escape(same)
    if any(e.get("git_dirty") for e in entries):
        text += " \\dag: trained or evaluated from a tree with uncommitted changes."
    if extra:
        text += " " + extra
    text += (f" Test set (data hash): {latex_escape(', '.join(hashes))}."
             f" Profile: {latex_escape(profile)}.")
    return text


def _references(entries: Sequence[dict], prefer: dict | None) -> tuple[dict, dict]:
    """(references mapping, entry it was read from): the preferred entry's, else the first."""
    for e in ([prefer] if prefer else []) + list(entries):
        if e and e.get("references"):
            return e["references"], e
    raise E.MissingResults("the main comparison table", [E.BASELINE],
                           "no entry records the reference methods (degraded / Otsu / Sauvola)")


def _baseline_or_none(entries: Sequence[dict]) -> dict | None:
    try:
        return E.baseline_entry(entries)
    except E.MissingResults:
        return None


# ----------------------------------------------------------------------------- tables
def main_table(entries: Sequence[dict], families: dict | None = None) -> str:
    """References (degraded input, Otsu, Sauvola), the baseline(s) and one arm per method group."""
    base = E.baseline_entry(entries)
    refs, ref_entry = _references(entries, base)
    chosen = E.headline_entries(entries)
    family, results, shown = table_family("main_comparison", base, [e for e, _ in chosen], entries, families)
    metrics = MAIN_METRICS + reader2_metrics(shown, ("cer_reader2",))
    rows = []
    for key, label in REFERENCE_LABELS.items():
        if key in refs:
            rows.append(Row(label=label, stats={m: E.metric(refs[key], m) for m in metrics},
                            comment=_comment(f"reference={key} (computed once per test set) from "
                                             + entry_comment(entry=ref_entry)[2:]), p="--"))
    clean = ref_entry.get("reader_clean") or base.get("reader_clean")
    if clean:
        clean2 = {f"{m}_reader2": v for m, v in (ref_entry.get("reader2_clean") or {}).items()}
        rows.insert(0, Row(label="Clean line (upper bound)",
                           stats={m: E.metric({**clean, **clean2}, m) for m in metrics},
                           comment=_comment("the held-out reader on the clean test lines, from "
                                            + entry_comment(ref_entry)[2:]), p="--", ranked=False))
    if rows:
        rows[-1].rule_after = True
    how = {str(e.get("experiment")): h for e, h in chosen}
    for e in shown:
        name = str(e.get("experiment"))
        rows.append(_entry_row(e, metrics, family.reference, tested=results.get(name, NOT_DECLARED)))
        rows[-1].comment += f" chosen: {how.get(name) or results.get(name, {}).get('chosen') or 'declared in the plan'}"
    hands = hand_rows([e for e, _ in chosen])
    if hands:
        rows[-1].rule_after = True
        rows += hands
    title = ("Restoration quality and readability on the test set: the clean line (what the "
             "reader reads at best), reference methods, the ERB baseline re-implementation and our "
             f"methods (one arm per method group, {E.SELECTION}; all arms are in the ablation tables).")
    if hands:
        title += (" Below the rule, the same arms on the test lines in hands (fonts) that training also "
                  "used (seen hands) and in held-out hands it never saw (unseen hands).")
    cap = _caption(title, shown, family.reference, tested=(family, results), extra=reader2_note(shown, metrics))
    return render_table(rows, metrics, cap,
                        "tab:main", header_comment="main comparison")


def reader2_metrics(entries: Sequence[dict], wanted: Sequence[str]) -> tuple[str, ...]:
    """``wanted`` (second-reader columns) when any of ``entries`` records them, else ()."""
    return tuple(m for m in wanted if any(E.metric(e.get("metrics"), m) for e in entries))


def reader2_note(entries: Sequence[dict], metrics: Sequence[str]) -> str:
    """The caption's sentence on the second held-out reader's columns (empty without them)."""
    if not any(m.endswith("_reader2") for m in metrics):
        return ""
    archs = sorted({str((e.get("reader2") or {}).get("arch", "?")) for e in entries if e.get("reader2")})
    missing = [E.display_name(e) for e in entries if E.metric(e.get("metrics"), "cer_reader2") is None]
    text = (f"Second reader: a held-out reader of another architecture ({latex_escape(', '.join(archs) or '?')}), "
            "trained on the same clean lines with another seed, read the same restored lines.")
    if missing:
        text += f" Not read by it (--): {latex_escape(', '.join(missing))}."
    return text


def hand_rows(chosen: Sequence[dict]) -> list[Row]:
    """"seen hands" / "unseen hands" rows of each entry whose test set has held-out fonts
    (``line_hands`` in the ledger), summarised from its per-line values like the whole set."""
    from docrestore.evaluation.stats import summarize

    rows = []
    for e in chosen:
        hands = e.get("line_hands") or []
        if "unseen" not in hands or "seen" not in hands:
            continue
        boot = int(E.cfg_get(e, "eval.bootstrap", 1000) or 1000)
        for hand in ("seen", "unseen"):
            idx = [i for i, h in enumerate(hands) if h == hand]
            summaries = {}
            for m in MAIN_METRICS:
                vals = (e.get("per_line") or {}).get(m) or []
                if len(vals) == len(hands):
                    summaries[m] = summarize([vals[i] for i in idx], n_resamples=boot, seed=int(e.get("seed") or 0))
            # a seeded arm's per-line values are each line's mean over its seeds: say so in the row
            seeds = f", lines averaged over {E.n_seeds(e)} seeds" if E.n_seeds(e) > 1 else ""
            rows.append(Row(label=f"{E.display_name(e)}, {hand} hands{seeds}",
                            stats={m: E.metric(summaries, m) for m in MAIN_METRICS},
                            comment=entry_comment(e) + f" {hand} hands: {len(idx)} test lines{seeds}", p="--",
                            ranked=False))
    return rows


def reader_table(entries: Sequence[dict], families: dict | None = None) -> str:
    """CER/WER by the held-out reader next to those by the loss recognizer: a method that only
    fools the recognizer it was trained against shows a gap here."""
    chosen = [e for e, _ in E.headline_entries(entries)] + E.by_group(entries).get(E.READER, [])
    if not chosen:
        raise E.MissingResults("the reader check table", [E.BASELINE])
    base = _baseline_or_none(entries)
    metrics = READER_METRICS + reader2_metrics(chosen, ("cer_reader2", "wer_reader2"))
    rows = [_entry_row(e, metrics, base) for e in chosen]
    title = ("Held-out reader against the loss recognizer: CER and WER of the restored test lines "
             "read by the held-out reader and by the recognizer the losses were computed with.")
    cap = _caption(title, chosen, base, with_p=False, extra=reader2_note(chosen, metrics))
    return render_table(rows, metrics, cap, "tab:reader", with_p=False,
                        header_comment="reader check")


def _ablation(entries: Sequence[dict], group, what: str, title: str,
              label: str, extra_headers: Sequence[str], extra_fn, sort_key=None,
              families: dict | None = None, table: str = "") -> str:
    """A table of one group's arms (``group`` a name, or a function entries -> arms), the
    baseline first as the reference of the p-values; tested as the plan's family named ``table``
    declares, else as a family of the table's rows."""
    arms = group(entries) if callable(group) else E.require_group(entries, group, what)
    if sort_key is not None:
        arms.sort(key=sort_key)
    base = _baseline_or_none(entries)
    if base is not None:
        family, results, arms = table_family(table, base, arms, entries, families)
        base = family.reference
    extras = {str(e.get("experiment")): [latex_escape(x) for x in extra_fn(e)] for e in arms}
    if base is not None:
        extras[str(base.get("experiment"))] = ["--"] * len(extra_headers)
        rows = _tested_rows(family, extras=extras, results=results, shown=arms)
        rows[0].rule_after = True
    else:
        rows = [_entry_row(e, MAIN_METRICS, None, extra=extras[str(e.get("experiment"))]) for e in arms]
    shown = arms + ([base] if base is not None else [])
    return render_table(rows, MAIN_METRICS, _caption(title, shown, base, tested=(family, results) if base else None),
                        label, extra_headers, header_comment=what)


def _num(x) -> str:
    return f"{x:g}" if isinstance(x, (int, float)) and not isinstance(x, bool) else str(x)


def annealing_table(entries: Sequence[dict], families: dict | None = None) -> str:
    """The CTC-annealing arms: schedule, target weight, warm-up and ramp steps."""
    return _ablation(
        entries, E.ANNEALING, "the CTC-annealing table",
        "CTC annealing: how the CTC weight $\\lambda$ moves from 0 to its target (warm-up and ramp "
        "in generator steps). The baseline uses a constant weight from the first step.",
        "tab:ablation-annealing", ["Schedule", r"$\lambda$", "Warm-up", "Ramp"],
        lambda e: [E.cfg_get(e, "train.ctc.schedule", "?"), _num(E.cfg_get(e, "train.ctc.weight", "?")),
                   _num(E.cfg_get(e, "train.ctc.warmup", "?")), _num(E.cfg_get(e, "train.ctc.ramp", "?"))],
        families=families, table="ablation_annealing")


def feature_weight_table(entries: Sequence[dict], families: dict | None = None) -> str:
    """The recognition feature-loss weight sweep."""
    return _ablation(
        entries, E.FEATURE_WEIGHT, "the feature-loss weight table",
        "Recognition feature loss: weight sweep (distance between unit-normalised recognizer "
        "features of the restored and the clean line).",
        "tab:ablation-feature-weight", ["Weight", "Taps"],
        lambda e: [_num(E.cfg_get(e, "train.feature_loss.weight", "?")),
                   "+".join(map(str, E.cfg_get(e, "train.feature_loss.taps", []) or [])) or "?"],
        sort_key=lambda e: float(E.cfg_get(e, "train.feature_loss.weight", 0.0) or 0.0),
        families=families, table="ablation_feature_weight")


def feature_tap_table(entries: Sequence[dict], families: dict | None = None) -> str:
    """Which recognizer taps the feature loss compares."""
    return _ablation(
        entries, E.tap_arms, "the feature-loss tap table",
        "Recognition feature loss: which recognizer layers (taps) are compared, at one weight "
        "(the weight-sweep arm at that weight is included for its tap).",
        "tab:ablation-feature-tap", ["Taps", "Weight"],
        lambda e: ["+".join(map(str, E.cfg_get(e, "train.feature_loss.taps", []) or [])) or "?",
                   _num(E.cfg_get(e, "train.feature_loss.weight", "?"))],
        families=families, table="ablation_feature_tap")


def dual_modal_table(entries: Sequence[dict], families: dict | None = None) -> str:
    """The dual-modal discriminator variants: what the text branch reads and the branch weights."""
    return _ablation(
        entries, E.DUAL_MODAL, "the dual-modal discriminator table",
        "Dual-modal discriminator: an image branch and a text branch that reads the frozen "
        "recognizer's view of the candidate line; text input and branch weights per variant.",
        "tab:ablation-dual-modal", ["Text input", "Image w.", "Text w."],
        lambda e: [E.cfg_get(e, "discriminator.text_input", "?"),
                   _num(E.cfg_get(e, "discriminator.image_weight", "?")),
                   _num(E.cfg_get(e, "discriminator.text_weight", "?"))],
        families=families, table="ablation_dual_modal")


def ablation_table(entries: Sequence[dict], families: dict | None = None) -> str:
    """The ablation summary behind the ablation bar chart: baseline, then one arm per component."""
    arms = E.ablation_arms(entries)
    base = arms[0][1]
    family, results, shown = table_family("ablation_summary", base, [e for _, e, _ in arms[1:]], entries, families)
    labels = {str(e.get("experiment")): lab for lab, e, _ in arms}
    how = {str(e.get("experiment")): h for _, e, h in arms}
    rows = _tested_rows(family, labels=labels, results=results, shown=shown,
                        extras={str(e.get("experiment")): [latex_escape(e.get("method") or e.get("experiment"))]
                                for e in [family.reference] + shown})
    for r, e in zip(rows, [family.reference] + [a for a in shown if a is not family.reference]):
        r.comment += f" chosen: {how.get(str(e.get('experiment')), 'declared in the plan')}"
    title = ("Ablation: the ERB baseline and each component on its own and combined (one arm per "
             f"component, {E.SELECTION}).")
    return render_table(rows, MAIN_METRICS, _caption(title, [family.reference] + shown, family.reference,
                                                     tested=(family, results)),
                        "tab:ablation", ["Method"], header_comment="ablation summary", first_header="Arm")


def family_table(entries: Sequence[dict], comparison) -> str:
    """A table of a declared family that no paper table is named after (e.g. the CTC study's):
    its reference and arms, tested as declared (Holm over the family)."""
    family = declared_family(comparison, entries)
    results = family_tests(family)
    rows = _tested_rows(family, results=results)
    rows[0].rule_after = True
    title = (f"The family of comparisons {latex_escape(comparison.name)} declared in the plan "
             f"{latex_escape(family.declared_in)}: each arm against {latex_escape(E.display_name(family.reference))}.")
    shown = [family.reference] + family.arms
    return render_table(rows, MAIN_METRICS, _caption(title, shown, family.reference, tested=(family, results)),
                        f"tab:family-{comparison.name}", header_comment=f"declared family {comparison.name}")


TABLES = {
    "main_comparison": main_table,
    "reader_check": reader_table,
    "ablation_summary": ablation_table,
    "ablation_annealing": annealing_table,
    "ablation_feature_weight": feature_weight_table,
    "ablation_feature_tap": feature_tap_table,
    "ablation_dual_modal": dual_modal_table,
}
"""Every paper table: file stem -> function (entries, families=None) -> LaTeX text; ``families``
are the plan's declared comparisons (:attr:`docrestore.scheduler.plan.Plan.comparisons`), each
table testing the family named as its file stem when there is one."""


def write_table(text: str, tables_dir: str | Path, name: str) -> Path:
    """Write ``<name>.tex`` to tables_dir; returns the path."""
    out = Path(tables_dir)
    out.mkdir(parents=True, exist_ok=True)
    p = out / f"{name}.tex"
    p.write_text(text, encoding="utf-8")
    return p


# ------------------------------------------------------------------------------ macros
MACRO_METRICS = ("psnr", "ssim", "cer", "wer", "cer_loss_reader", "cer_reader2", "wer_reader2")


def _def(name: str, value: str) -> str:
    return rf"\expandafter\def\csname res@{name}\endcsname{{{value}}}"


def _fmt(metric: str, value: float) -> str:
    return f"{value:.{E.metric_decimals(metric)}f}"


def ctc_macros(entry: dict) -> dict[str, str]:
    """The CTC term of one run as the paper quotes it: target weight, clip and clip mode (an entry
    from before ``train.ctc.clip_mode`` existed was clamped), the step its CTC gradient first
    reached the generator and the share of steps without one (``train.ctc`` of the entry, recorded
    every step), the steps a clamping clip held the CTC (``ctc-clamped``), the median raw CTC,
    whether validation CER plateaued; ``ctc-onset-logged``: the
    first logged step with a nonzero CTC gradient norm (every ``train.grad_norms_every`` steps)."""
    out: dict[str, str] = {}
    w = E.cfg_get(entry, "train.ctc.weight")
    if isinstance(w, (int, float)):
        out["ctc-weight"] = f"{w:g}"
    clip = E.cfg_get(entry, "train.ctc.clip")
    if isinstance(clip, (int, float)):
        out["ctc-clip"] = f"{clip:g}"
        out["ctc-clip-mode"] = str(E.cfg_get(entry, "train.ctc.clip_mode", "clamp"))
    rec = (entry.get("train") or {}).get("ctc") or {}
    if rec.get("steps"):
        out["ctc-onset"] = str(rec["onset_step"]) if rec.get("onset_step") is not None else "none"
        out["ctc-zero-grad"] = f"{100 * rec['zero_grad_share']:.1f}"
        if rec.get("clamped_steps") is not None:  # steps whose CTC sat above a clamping clip
            out["ctc-clamped"] = str(int(rec["clamped_steps"]))
        if (rec.get("raw") or {}).get("p50") is not None:
            out["ctc-raw-p50"] = f"{rec['raw']['p50']:.0f}"
    logged = [h["step"] for h in entry.get("history") or []
              if isinstance(h.get("train/gradnorm_ctc"), (int, float)) and h["train/gradnorm_ctc"] > 0]
    if any("train/gradnorm_ctc" in h for h in entry.get("history") or []):
        out["ctc-onset-logged"] = str(int(min(logged))) if logged else "none"
    plateau = (entry.get("train") or {}).get("plateau") or {}
    if "reached" in plateau:
        out["plateau"] = "yes" if plateau["reached"] else "no"
    return out


def method_constants(entry: dict) -> dict[str, str]:
    """The method's constants as one run used them (its config in the ledger), for the paper's
    method section: the pixel-loss weight beta and the U-Net's encoder filters (ERB's
    64-128-256-256-512 times ``generator.width``)."""
    out: dict[str, str] = {}
    beta = E.cfg_get(entry, "train.pixel_weight")
    if isinstance(beta, (int, float)):
        out["pixel-weight"] = f"{beta:g}"
    width = E.cfg_get(entry, "generator.width")
    if E.cfg_get(entry, "generator.name", "unet") == "unet" and isinstance(width, (int, float)):
        from docrestore.models.generator import ERB_FILTERS, scaled_channels

        out["generator-filters"] = "--".join(str(scaled_channels(f, width)) for f in ERB_FILTERS)
    return out


def macros(entries: Sequence[dict], families: dict | None = None) -> str:
    """Every number the paper's text quotes, as LaTeX macros read from the ledger:
    ``\\res{<experiment>}{<key>}`` (e.g. ``\\res{baseline_s1}{psnr}``, ``\\res{baseline_s1}{cer-sd}``,
    ``\\res{notes_switch}{ctc-raw-max}``, ``\\res{ref-degraded}{psnr}``, ``\\res{clean}{cer}``,
    ``\\res{main}{experiment}``). main.tex prints a bold ?? for a key the ledger lacks, never a
    number typed by hand. Seeded arms give the mean over seeds; ``<metric>-sd`` their sd."""
    lines = ["% Generated by docrestore.figures.tables.macros from the results ledger; do not edit by hand.",
             "% Use \\res{experiment}{key}; see docs/paper.md."]
    base = _baseline_or_none(entries)
    # p-values as the main table tests them (the plan's declared family, else the table's rows;
    # Holm over it); an arm outside it is tested against the baseline on its own
    main_tests: dict[str, dict] = {}
    if base:
        try:
            _, main_tests, _ = table_family("main_comparison", base, [x for x, _ in E.headline_entries(entries)],
                                            entries, families)
        except E.MissingResults:  # the declared reference is not in the ledger: no p macros
            main_tests = {}
    for fam in (families or {}).values() if base and main_tests else []:
        try:  # an arm of another declared family: as that family tests it
            got = family_tests(declared_family(fam, entries))
        except E.MissingResults:
            continue
        for name, r in got.items():
            main_tests.setdefault(name, r)
    for e in entries if base and main_tests else []:
        if str(e.get("experiment")) not in main_tests:
            main_tests[str(e.get("experiment"))] = family_tests(Family("single", base, [e]))[str(e.get("experiment"))]
    for e in sorted(entries, key=lambda e: str(e.get("experiment"))):
        name = str(e.get("experiment"))
        lines.append(entry_comment(e))
        for m in MACRO_METRICS:
            s = E.metric(e.get("metrics"), m)
            if s is None:
                continue
            lines.append(_def(f"{name}@{m}", _fmt(m, s[0])))
            sd = (e.get("metrics") or {}).get(m, {}).get("sd")
            if sd is not None:
                lines.append(_def(f"{name}@{m}-sd", _fmt(m, sd * E.metric_scale(m))))
        lines.append(_def(f"{name}@seeds", str(E.n_seeds(e))))
        vc = E.validation_cer(e)
        if vc is not None:
            lines.append(_def(f"{name}@val-cer", _fmt("cer", vc * E.metric_scale("cer"))))
        tested = main_tests.get(name)
        if tested and tested["p"] is not None:
            lines.append(_def(f"{name}@p", format_p(tested["p"])))
            lines.append(_def(f"{name}@p-test", tested["test"]))
            if tested["p_holm"] is not None:
                lines.append(_def(f"{name}@p-holm", format_p(tested["p_holm"])))
        raw = [float(h[k]) for h in e.get("history") or [] for k in ("train/ctc_raw", "train/ctc_raw_peak")
               if isinstance(h.get(k), (int, float))]
        if raw:
            lines.append(_def(f"{name}@ctc-raw-max", f"{max(raw):.0f}"))
        clips = (e.get("train") or {}).get("ctc_clips")
        if clips is not None:
            lines.append(_def(f"{name}@ctc-clips", str(int(clips))))
        lines += [_def(f"{name}@{k}", v) for k, v in ctc_macros(e).items()]
        fw = E.cfg_get(e, "train.feature_loss.weight")
        if isinstance(fw, (int, float)) and fw > 0:
            lines.append(_def(f"{name}@feature-weight", f"{fw:g}"))
        lines += [_def(f"{name}@{k}", v) for k, v in method_constants(e).items()]
    try:
        refs, ref_entry = _references(entries, base)
    except E.MissingResults:
        refs, ref_entry = {}, {}
    for key, stats in refs.items():
        for m in MACRO_METRICS:
            s = E.metric(stats, m)
            if s is not None:
                lines.append(_def(f"ref-{key}@{m}", _fmt(m, s[0])))
    clean = (ref_entry or {}).get("reader_clean") or {}
    for m in ("cer", "wer"):
        s = E.metric(clean, m)
        if s is not None:
            lines.append(_def(f"clean@{m}", _fmt(m, s[0])))
    if entries:
        lines.append(_def("all@lines", _n_lines(entries)))
        lines.append(_def("all@profile", latex_escape(S.profile_label(e.get("profile", "?") for e in entries))))
        lines.append(_def("all@arms", str(len(entries))))
        lines.append(_def("all@runs", str(sum(E.n_seeds(e) for e in entries))))
        nonfinite = [(e.get("train") or {}).get("nonfinite") for e in entries]
        if all(isinstance(n, int) for n in nonfinite):
            lines.append(_def("all@nonfinite", str(sum(nonfinite))))
        for key, dotted in (("ssim-sigma", "eval.ssim_sigma"), ("ssim-window", "eval.ssim_window")):
            vals = sorted({f"{v:g}" for e in entries for v in [E.cfg_get(e, dotted)] if isinstance(v, (int, float))})
            if vals:
                lines.append(_def(f"all@{key}", "/".join(vals)))
        from docrestore.evaluation.stats import CONFIDENCE

        lines.append(_def("all@confidence", f"{100 * CONFIDENCE:g}"))
        twins = E.identical_arms(entries)
        lines.append(_def("all@distinct", str(len(entries) - sum(len(c["experiments"]) - 1 for c in twins))))
        lines.append(_def("all@identical", str(len(twins))))
    try:
        main = E.main_method(entries)
        lines.append(_def("main@experiment", latex_escape(E.display_name(main))))
        lines.append(_def("main@name", str(main.get("experiment"))))
    except E.MissingResults:
        pass
    return "\n".join(lines) + "\n"
