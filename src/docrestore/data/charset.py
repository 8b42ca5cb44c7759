"""The character set of the transcriptions: index 0 is the CTC blank, characters from 1.

``charset.txt`` holds one character a line in index order (index 1 first). A space is a
character like any other (a line holding one space), so the file is read without stripping.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from .paths import DataError


class CharsetError(DataError, ValueError):
    """A text has a character that is not in the character set (names the character and line)."""


class Charset:
    """Characters <-> class indices for CTC; ``blank = 0``, ``len()`` counts the blank."""

    blank = 0

    def __init__(self, chars: Iterable[str]):
        chars = list(chars)
        for c in chars:
            if len(c) != 1 or c in "\n\r":
                raise CharsetError(f"a charset entry must be one character (not a line break), got {c!r}")
        duplicates = sorted({c for i, c in enumerate(chars) if c in chars[:i]}) if len(set(chars)) < len(chars) else []
        if duplicates:
            raise CharsetError(f"the charset lists {duplicates!r} more than once; each character once")
        if not chars:
            raise CharsetError("the charset is empty: it needs at least one character")
        self.chars: list[str] = chars
        self._index = {c: i + 1 for i, c in enumerate(chars)}

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_texts(cls, texts: Iterable[str]) -> "Charset":
        """Every character of ``texts``, sorted by code point."""
        return cls(sorted(set("".join(texts))))

    @classmethod
    def from_file(cls, path: str | Path) -> "Charset":
        """Read ``charset.txt`` (one character a line, index 1 first)."""
        p = Path(path)
        if not p.is_file():
            raise CharsetError(f"charset file {p} does not exist; it is written next to manifest.jsonl "
                               f"by synthesis (or derive one with Charset.from_texts)")
        text = p.read_text(encoding="utf-8")
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()  # the newline that ends the last line
        return cls(lines)

    def to_file(self, path: str | Path) -> Path:
        """Write one character a line (atomically: a temporary file renamed into place)."""
        from ..files import write_text

        return write_text(path, "".join(c + "\n" for c in self.chars))

    # ------------------------------------------------------------------------ mapping
    def encode(self, text: str, where: str = "") -> list[int]:
        """Class indices of ``text``; :class:`CharsetError` names the first unknown character and
        the line (``where`` adds e.g. the manifest line or sample id)."""
        try:
            return [self._index[c] for c in text]
        except KeyError:
            bad = next(c for c in text if c not in self._index)
            at = f" ({where})" if where else ""
            raise CharsetError(
                f"character {bad!r} (U+{ord(bad):04X}) of the line {text!r}{at} is not in the charset "
                f"of {len(self.chars)} characters; add it to charset.txt or remove it from the text") from None

    def decode(self, ids: Iterable[int]) -> str:
        """Characters of ``ids``; blanks (0) are skipped. No CTC collapsing (see greedy_decode)."""
        out = []
        for i in ids:
            i = int(i)
            if i == self.blank:
                continue
            if not 0 < i <= len(self.chars):
                raise CharsetError(f"class index {i} is outside the charset (1..{len(self.chars)}, 0 = blank)")
            out.append(self.chars[i - 1])
        return "".join(out)

    def __len__(self) -> int:
        return len(self.chars) + 1

    def __contains__(self, ch: str) -> bool:
        return ch in self._index

    def __eq__(self, other) -> bool:
        return isinstance(other, Charset) and self.chars == other.chars

    def __repr__(self) -> str:
        return f"Charset({len(self.chars)} characters + blank: {''.join(self.chars)!r})"
