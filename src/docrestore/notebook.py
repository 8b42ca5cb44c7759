"""Helpers for the notebooks, so that they hold no loops or functions of their own.

- :func:`check_parameters`: the first cell after the ``parameters`` cell calls it, so that a
  parameter papermill injects that the notebook does not declare (``-p wieght 5``) or one of the
  wrong type stops the notebook there, with the did-you-mean the CLI gives for config keys.
- :func:`show`: figures as PNG whatever matplotlib backend is active.
- :func:`announce`: a line both in the notebook's output and on the terminal that runs papermill.
- ``python -m docrestore.notebook kernel``: installs the project's Jupyter kernel (``docrestore``),
  which every notebook declares (``make setup`` runs it); ``... tidy NOTEBOOK`` brings a notebook
  saved from JupyterLab to these rules (no outputs, the kernel, the parameter check); ``... lab``
  is ``make lab``.
"""

from __future__ import annotations

import ast
import difflib
import io
import sys
from typing import Any

KERNEL_NAME = "docrestore"
KERNEL_DISPLAY = "docrestore (project .venv)"
INJECTED_HEADER = "# Parameters"  # papermill's first line of the cell it injects (tag injected-parameters)

NOT_LITERAL = object()  # a default that is not a Python literal: its type is not checked


class ParameterError(ValueError):
    """A notebook parameter that the notebook does not declare, or one of the wrong type."""


# ------------------------------------------------------------------------------ parameters
def parse_parameters(source: str) -> dict[str, Any]:
    """{name: default} for every name assigned in a parameters cell's source (a default that is
    not a literal maps to :data:`NOT_LITERAL`). Raises SyntaxError for invalid Python."""
    out: dict[str, Any] = {}
    for node in ast.parse(source).body:
        targets, value = [], None
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        for t in targets:
            names = [t] if isinstance(t, ast.Name) else [e for e in getattr(t, "elts", []) if isinstance(e, ast.Name)]
            for n in names:
                try:
                    single = len(names) == 1 and isinstance(t, ast.Name)
                    out[n.id] = ast.literal_eval(value) if single else NOT_LITERAL
                except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                    out[n.id] = NOT_LITERAL
    return out


def kind(value: Any) -> str | None:
    """The kind of a parameter value, as a message names it (None: any kind)."""
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return None


def parameter_problems(values: dict[str, Any], declared: dict[str, Any], where: str) -> list[str]:
    """One line per parameter in ``values`` that ``declared`` lacks (with a did-you-mean) or whose
    kind differs from its declared default's. ``None`` on either side is accepted (a default of None
    means 'any'); papermill's own ``PAPERMILL_*`` path parameters are accepted."""
    problems = []
    for name, value in values.items():
        if name.startswith("PAPERMILL_"):
            continue
        if name not in declared:
            close = difflib.get_close_matches(name, list(declared), n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            problems.append(f"parameter '{name}' is not in the parameters cell of {where}.{hint} "
                            f"Its parameters are: {', '.join(declared) or 'none'}")
            continue
        default = declared[name]
        want, got = kind(default), kind(value)
        if default is NOT_LITERAL or default is None or value is None or want is None or want == got:
            continue
        problems.append(f"parameter '{name}' = {value!r} is {got}, but {where} declares it as {want} "
                        f"(default {default!r})")
    return problems


def _history(namespace: dict) -> list[str]:
    hist = namespace.get("_ih") or namespace.get("In") or []
    return [h for h in hist if isinstance(h, str)]


def check_parameters(namespace: dict, where: str = "this notebook") -> None:
    """Check what papermill injected against the notebook's ``parameters`` cell; call it as
    ``check_parameters(globals())`` in the first cell after the parameters cell.

    Papermill runs the ``parameters`` cell, then the cell it injects (first line ``# Parameters``),
    then this one, so the kernel's input history holds both sources. Without an injected cell
    (run interactively) there is nothing to check. Raises :class:`ParameterError` naming every
    unknown parameter (with a did-you-mean) and every value of the wrong kind."""
    hist = _history(namespace)
    # hist[-1] is the cell calling us; the injected cell is the one before, the parameters cell before that
    if len(hist) < 3 or not hist[-2].lstrip().startswith(INJECTED_HEADER):
        return
    try:
        declared = parse_parameters(hist[-3])
        injected = parse_parameters(hist[-2])
    except SyntaxError:  # not papermill's cells after all: nothing we can judge
        return
    values = {name: namespace.get(name) for name in injected}
    problems = parameter_problems(values, declared, where)
    if problems:
        msg = "the notebook was given parameters it cannot use, so nothing ran:\n  " + "\n  ".join(problems)
        announce(msg)
        raise ParameterError(msg)


# ------------------------------------------------------------------------------ terminal
def terminal_stream():
    """The stream of the process that started the kernel (papermill's terminal), or None.

    ipykernel sends ``sys.stderr`` to the notebook; the kernel's original standard error is
    still the terminal that runs papermill (or the job log of a background run)."""
    stream = getattr(sys, "__stderr__", None)
    if stream is None or stream is sys.stderr:
        return None
    return stream


def announce(text: str) -> None:
    """Print ``text`` in the notebook's output and on papermill's terminal (its log)."""
    print(text, flush=True)
    term = terminal_stream()
    if term is not None:
        try:
            term.write("".join(f"[docrestore] {line}\n" for line in text.splitlines()))
            term.flush()
        except (OSError, ValueError):  # a closed terminal must not stop the notebook
            pass


def announce_profile(profile: str | None) -> str:
    """The profile a notebook runs (the CLI's rule, config.choose_profile), said with the reason."""
    from .config import choose_profile

    chosen, why = choose_profile(profile)
    announce(f"profile: {chosen} ({why})")
    return chosen


# ------------------------------------------------------------------------------ display
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


# ------------------------------------------------------------------------------ kernel
def install_kernel(prefix: str | None = None) -> str:
    """Install (or refresh) the ``docrestore`` kernel running this interpreter into ``prefix``
    (default: this environment, e.g. .venv/share/jupyter/kernels/docrestore). Returns its folder."""
    from ipykernel.kernelspec import install

    return install(kernel_name=KERNEL_NAME, display_name=KERNEL_DISPLAY, prefix=prefix or sys.prefix)


CHECK_CELL = ('from docrestore.notebook import check_parameters\n\n'
              'check_parameters(globals(), "{stem}")  # an unknown or mistyped parameter stops here')


def tidy(path) -> list[str]:
    """Bring a notebook to the project's rules in place (what JupyterLab left behind): outputs and
    execution counts cleared, the project's kernel declared, the parameter check inserted after the
    ``parameters`` cell when missing. Returns what changed (empty: it already complied)."""
    from pathlib import Path

    import nbformat

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    changes = []
    if (nb.metadata.get("kernelspec") or {}).get("name") != KERNEL_NAME:
        nb.metadata["kernelspec"] = {"name": KERNEL_NAME, "display_name": KERNEL_DISPLAY, "language": "python"}
        changes.append(f"kernel set to '{KERNEL_NAME}'")
    cleared = 0
    for cell in nb.cells:
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None):
            cell.outputs, cell.execution_count = [], None
            cleared += 1
    if cleared:
        changes.append(f"outputs of {cleared} cell(s) cleared")
    idx = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
    if not idx:
        changes.append("NO cell tagged 'parameters': tag the cell of defaults (property inspector > Cell Tags)")
    else:
        after = next((c for c in nb.cells[idx[0] + 1:] if c.cell_type == "code"), None)
        if after is None or "check_parameters(globals()" not in after.source:
            nb.cells.insert(idx[0] + 1, nbformat.v4.new_code_cell(CHECK_CELL.format(stem=path.stem)))
            changes.append("parameter check inserted after the parameters cell")
    if any(not c.startswith("NO ") for c in changes):
        nbformat.write(nb, path)
    return changes


