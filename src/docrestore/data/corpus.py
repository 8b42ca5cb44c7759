"""Text lines that read like 16th-18th century archival records.

Words come from ``wordfreq`` (the most frequent words of each configured language: Dutch and
Indonesian by default, Malay works too) and from the user's own ``data.corpus_file``; a share
``data.archival_tokens`` of the tokens are what such records are full of: dates ("12 Maart
1687", "A° 1702", "MDCCII"), numerals, amounts ("fl. 250", "f 12:10:8") and abbreviations
("Mr.", "Sr.", "voorsz.", "d'", "Ed.").

Every line only uses characters that every chosen font can draw, so any line can be written in
any hand and the character set is the same for all splits. Words from wordfreq with a character
some font lacks are dropped quietly (and logged); a character of the user's own corpus that a
font cannot draw is an error, since the user asked for it.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import config as C
from .fonts import Font, FontError
from .paths import DataError

log = logging.getLogger("docrestore")

# A word: letters with optional inner apostrophes (z'n, zo'n); no digits, dots or emoji, which
# wordfreq lists too but which the archival generators below produce in period forms instead.
WORD_RE = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)*")

MONTHS = {
    # Dutch in 17th/18th-century spellings (ij for y/i was usual).
    "nl": ["Januarij", "Februarij", "Maart", "April", "Maij", "Junij", "Julij", "Augustus",
           "September", "October", "November", "December", "Jan.", "Febr.", "Octob.", "Decemb."],
    # Malay/Indonesian month names as written in VOC-era Malay letters and later Indonesian.
    "id": ["Januari", "Februari", "Maret", "April", "Mei", "Juni", "Juli", "Agustus",
           "September", "Oktober", "November", "Desember", "Rabiulawal", "Sjaban", "Ramadhan"],
}
MONTHS["ms"] = MONTHS["id"]

ABBREVIATIONS = [
    "Mr.", "Sr.", "voorsz.", "d'", "Ed.", "ao", "fl.", "d'Ed.", "WelEd.", "HoogEd.", "Eerw.",
    "Comp.", "Gouv.", "Gen.", "Coopm.", "Cap.", "&c.", "pr.", "N°", "no.", "d°", "Jr.", "Mons.",
    "'t", "t'", "s'", "Sijn", "Haer", "Ed:", "voorn.", "gemelte", "Radja", "Toean", "Pangeran",
    "Sulthan", "sjahbandar", "orangkaija", "Mad.", "Pieterss.", "Jansz.", "Willemsz.",
]

ROMAN = [(1000, "M"), (900, "CM"), (500, "D"), (400, "CD"), (100, "C"), (90, "XC"), (50, "L"),
         (40, "XL"), (10, "X"), (9, "IX"), (5, "V"), (4, "IV"), (1, "I")]


class CorpusError(DataError, ValueError):
    """The corpus is empty, unreadable or cannot be written in the chosen fonts."""


def roman(n: int, lower: bool = False, final_j: bool = False) -> str:
    """Roman numeral; ``final_j`` writes a closing i as j, as period scribes did (xiij)."""
    out = []
    for value, sym in ROMAN:
        while n >= value:
            out.append(sym)
            n -= value
    text = "".join(out)
    if lower:
        text = text.lower()
        if final_j and text.endswith("i") and len(text) > 1:
            text = text[:-1] + "j"
    return text


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def wordfreq_words(language: str, n: int) -> list[str]:
    """The ``n`` most frequent words of ``language`` that are plain words (see ``WORD_RE``)."""
    import wordfreq

    available = wordfreq.available_languages()
    if language not in available:
        raise CorpusError(f"language {language!r} in data.languages is not in wordfreq; available: "
                          f"{', '.join(sorted(available))}")
    words = [_nfc(w) for w in wordfreq.top_n_list(language, n)]
    return [w for w in words if WORD_RE.fullmatch(w)]


def read_corpus_file(path: str | Path) -> list[str]:
    """The non-empty lines of the user's corpus file, NFC-normalised, whitespace collapsed."""
    p = C.resolve_path(path)
    if not p.is_file():
        raise CorpusError(f"data.corpus_file {p} does not exist; give a UTF-8 text file of words "
                          f"or lines, or data.corpus_file='' to use wordfreq only")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise CorpusError(f"data.corpus_file {p} is not UTF-8 ({exc}); save it as UTF-8") from exc
    return [" ".join(_nfc(line).split()) for line in text.splitlines() if line.strip()]


