"""An archive's own lines through `docrestore evaluate`: any split (or all), no training split
needed, a per-line CSV and crops beside the entry, and a user's data problem as one line."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
from PIL import Image

from archive_fixture import PAGES, ingest_archive, tiny_checkpoints
from docrestore import cli
from docrestore.data import manifest as M
from docrestore.evaluation import metrics as MET
from docrestore.evaluation import real as REAL


@pytest.fixture
def archive(tmp_path, monkeypatch):
    # the CLI's console handler writes to this test's stderr, not to an earlier test's captured one
    monkeypatch.setattr(logging.getLogger("docrestore"), "handlers", [])
    manifest = ingest_archive(tmp_path / "archive")
    gen, reader = tiny_checkpoints(tmp_path / "models")
    return {"manifest": manifest, "gen": gen, "reader": reader, "ledger": tmp_path / "ledger",
            "args": ["profile=smoke", f"data.manifest={manifest}", f"eval.checkpoint={gen}",
                     f"eval.reader={reader}", f"eval.ledger_dir={tmp_path / 'ledger'}",
                     f"runs_dir={tmp_path / 'runs'}", "tracking.enabled=false", "device=cpu",
                     "eval.bootstrap=20"]}


def test_a_test_only_archive_is_evaluated_with_a_per_line_csv_and_crops(archive, capsys):
    # ingested with --test-share 1 --val-share 0: no train or val line, which evaluation does not need
    assert {r["split"] for r in M.read_manifest(archive["manifest"])} == {"test"}
    assert cli.main(["evaluate", *archive["args"], "eval.experiment=my_archive"]) == 0
    entry = json.loads((archive["ledger"] / "smoke" / "real" / "my_archive.json").read_text())
    assert entry["kind"] == "real_lines" and entry["split"] == "test"
    assert entry["metrics"]["cer_degraded"]["n"] == 6 and entry["untranscribed"] == 0
    folder = archive["ledger"] / "smoke" / "real" / "my_archive"
    assert entry["per_line_csv"] == "my_archive/lines.csv"
    rows = REAL.read_per_line(folder / "lines.csv")
    assert [k for k in rows[0]] == list(REAL.PER_LINE_COLUMNS)
    assert sorted(r["transcription"] for r in rows) == sorted(t for ts in PAGES.values() for t in ts)
    changes = [r["cer_change"] for r in rows]
    assert changes == sorted(changes)  # the most improved line first, the most worsened last
    by_id = dict(zip(entry["line_ids"], entry["per_line"]["cer_restored"]))
    for r in rows:
        assert r["page"] in PAGES and r["source"].endswith(f"{r['page']}.xml")
        # each CER is the reading's against the transcription, and the entry holds the same number
        assert r["cer_degraded"] == pytest.approx(MET.cer(r["transcription"], r["read_degraded"]), abs=1e-6)
        assert r["cer_restored"] == pytest.approx(MET.cer(r["transcription"], r["read_restored"]), abs=1e-6)
        assert r["cer_restored"] == pytest.approx(by_id[r["id"]], abs=1e-6)
        for key in ("degraded_image", "restored_image"):
            crop = np.asarray(Image.open(folder / "crops" / r[key]))
            assert crop.shape == (32, 256) and crop.dtype == np.uint8  # as the smoke generator saw it
    # the restored crop is the generator's output, not a copy of the degraded line
    first = rows[0]
    assert not np.array_equal(np.asarray(Image.open(folder / "crops" / first["degraded_image"])),
                              np.asarray(Image.open(folder / "crops" / first["restored_image"])))


def test_eval_split_all_and_lines_without_a_transcription_are_skipped(archive):
    records = M.read_manifest(archive["manifest"])
    for i, r in enumerate(records):
        r["split"] = "train" if i < 2 else "test"
        if i in (0, 3):
            r["text"] = ""  # not transcribed: skipped and counted, not refused
    M.write_manifest(archive["manifest"], records)
    assert cli.main(["evaluate", *archive["args"], "eval.experiment=every_line", "eval.split=all"]) == 0
    entry = json.loads((archive["ledger"] / "smoke" / "real" / "every_line.json").read_text())
    assert entry["split"] == "all" and entry["untranscribed"] == 2
    assert sorted(entry["line_ids"]) == sorted(r["id"] for i, r in enumerate(records) if i not in (0, 3))


def _one_line_error(capsys) -> str:
    """The command's own message: one line, the last, after the run's log lines; no traceback."""
    err = capsys.readouterr().err.strip().splitlines()
    mine = [line for line in err if line.startswith("docrestore:")]
    assert not any("Traceback" in line for line in err) and len(mine) == 1 and mine[0] == err[-1], err
    return mine[0]


def test_no_transcription_and_an_empty_split_are_one_line_errors(archive, capsys):
    assert cli.main(["evaluate", *archive["args"], "eval.split=val"]) == 2
    err = _one_line_error(capsys)
    assert str(archive["manifest"]) in err and "no lines in split 'val'" in err and "eval.split=all" in err
    records = M.read_manifest(archive["manifest"])
    M.write_manifest(archive["manifest"], [dict(r, text="") for r in records])
    assert cli.main(["evaluate", *archive["args"]]) == 2
    err = _one_line_error(capsys)
    assert str(archive["manifest"]) in err and "has a transcription" in err
    assert not (archive["ledger"] / "smoke" / "real").exists()
    # a reader trained on the archive's own manifest would read lines it learnt from: say which to give
    no_reader = [a for a in archive["args"] if not a.startswith("eval.reader=")]
    assert cli.main(["evaluate", *no_reader, "eval.split=all"]) == 2
    assert "eval.reader=" in _one_line_error(capsys)


def test_a_training_stage_without_a_train_split_is_a_one_line_error(archive, capsys):
    assert cli.main(["pretrain", *archive["args"]]) == 2
    err = _one_line_error(capsys)
    assert str(archive["manifest"]) in err and "no lines in split 'train'" in err


@pytest.mark.e2e  # runs a notebook: in `make test`, not in `make test-fast`
def test_notebook_06_shows_the_entry_evaluate_wrote_with_before_after_crops(archive, tmp_path):
    import papermill as pm

    from docrestore import config as C

    assert cli.main(["evaluate", *archive["args"], "eval.experiment=my_archive", "eval.split=all"]) == 0
    out = tmp_path / "06.out.ipynb"
    overrides = [a for a in archive["args"] if not a.startswith(("profile=", "data.manifest=", "eval.checkpoint=",
                                                                  "eval.reader="))]
    pm.execute_notebook(str(C.PROJECT_ROOT / "notebooks" / "06_archive_lines.ipynb"), str(out),
                        parameters={"manifest": str(archive["manifest"]), "checkpoint": str(archive["gen"]),
                                    "reader": str(archive["reader"]), "experiment": "my_archive",
                                    "profile": "smoke", "overrides": overrides, "n_lines": 3},
                        cwd=str(C.PROJECT_ROOT / "notebooks"), progress_bar=False, kernel_name="python3")
    outputs = [o for c in json.loads(out.read_text())["cells"] for o in c.get("outputs", [])]
    text = "".join("".join(o.get("text", "")) for o in outputs if o.get("output_type") == "stream")
    assert "reusing" in text and "my_archive.json" in text  # the command's entry, not measured again
    tables = [o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})]
    assert any("restored" in "".join(t) and "CER mean" in "".join(t) for t in tables)
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 3  # distribution, improved, worsened


def test_line_crops_draw_each_picked_line_degraded_and_restored_with_its_readings(tmp_path):
    from docrestore.figures import archive as FA

    crops = tmp_path / "crops"
    crops.mkdir()
    rows = []
    for i, change in enumerate([-0.5, -0.2, 0.0, 0.3]):
        names = {k: f"{i}_{k}.png" for k in ("degraded", "restored")}
        for k, name in names.items():
            Image.fromarray(np.full((32, 256), 40 * i + (0 if k == "degraded" else 20), np.uint8)).save(crops / name)
        rows.append({"id": f"p/l{i}", "transcription": f"line {i}", "read_degraded": f"lime {i}",
                     "read_restored": f"line {i}", "cer_degraded": 0.5, "cer_restored": 0.5 + change,
                     "cer_change": change, "degraded_image": names["degraded"], "restored_image": names["restored"]})
    entry = {"experiment": "a", "profile": "smoke", "git_commit": "abc", "paired": {"cer": {"p_value": 0.5}}}
    assert [r["id"] for r in FA.pick_lines(rows, "improved")] == ["p/l0", "p/l1"]
    assert [r["id"] for r in FA.pick_lines(rows, "worsened")] == ["p/l3"]
    fig = FA.line_crops(entry, rows, tmp_path, "improved", n=10)
    axes = [ax for ax in fig.axes if ax.images]
    assert len(axes) == 4  # two lines, degraded and restored each
    assert axes[0].images[0].get_array()[0, 0] == 0 and axes[1].images[0].get_array()[0, 0] == 20
    first, second = axes[0].get_title(loc="left"), axes[1].get_title(loc="left")
    assert "p/l0" in first and "line 0" in first and "lime 0" in first  # transcription, degraded reading
    assert "restored" in second and "line 0" in second
    assert FA.change_counts(rows) == {"improved": 2, "unchanged": 1, "worsened": 1}
    assert FA.cer_distribution(entry, rows).axes


def test_the_notebook_run_as_it_is_says_what_to_give():
    from docrestore.evaluation import archive as AR
    from docrestore.figures import archive as FA

    report = AR.archive_report("", "", experiment="my_archive")
    assert report["entry"] is None and "give the archive's manifest" in report["how"]
    assert AR.archive_summary(report) is None and FA.cer_distribution(None, []) is None