def lab_command(ip: str = "127.0.0.1", port: int = 8888, notebook_dir: str = "notebooks",
                extra: list[str] | tuple = ()) -> list[str]:
    """The `jupyter lab` command line of `make lab`: no browser (the URL with its token is printed,
    so it works on a headless server), ``--allow-root`` when run as root (GPU containers)."""
    import os

    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", f"--ip={ip}", f"--port={port}",
           f"--ServerApp.root_dir={notebook_dir}", f"--MappingKernelManager.default_kernel_name={KERNEL_NAME}"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    return cmd + list(extra)


def main(argv: list[str] | None = None) -> int:
    import argparse
    import os

    p = argparse.ArgumentParser(prog="python -m docrestore.notebook")
    sub = p.add_subparsers(dest="cmd", required=True)
    k = sub.add_parser("kernel", help=f"install the Jupyter kernel '{KERNEL_NAME}' for this environment")
    k.add_argument("--prefix", default=None, help="install prefix (default: this environment)")
    t = sub.add_parser("tidy", help="clear outputs, declare the project's kernel, insert the parameter check")
    t.add_argument("paths", nargs="+", help="notebooks to tidy in place")
    lab = sub.add_parser("lab", help="JupyterLab on notebooks/ with the project's kernel (make lab)")
    lab.add_argument("--ip", default="127.0.0.1", help="address to listen on (0.0.0.0: reachable from other machines)")
    lab.add_argument("--port", type=int, default=8888)
    lab.add_argument("--notebook-dir", default="notebooks")
    args, extra = p.parse_known_args(argv)
    if args.cmd == "kernel":
        if extra:
            p.error(f"unrecognized arguments: {' '.join(extra)}")
        print(f"installed the Jupyter kernel '{KERNEL_NAME}' in {install_kernel(args.prefix)}")
        return 0
    if args.cmd == "tidy":
        failed = False
        for path in args.paths:
            changes = tidy(path)
            failed |= any(c.startswith("NO ") for c in changes)
            print(f"{path}: {'; '.join(changes) if changes else 'already tidy'}")
        return 1 if failed else 0
    from jupyter_client.kernelspec import KernelSpecManager

    if KERNEL_NAME not in KernelSpecManager().find_kernel_specs():
        print(f"installed the Jupyter kernel '{KERNEL_NAME}' in {install_kernel()}", flush=True)
    cmd = lab_command(args.ip, args.port, args.notebook_dir, extra)
    print("starting JupyterLab (no browser; open the http://127.0.0.1 URL with its token printed below; "
          "Ctrl-C twice stops it)", flush=True)
    os.execv(cmd[0], cmd)
    return 0  # pragma: no cover - execv does not return


if __name__ == "__main__":
    sys.exit(main())
