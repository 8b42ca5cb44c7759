"""Writes notebook 04 (thin: parameters, one call to make_all, the display of its report).

The notebook is the committed artefact; this script is how it was made. Run:
python scripts/make_notebook_04.py
"""

from pathlib import Path

import nbformat as nbf

NB_PATH = Path(__file__).resolve().parents[1] / "notebooks" / "04_evaluation_figures.ipynb"

PARAMETERS = '''profile = "quick"               # smoke | quick | full: whose ledger entries to draw
ledger_dir = "paper/results"    # the results ledger (entries in <ledger_dir>/<profile>/)
figures_dir = "paper/figures"   # PDF + 300 dpi PNG + provenance JSON per figure
tables_dir = "paper/tables"     # one booktabs .tex per table
'''


def build() -> nbf.NotebookNode:
    nb = nbf.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells.append(nbf.v4.new_markdown_cell(
        "# 04 — Evaluation figures and tables\n\n"
        "Every figure and table of the paper, drawn only from the results ledger "
        "(`paper/results/<profile>/*.json`); nothing is retrained here. Each figure carries a footer "
        "with its profile, commit(s) and MLflow run ids; each table row a LaTeX comment with its "
        "experiment, run id and commit. A figure whose experiments are not in the ledger is listed "
        "as skipped, with the group to run (`make paper-figures PROFILE=...` runs every experiment first)."))
    params = nbf.v4.new_code_cell(PARAMETERS)
    params.metadata["tags"] = ["parameters"]
    nb.cells.append(params)
    nb.cells.append(nbf.v4.new_code_cell("from docrestore.figures import paper"))
    nb.cells.append(nbf.v4.new_markdown_cell("## Draw everything the ledger has results for"))
    nb.cells.append(nbf.v4.new_code_cell(
        "report = paper.make_all(ledger_dir, figures_dir, tables_dir, profile=profile)"))
    nb.cells.append(nbf.v4.new_markdown_cell("## Figures, tables and what was skipped"))
    nb.cells.append(nbf.v4.new_code_cell("paper.show_report(report)"))
    return nb


if __name__ == "__main__":
    nbf.write(build(), NB_PATH)
    print("wrote", NB_PATH)
