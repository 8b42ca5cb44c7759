"""Numbers typed into the paper's text instead of drawn from the ledger.

Every number in paper/main.tex comes from a macro the ledger generates (``\\res{experiment}{key}``,
docrestore.figures.tables.macros). :func:`typed_numbers` lists each digit left in the body once
macros, citations, references, labels, file names of tables and figures and comments are taken
out, apart from :data:`ALLOWED`: names that contain a digit and are no quantity.

    python -m docrestore.figures.typed_numbers [paper/main.tex]   # exit 1 and the lines, if any
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from .. import config as C

# (pattern, why it is no typed number)
ALLOWED: tuple[tuple[str, str], ...] = (
    (r"\bS[12]\b", "ERB's scenario names S1 and S2"),
    (r"\bL[12]\b", "the names of the L1 loss and the L2 norm"),
    (r"\$\[0,\s*1\]\$", "the value range of an image, a definition"),
    (r"^\s*\\(?:re)?new(?:command|environment)\b.*$", "a LaTeX definition's argument count"),
)
# commands whose (first, or both) arguments are names, not text
_NAME_ARGS = re.compile(r"\\(?:res|paperfigure)\{[^}]*\}\{[^}]*\}|\\(?:cite|ref|label|papertable|input|include|"
                        r"includegraphics|bibliography|bibliographystyle|usepackage|documentclass)"
                        r"(?:\[[^\]]*\])?\{[^}]*\}")
_COMMENT = re.compile(r"(?<!\\)%.*$")


def typed_numbers(tex: str) -> list[tuple[int, str]]:
    """(line number, line) for each line of the document body that still holds a digit."""
    lines = tex.splitlines()
    start = next((i for i, line in enumerate(lines) if r"\begin{document}" in line), 0)
    found = []
    for i in range(start, len(lines)):
        text = _NAME_ARGS.sub("", _COMMENT.sub("", lines[i]))
        for pattern, _ in ALLOWED:
            text = re.sub(pattern, "", text)
        if re.search(r"\d", text):
            found.append((i + 1, lines[i].strip()))
    return found


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    path = C.resolve_path(argv[0] if argv else "paper/main.tex")
    found = typed_numbers(Path(path).read_text(encoding="utf-8"))
    for n, line in found:
        print(f"{path}:{n}: a number typed by hand (use a \\res macro from the ledger): {line}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
