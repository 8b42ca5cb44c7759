"""Restoration on lines nobody degraded: the paired bootstrap over lines and seeds, the verdict in
words, and the per-set table made from real-lines entries of each arm and seed."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from archive_fixture import ingest_archive, tiny_checkpoints
from docrestore.data import manifest as MF
from docrestore.evaluation import natural as N
from docrestore.evaluation import stats as S


def test_paired_bootstrap_over_lines_and_seeds_brackets_a_known_change():
    rng = np.random.default_rng(0)
    before = np.tile(rng.uniform(0.2, 0.8, 200), (3, 1))  # the reader on the scanned line: same every seed
    after = before - 0.1 + rng.normal(0, 0.02, (3, 200))
    st = S.paired_bootstrap_lines_seeds(before, after, n_resamples=300, seed=1)
    assert st["lines"] == 200 and st["seeds"] == 3
    assert st["delta"] == pytest.approx(-0.1, abs=0.01)
    assert st["lo"] < st["delta"] < st["hi"] < 0
    assert N.verdict(st["lo"], st["hi"]) == "helps"
    # one seed far off widens the interval: the seeds are resampled, not only the lines
    wild = after.copy()
    wild[2] += 0.3
    st2 = S.paired_bootstrap_lines_seeds(before, wild, n_resamples=300, seed=1)
    assert st2["hi"] - st2["lo"] > 5 * (st["hi"] - st["lo"])


def test_verdict_and_shape_errors():
    assert N.verdict(0.01, 0.05) == "hurts" and N.verdict(-0.02, 0.01) == "neutral"
    same = np.full((2, 5), 0.4)
    st = S.paired_bootstrap_lines_seeds(same, same, n_resamples=50)
    assert st["delta"] == st["lo"] == st["hi"] == 0.0 and N.verdict(st["lo"], st["hi"]) == "neutral"
    with pytest.raises(ValueError, match="same shape"):
        S.paired_bootstrap_lines_seeds(np.zeros((2, 5)), np.zeros((3, 5)))


def test_arm_checkpoints_pick_the_main_arms_by_seed(tmp_path):
    entries = [{"experiment": "baseline_s1", "train": {"best": str(tmp_path / "a.pt")}},
               {"experiment": "baseline_s1_seed2", "train": {"best": str(tmp_path / "b.pt")}},
               {"experiment": "baseline_s2", "train": {"best": str(tmp_path / "c.pt")}},
               {"experiment": "baseline_s1_ramp", "train": {"best": str(tmp_path / "d.pt")}}]
    got = N.arm_checkpoints(entries)
    assert list(got) == ["baseline_s1"]
    assert [(r["seed"], r["experiment"]) for r in got["baseline_s1"]] == [(0, "baseline_s1"), (2, "baseline_s1_seed2")]


@pytest.fixture
def archive(tmp_path, monkeypatch):
    monkeypatch.setattr(logging.getLogger("docrestore"), "handlers", [])
    manifest = ingest_archive(tmp_path / "archive")
    # two sets, as the shared HTR sets are: folio1's lines in one, folio2's in the other
    records = MF.read_manifest(manifest)
    for r in records:
        r["set"] = "set-a" if r["page"].startswith("folio1") else "set-b"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    gen, reader = tiny_checkpoints(tmp_path / "models")
    return {"manifest": manifest, "gen": gen, "reader": reader,
            "overrides": [f"eval.ledger_dir={tmp_path / 'ledger'}", f"runs_dir={tmp_path / 'runs'}",
                          "tracking.enabled=false", "device=cpu", "eval.bootstrap=20"]}


def test_each_arm_and_seed_is_read_before_and_after_and_tabled_per_set(archive):
    ckpts = {"baseline_s1": [{"seed": 0, "experiment": "baseline_s1", "checkpoint": str(archive["gen"])},
                             {"seed": 1, "experiment": "baseline_s1_seed1", "checkpoint": str(archive["gen"])}]}
    results = N.evaluate_arms(ckpts, str(archive["manifest"]), str(archive["reader"]), profile="smoke",
                              overrides=archive["overrides"])
    assert [e["experiment"] for e in results["baseline_s1"]] == ["natural_baseline_s1", "natural_baseline_s1_seed1"]
    assert all(e["kind"] == "real_lines" and e["split"] == "test" for e in results["baseline_s1"])
    rows = N.natural_rows(results, N.line_sets(archive["manifest"]), n_resamples=30)
    assert [(r["set"], r["lines"], r["seeds"]) for r in rows] == [("set-a", 3, 2), ("set-b", 3, 2), ("all", 6, 2)]
    e = results["baseline_s1"][0]
    before = np.mean(e["per_line"]["cer_degraded"])
    assert rows[-1]["before"] == pytest.approx(before)
    assert rows[-1]["after"] == pytest.approx(np.mean(e["per_line"]["cer_restored"]))
    assert rows[-1]["verdict"] == N.verdict(rows[-1]["lo"], rows[-1]["hi"])
    table = N.natural_table(rows)
    assert list(table["set"]) == ["set-a", "set-b", "all"] and set(table["restoration"]) <= {"helps", "hurts",
                                                                                           "neutral"}
    # the same checkpoint, reader, lines and split: the second call reuses both entries
    again = N.evaluate_arms(ckpts, str(archive["manifest"]), str(archive["reader"]), profile="smoke",
                            overrides=archive["overrides"])
    assert [x["date"] for x in again["baseline_s1"]] == [x["date"] for x in results["baseline_s1"]]


def test_seeds_that_read_different_lines_are_refused():
    a = {"experiment": "x", "line_ids": ["1", "2"], "per_line": {"cer_degraded": [0, 0], "cer_restored": [0, 0]}}
    b = {**a, "experiment": "x_seed1", "line_ids": ["2", "1"]}
    with pytest.raises(ValueError, match="different lines"):
        N.natural_rows({"x": [a, b]}, {})


def test_without_manifest_or_arms_the_report_says_what_to_give(tmp_path):
    assert "give the scanned lines' manifest" in N.natural_report("", "", profile="smoke")["how"]
    how = N.natural_report(str(tmp_path / "m.jsonl"), str(tmp_path / "r.pt"), profile="smoke",
                           overrides=[f"eval.ledger_dir={tmp_path}"])["how"]
    assert "train the main arms first" in how


def test_the_figure_draws_one_panel_per_set_with_its_footer():
    from docrestore.figures import archive as FA
    from docrestore.figures import style as ST

    rows = [{"set": s, "method": m, "lines": 10, "before": 0.5, "delta": d, "lo": d - 0.02, "hi": d + 0.02,
             "verdict": N.verdict(d - 0.02, d + 0.02)} for s in ("a", "all") for m, d in (("S1", -0.1), ("cGAN", 0.0))]
    entry = {"profile": "quick", "git_commit": "abc1234", "experiment": "natural_baseline_s1", "mlflow_run_id": ""}
    fig = FA.natural_lines(rows, [entry])
    assert len(fig.axes) == 2 and ST.figure_provenance(fig) is not None
    assert FA.natural_lines([], []) is None


@pytest.mark.e2e  # runs a notebook: in `make test`, not in `make test-fast`
def test_notebook_07_run_as_it_is_says_what_to_give(tmp_path):
    import papermill as pm

    from docrestore import config as C

    out = tmp_path / "07.out.ipynb"
    pm.execute_notebook(str(C.PROJECT_ROOT / "notebooks" / "07_natural_lines.ipynb"), str(out),
                        parameters={"profile": "smoke"}, cwd=str(C.PROJECT_ROOT / "notebooks"),
                        progress_bar=False, kernel_name="python3")
    text = "".join("".join(o.get("text", "")) for c in json.loads(out.read_text())["cells"]
                   for o in c.get("outputs", []) if o.get("output_type") == "stream")
    assert "give the scanned lines' manifest" in text


def test_the_report_reads_the_ledgers_arms_at_their_line_size_and_writes_the_table(archive, monkeypatch, tmp_path):
    from docrestore import config as C

    cfg = C.to_dict(C.load_config(profile="smoke", overrides=["data.width=192"]))
    arms = [{"experiment": name, "config": cfg, "train": {"best": str(archive["gen"])}}
            for name in ("baseline_cgan", "baseline_cgan_seed1", "baseline_s2")]
    monkeypatch.setattr(N.L, "read_ledger", lambda folder, profile: arms)
    report = N.natural_report(str(archive["manifest"]), str(archive["reader"]), profile="smoke",
                              overrides=archive["overrides"])
    assert [e["width"] for e in report["results"]["baseline_cgan"]] == [192, 192]  # the arms' size, not smoke's
    summary = json.loads(report["summary"].read_text())
    assert summary["kind"] == "natural_lines" and "as scanned" in summary["source"]
    assert [(r["set"], r["arm"], r["seeds"]) for r in summary["rows"]] == [
        ("set-a", "baseline_cgan", 2), ("set-b", "baseline_cgan", 2), ("all", "baseline_cgan", 2)]