@dataclass
class Corpus:
    """Word pools per font and language, the user's lines, and what each font may write.

    Pools are kept per font: a word is in a font's pool when the font draws every character of
    it and some training font does too (so a held-out hand never brings a character that no
    training line can have)."""

    pools: dict[str, dict[str, list[str]]]
    allowed: dict[str, frozenset]
    user_lines: list[list[str]] = field(default_factory=list)
    archival_share: float = 0.25
    min_words: int = 2
    max_words: int = 6
    max_chars: int = 48

    # ----------------------------------------------------------------- text generation
    def drawable(self, token: str, font: str) -> bool:
        allowed = self.allowed[font]
        return all(c in allowed for c in token)

    def _month(self, rng: np.random.Generator, language: str) -> str:
        months = MONTHS.get(language, MONTHS["nl"])
        return months[rng.integers(len(months))]

    def _archival(self, rng: np.random.Generator, language: str) -> str:
        """One date, numeral, amount or abbreviation, in a period form."""
        kind = rng.choice(4, p=[0.3, 0.2, 0.2, 0.3])
        year = int(rng.integers(1550, 1800))
        day = int(rng.integers(1, 29))
        if kind == 0:  # date
            form = rng.integers(7)
            return [f"{day} {self._month(rng, language)} {year}", f"A° {year}", f"Ao {year}",
                    f"anno {year}", roman(year), f"den {day}en {self._month(rng, language)}",
                    f"{day}/{int(rng.integers(1, 13))} {year}"][form]
        if kind == 1:  # numeral
            n = int(np.exp(rng.uniform(0, np.log(5000))))
            form = rng.integers(4)
            return [str(n), roman(min(n, 60), lower=True, final_j=True), f"{min(n, 31)}e",
                    f"{n:,}".replace(",", ".")][form]
        if kind == 2:  # amount, in guilders:stivers:pennies, rixdollars or stivers
            n = int(np.exp(rng.uniform(0, np.log(3000))))
            form = rng.integers(6)
            return [f"fl. {n}", f"f {n}:{int(rng.integers(20))}:{int(rng.integers(16))}", f"ƒ {n}",
                    f"Rds. {n}", f"{min(n, 99)} st.", f"{n} rijksd."][form]
        return ABBREVIATIONS[rng.integers(len(ABBREVIATIONS))]

    def _word(self, rng: np.random.Generator, pool: list[str], first: bool, font: str) -> str:
        word = pool[rng.integers(len(pool))]
        # Period scribes capitalised nouns and names freely; capitals also diversify the glyphs.
        if (first and rng.random() < 0.5) or rng.random() < 0.12:
            cap = word[:1].upper() + word[1:]
            word = cap if self.drawable(cap, font) else word
        if rng.random() < 0.08:
            punct = [p for p in ",.;:" if p in self.allowed[font]]
            if punct:
                word += punct[rng.integers(len(punct))]
        return word

    def _generated(self, rng: np.random.Generator, font: str) -> list[str]:
        pools = self.pools[font]
        names = sorted(pools)
        language = names[rng.integers(len(names))]
        pool = pools[language]
        n_words = int(rng.integers(self.min_words, self.max_words + 1))
        tokens: list[str] = []
        count = 0
        while count < n_words:
            token = ""
            if self.archival_share > 0 and rng.random() < self.archival_share:
                for _ in range(8):  # some forms use a character a font lacks, or are too long
                    candidate = self._archival(rng, language)
                    if (self.drawable(candidate, font) and len(candidate.split()) <= n_words - count
                            and len(candidate) <= self.max_chars):
                        token = candidate
                        break
            if not token:
                token = self._word(rng, pool, first=not tokens, font=font)
            tokens.append(token)
            count += len(token.split())
        return tokens

    def _user_window(self, rng: np.random.Generator) -> list[str]:
        words = self.user_lines[rng.integers(len(self.user_lines))]
        n_words = int(rng.integers(self.min_words, self.max_words + 1))
        start = int(rng.integers(max(1, len(words) - n_words + 1)))
        return words[start:start + n_words]

    def line(self, rng: np.random.Generator, font: str) -> str:
        """One line of text for ``font`` (a font name): min_words..max_words words, at most
        max_chars characters, only characters the font draws."""
        for _ in range(20):
            use_user = bool(self.user_lines) and (not self.pools[font] or rng.random() < 0.5)
            tokens = self._user_window(rng) if use_user else self._generated(rng, font)
            text = " ".join(tokens)
            if len(text) <= self.max_chars and len(text.split()) >= self.min_words:
                return text
        # Long words and a short max_chars: keep the longest prefix that fits (max_chars is hard).
        while len(tokens) > 1 and len(" ".join(tokens)) > self.max_chars:
            tokens.pop()
        text = " ".join(tokens)
        return text if len(text) <= self.max_chars else text[: self.max_chars].rstrip()


