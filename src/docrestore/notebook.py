"""Display helpers for the notebooks, so that they hold no loops or functions of their own."""

from __future__ import annotations


def show(obj) -> None:
    """Display a figure, a list of figures, or say that nothing was drawn (None)."""
    from IPython.display import display

    if obj is None:
        print("(nothing to draw for these parameters)")
        return
    items = obj if isinstance(obj, (list, tuple)) else [obj]
    for item in items:
        display(item)
    try:
        import matplotlib.pyplot as plt

        for item in items:
            if hasattr(item, "savefig"):
                plt.close(item)
    except ImportError:  # pragma: no cover
        pass
