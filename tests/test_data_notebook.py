"""Notebook 00 (data synthesis) runs headlessly with papermill in the smoke profile."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOK = NOTEBOOKS / "00_data_synthesis.ipynb"


def test_notebook_00_is_thin():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1 and 'profile = None' in params[0].source  # the CLI's rule: quick on a CPU
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    for banned in ("def ", "class ", "for ", "while ", "cuda", "/work/", "/tmp/"):
        assert banned not in code, banned
    assert code.count("load_config(") == 1


@pytest.mark.e2e
def test_notebook_00_runs_in_the_smoke_profile_with_real_hands_beside_the_font_lines(tmp_path):
    """One papermill run (a kernel start costs more than the notebook): the smoke font lines are
    synthesised into a run folder, and with ``real_lines`` (an ingested manifest) the notebook adds
    the real-hand pairs: their sample grid and a side-by-side table of font lines and real hands.
    The path without ``real_lines`` runs in the nbval check (tests/test_notebook_rules.py)."""
    import papermill as pm  # only here: the module is collected by `make test-fast` too

    from test_real_pairs import ingested

    out = tmp_path / "00.out.ipynb"
    root = tmp_path / "data"
    src = ingested(tmp_path, long_text=False)
    pm.execute_notebook(str(NOTEBOOK), str(out), cwd=str(NOTEBOOKS), kernel_name="python3", progress_bar=False,
                        parameters={"profile": "smoke", "root": str(root), "real_lines": str(src),
                                    "overrides": [f"runs_dir={tmp_path}/runs", "tracking.enabled=false"]})
    meta = json.loads((root / "dataset.json").read_text())
    assert meta["complete"] is True and meta["counts"] == {"train": 48, "val": 12, "test": 12}
    executed = nbformat.read(out, as_version=4)
    images = [o for c in executed.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if "image/png" in o.get("data", {})]
    assert len(images) == 3  # font sample grid, font statistics, real-hand sample grid
    runs = list((tmp_path / "runs").glob("*-synth-*"))
    assert len(runs) == 1 and (runs[0] / "samples.png").is_file()
    table = executed.cells[-1].outputs[0]["data"]["text/plain"]
    assert "font lines" in table and "real hands" in table and "'test': 2" in table
