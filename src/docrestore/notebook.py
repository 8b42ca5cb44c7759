"""Display helpers for the notebooks, so that they hold no loops or functions of their own."""

from __future__ import annotations

import io


def show(obj) -> None:
    """Display a figure, a list of figures, or say that nothing was drawn (None).

    Figures are shown as PNG whatever matplotlib backend the library selected (the figure
    code uses Agg, whose figures a kernel would otherwise print as '<Figure ...>' text)."""
    from IPython.display import Image, display

    if obj is None:
        print("(nothing to draw for these parameters)")
        return
    items = obj if isinstance(obj, (list, tuple)) else [obj]
    for item in items:
        if hasattr(item, "savefig"):
            buf = io.BytesIO()
            item.savefig(buf, format="png", dpi=110, bbox_inches="tight")
            display(Image(data=buf.getvalue(), format="png"))
            import matplotlib.pyplot as plt

            plt.close(item)
        else:
            display(item)