def _font_coverage_error(ch: str, font: Font, where: str) -> FontError:
    return FontError(
        f"character {ch!r} (U+{ord(ch):04X}) {where} cannot be drawn by font {font.name!r} "
        f"({font.path}). Remove the character from the corpus, or choose fonts that draw it "
        f"(data.fonts / data.heldout_fonts)")


def build_corpus(data: C.DataConfig, fonts: list[Font], train_fonts: list[Font] | None = None) -> Corpus:
    """The corpus for ``data`` (a DataConfig), with per-font pools limited to what each font in
    ``fonts`` draws and some font of ``train_fonts`` (default: ``fonts``) draws too."""
    if not fonts:
        raise FontError("no fonts to write with: set data.fonts to at least one font")
    train_fonts = train_fonts or fonts
    raw_pools = {lang: wordfreq_words(lang, data.corpus_words) for lang in dict.fromkeys(data.languages)}
    user_words: list[str] = []
    user_lines: list[list[str]] = []
    if data.corpus_file:
        for number, line in enumerate(read_corpus_file(data.corpus_file), start=1):
            for font in fonts:
                missing = font.missing(line.replace(" ", ""))
                if missing:
                    raise _font_coverage_error(
                        missing[0], font, f"in data.corpus_file {data.corpus_file} line {number} ({line!r})")
            words = line.split()
            if len(words) > 1:
                user_lines.append(words)
            else:
                user_words.append(words[0])

    if not any(raw_pools.values()) and not user_words and not user_lines:
        raise CorpusError(
            f"the text corpus is empty: data.languages={list(data.languages)} gives no words and "
            f"data.corpus_file={data.corpus_file!r} no lines. Set data.languages (e.g. [nl,id]) "
            f"or data.corpus_file to a UTF-8 file of words or lines")
    user_chars = frozenset("".join(user_words) + "".join(" ".join(ws) for ws in user_lines))

    # Only the characters the text could use are checked against the fonts.
    candidates = set("".join(w for pool in raw_pools.values() for w in pool))
    candidates |= {c.upper() for c in candidates if len(c.upper()) == 1} | set("0123456789.,;:'&/°ƒ")
    candidates |= set("".join(ABBREVIATIONS)) | set("".join(sum(MONTHS.values(), [])))
    candidates.discard(" ")
    trained = {c for c in candidates if any(f.can_draw(c) for f in train_fonts)}

    pools: dict[str, dict[str, list[str]]] = {}
    allowed: dict[str, frozenset] = {}
    user_pool = [w for w in user_words if len(w) <= data.max_chars]
    for font in fonts:
        ok = frozenset(c for c in trained if font.can_draw(c)) | {" "}
        allowed[font.name] = ok | user_chars
        lost = sorted(c for c in candidates if not font.can_draw(c))
        if lost:
            log.info("font %s cannot draw %s: words with them are not written in it", font.name, "".join(lost))
        pools[font.name] = {}
        for lang, words in raw_pools.items():
            kept = [w for w in words if len(w) <= data.max_chars and all(c in ok for c in w)]
            if kept:
                pools[font.name][lang] = kept
        if user_pool:
            pools[font.name]["user"] = user_pool
        if not pools[font.name] and not user_lines:
            raise CorpusError(
                f"the text corpus is empty for font {font.name!r}: data.languages={list(data.languages)} "
                f"and data.corpus_file={data.corpus_file!r} give no word of at most data.max_chars="
                f"{data.max_chars} characters that this font can draw. Add languages (e.g. "
                f"data.languages=[nl,id]), a corpus file with words, or remove the font")
    return Corpus(pools=pools, allowed=allowed, user_lines=user_lines,
                  archival_share=data.archival_tokens, min_words=data.min_words,
                  max_words=data.max_words, max_chars=data.max_chars)
