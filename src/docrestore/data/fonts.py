"""Fonts (the "hands"): resolve a name or path to a file, and know which characters it draws.

A font is named by its family (resolved through matplotlib's font manager, which finds the
system fonts and the DejaVu fonts matplotlib ships) or by a .ttf/.otf path. A font that cannot be
found is an error that lists the handwriting fonts that are installed: never a silent substitute.

Coverage is checked glyph by glyph: a character counts as drawable when the font's character
map has a glyph for it and that glyph leaves ink (initials-only fonts map lower-case letters to
nothing, others draw the .notdef box).
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import ImageFont

from .. import config as C
from .paths import DataError

log = logging.getLogger("docrestore")

# Folders (under /usr/share/fonts) of the Debian handwriting and early-print font packages that
# `make setup` installs; used to list what is available when a requested font is missing.
HANDWRITING_PACKAGES = ("joscelyn", "fifthhorseman", "bwht", "breip", "kristi", "ecolier-court",
                        "femkeklaver", "gotico-antiqua", "junicode")
FONT_SUFFIXES = (".ttf", ".otf", ".ttc")
# Size at which coverage and vertical extents are measured (large enough for non-empty masks).
MEASURE_SIZE = 64


class FontError(DataError, ValueError):
    """A requested font is missing or cannot draw what it must."""


def _font_manager():
    import matplotlib.font_manager as fm

    return fm


def handwriting_families() -> list[str]:
    """Installed families from the handwriting/early-print packages `make setup` installs."""
    fonts = _font_manager().fontManager.ttflist
    return sorted({f.name for f in fonts if any(f"/{pkg}/" in f.fname for pkg in HANDWRITING_PACKAGES)})


def _missing_font_error(spec: str, why: str) -> FontError:
    available = handwriting_families()
    listing = ", ".join(available) if available else "none installed"
    return FontError(
        f"font {spec!r} {why}. Installed handwriting fonts: {listing}. Always available: "
        f"DejaVu Sans, DejaVu Serif. Run `make setup` to install the handwriting fonts "
        f"(Debian packages fonts-joscelyn fonts-dkg-handwriting fonts-bwht fonts-breip fonts-kristi "
        f"fonts-ecolier-court fonts-femkeklaver fonts-gotico-antiqua fonts-junicode), or set "
        f"data.fonts=... to installed families or .ttf/.otf paths")


def _looks_like_path(spec: str) -> bool:
    return spec.lower().endswith(FONT_SUFFIXES) or "/" in spec or "\\" in spec


def _findfont(family: str) -> str:
    """The file of ``family``, scored as matplotlib's ``findfont`` scores fonts, with ties broken
    by file name, then matplotlib's own copy first, then path.

    matplotlib breaks ties by the order of its font cache, and that order is the iteration order
    of a set of paths when the cache was built (a random string-hash seed per machine): two files
    of one family with the same style (Hamlet-Cicero12 / Hamlet-Tertia18, Jessen-Cicero12 /
    Jessen-Mittel14, Breip / breipfont, matplotlib's DejaVu beside the system's) then resolved
    differently on two machines, and so did every line drawn in them. ``ValueError`` when no
    font of the family is installed."""
    fm = _font_manager()
    manager, prop = fm.fontManager, fm.FontProperties(family=family)
    mpl_data = str(Path(fm.__file__).parent / "mpl-data")
    scored = []
    for font in manager.ttflist:
        score = (manager.score_family(prop.get_family(), font.name) * 10
                 + manager.score_style(prop.get_style(), font.style)
                 + manager.score_variant(prop.get_variant(), font.variant)
                 + manager.score_weight(prop.get_weight(), font.weight)
                 + manager.score_stretch(prop.get_stretch(), font.stretch)
                 + manager.score_size(prop.get_size(), font.size))
        if score < 10.0:  # below 10 the family matched (matplotlib's own threshold)
            scored.append((round(score, 9), Path(font.fname).name, not font.fname.startswith(mpl_data),
                           font.fname))
    if not scored:
        raise ValueError(f"no font of family {family!r}")
    return min(scored)[3]


@functools.lru_cache(maxsize=None)
def resolve_font(spec: str) -> Path:
    """The font file for a family name or a .ttf/.otf path; :class:`FontError` when missing."""
    if _looks_like_path(spec):
        path = C.resolve_path(spec)
        if not path.is_file():
            raise _missing_font_error(spec, f"is not a file ({path} does not exist)")
        return path
    try:
        return Path(_findfont(spec))
    except ValueError:
        pass
    # Fonts installed after matplotlib built its cache are invisible until it rebuilds it once.
    fm = _font_manager()
    rebuild = getattr(fm, "_load_fontmanager", None)
    if rebuild is not None:
        fm.fontManager = rebuild(try_read_cache=False)
        try:
            return Path(_findfont(spec))
        except ValueError:
            pass
    raise _missing_font_error(spec, "is not installed (matplotlib's font manager does not know it)")


@functools.lru_cache(maxsize=256)
def truetype(path: str, size: int) -> ImageFont.FreeTypeFont:
    """A cached PIL font object (opening a font file costs far more than drawing a glyph)."""
    return ImageFont.truetype(path, size)


@dataclass
class Font:
    """One hand: its name as configured, its file, and which characters it can draw."""

    name: str
    path: str
    _codepoints: frozenset = field(default=frozenset(), repr=False)
    _drawable: dict = field(default_factory=dict, repr=False)

    @classmethod
    def load(cls, spec: str) -> "Font":
        path = resolve_font(spec)
        from matplotlib import ft2font

        try:
            codepoints = frozenset(ft2font.FT2Font(str(path)).get_charmap())
        except (RuntimeError, OSError) as exc:
            raise FontError(f"font {spec!r} ({path}) cannot be read: {exc}. Choose another font") from exc
        return cls(name=spec, path=str(path), _codepoints=codepoints)

    def can_draw(self, ch: str) -> bool:
        """True when the font has a glyph for ``ch`` that leaves ink (spaces need no ink)."""
        hit = self._drawable.get(ch)
        if hit is None:
            hit = ord(ch) in self._codepoints
            if hit and not ch.isspace():
                hit = truetype(self.path, MEASURE_SIZE).getmask(ch).getbbox() is not None
            self._drawable[ch] = hit
        return hit

    def missing(self, text: str) -> list[str]:
        """The distinct characters of ``text`` this font cannot draw, in order of appearance."""
        return [ch for ch in dict.fromkeys(text) if not self.can_draw(ch)]

    @functools.cached_property
    def band(self) -> tuple[float, float]:
        """(top, bottom) of the writing band below the ascender-line origin, as a share of the
        font size: the median top of ascenders/capitals to the median bottom of descenders (the
        median, so that one swash, as Kristi's q, does not shrink every line). Lines are scaled
        by this band, not by their own ink, so "oe aan" is not drawn twice as tall as
        "Gouverneur"."""
        font = truetype(self.path, MEASURE_SIZE)
        tops = [font.getbbox(c)[1] for c in "dlhkHT" if self.can_draw(c)]
        bottoms = [font.getbbox(c)[3] for c in "gpyjq" if self.can_draw(c)]
        if not tops or not bottoms:
            box = font.getbbox("".join(c for c in "xHg" if self.can_draw(c)) or "x")
            return box[1] / MEASURE_SIZE, box[3] / MEASURE_SIZE
        return float(np.median(tops)) / MEASURE_SIZE, float(np.median(bottoms)) / MEASURE_SIZE


def load_fonts(specs: list[str]) -> list[Font]:
    """Resolve every font, failing on the first missing one; duplicates are dropped."""
    return [Font.load(s) for s in dict.fromkeys(specs)]


def check_usable(font: Font, letters: str = "abcdefghijklmnopqrstuvwxyz") -> None:
    """A text hand must draw most lower-case letters; initials-only or symbol fonts fail here."""
    missing = font.missing(letters)
    if len(missing) > len(letters) // 2:
        raise FontError(
            f"font {font.name!r} ({font.path}) cannot draw {len(missing)} of the 26 lower-case "
            f"letters ({''.join(missing)}): it is an initials or symbol font, not a hand. Remove it "
            f"from data.fonts / data.heldout_fonts")
