"""The paper's figures and LaTeX tables, drawn from the results ledger only (never retraining).

- :mod:`.style`: one figure style, journal sizes, the traceability footer and ``savefig``.
- :mod:`.entries`: choosing ledger entries (groups, ablation arms, representatives).
- :mod:`.plots`: each figure as ``(entries) -> Figure``.
- :mod:`.tables`: each table as ``(entries) -> LaTeX``.
- :mod:`.dibco_outputs`: the DIBCO page table and crops figure, from the page ledger.
- :mod:`.paper`: ``make_all`` (everything, with a report), ``make_figures`` (the CLI stage) and
  ``show_report`` (a notebook's display).
"""

from .entries import MissingResults

__all__ = ["MissingResults"]
