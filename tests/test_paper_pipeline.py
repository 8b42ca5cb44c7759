"""End to end in the smoke profile: every experiment of the paper is trained, evaluated and
recorded in a ledger, then notebook 04 draws every figure and table from that ledger alone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from docrestore.study import lines as P
from docrestore.study import paper as PP
from docrestore.evaluation import ledger as L
from docrestore.figures.plots import FIGURES
from docrestore.figures.tables import TABLES

# trains every paper arm, then runs notebook 04: not in `make test-fast`
pytestmark = pytest.mark.e2e

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "04_evaluation_figures.ipynb"


def overrides_for(tmp: Path, smoke_dataset: Path) -> list[str]:
    return [f"runs_dir={tmp}/runs", f"eval.ledger_dir={tmp}/ledger", f"data.root={smoke_dataset.parent}",
            "tracking.enabled=false", "train.max_steps=2", "train.val_every=2"]


@pytest.fixture(scope="module")
def smoke_ledger(smoke_dataset, tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("paper")
    overrides = overrides_for(tmp, smoke_dataset)
    for exp in P.paper_experiments("smoke"):
        P.run_experiment(exp, profile="smoke", overrides=overrides)
    return tmp / "ledger"


def test_every_paper_experiment_is_recorded(smoke_ledger, smoke_dataset):
    entries = L.read_ledger(smoke_ledger, profile="smoke")
    assert {e["experiment"] for e in entries} == {e.name for e in P.paper_experiments("smoke")}
    same = overrides_for(smoke_ledger.parent, smoke_dataset)
    assert PP.missing_experiments("smoke", smoke_ledger, same) == []
    # an entry made under other settings is stale, never counted as done
    stale = PP.missing_experiments("smoke", smoke_ledger, same[:-2] + ["train.max_steps=3", "train.val_every=2"])
    assert len(stale) == len(entries)
    for e in entries:
        assert e["profile"] == "smoke" and len(e["git_commit"]) == 40
        assert e["metrics"]["psnr"]["n"] == len(e["per_line"]["psnr"]) == 12
        assert (smoke_ledger / e["samples"][0]["lines"]["clean"]["image"]).is_file()


def test_notebook_04_draws_every_figure_and_table_from_the_ledger(smoke_ledger, tmp_path):
    import papermill as pm  # only here: the module is collected by `make test-fast` too

    out = tmp_path / "04.ipynb"
    figures, tables = tmp_path / "figures", tmp_path / "tables"
    pm.execute_notebook(str(NOTEBOOK), str(out), cwd=str(NOTEBOOK.parent), progress_bar=False,
                        kernel_name="python3",
                        parameters={"profile": "smoke", "ledger_dir": str(smoke_ledger),
                                    "figures_dir": str(figures), "tables_dir": str(tables)})
    for name in FIGURES:
        assert (figures / f"{name}.pdf").stat().st_size > 0, name
        assert (figures / f"{name}.png").stat().st_size > 0, name
    run_ids = {e["experiment"] for e in L.read_ledger(smoke_ledger, profile="smoke")}
    for name in TABLES:
        tex = (tables / f"{name}.tex").read_text()
        assert "smoke" in tex.lower() and "\\toprule" in tex, name
    main = (tables / "main_comparison.tex").read_text()
    assert "baseline_s1" in main and any(r in main for r in run_ids)
    prov = json.loads((figures / "ablation_bars.provenance.json").read_text())
    assert prov  # each figure says which runs and commits it was drawn from
