"""Text side of the data: charset, fonts and their coverage, the archival corpus."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from docrestore import config as C
from docrestore.data import corpus as CO
from docrestore.data import fonts as F
from docrestore.data.charset import Charset, CharsetError


# ------------------------------------------------------------------------------- charset
def test_charset_round_trip_blank_and_file_with_space(tmp_path):
    cs = Charset.from_texts(["de Comp.", "A° 1702"])
    assert cs.chars == sorted(set("de Comp.A° 1702")) and cs.chars[0] == " "
    assert len(cs) == len(cs.chars) + 1 and cs.blank == 0
    ids = cs.encode("A° 1702")
    assert 0 not in ids and cs.decode(ids) == "A° 1702"
    assert cs.decode([0, ids[0], 0]) == "A"
    path = cs.to_file(tmp_path / "charset.txt")
    assert Charset.from_file(path) == cs
    assert path.read_text(encoding="utf-8").split("\n")[0] == " "  # a space is a line of its own


def test_charset_error_names_character_and_line():
    cs = Charset.from_texts(["abc "])
    with pytest.raises(CharsetError, match="'ë'") as err:
        cs.encode("abc ëa", where="id x1")
    assert "abc ëa" in str(err.value) and "id x1" in str(err.value)
    with pytest.raises(CharsetError, match="outside the charset"):
        cs.decode([99])
    with pytest.raises(CharsetError, match="more than once"):
        Charset(["a", "b", "a"])
    with pytest.raises(CharsetError, match="does not exist"):
        Charset.from_file("/nonexistent/charset.txt")


# --------------------------------------------------------------------------------- fonts
def test_fonts_resolve_by_family_and_path_and_know_their_coverage():
    sans = F.Font.load("DejaVu Sans")
    assert sans.path.endswith("DejaVuSans.ttf")
    by_path = F.Font.load(sans.path)
    assert by_path.path == sans.path
    assert sans.can_draw("a") and sans.can_draw("ë") and sans.can_draw(" ")
    assert not sans.can_draw("漢") and not sans.can_draw("\ue000")  # no glyph: .notdef
    assert sans.missing("ab漢c\ue000") == ["漢", "\ue000"]
    top, bottom = sans.band
    assert 0.0 <= top < bottom < 2.0
    F.check_usable(sans)


def test_initials_only_font_is_rejected():
    zainer = Path("/usr/share/fonts/opentype/gotico-antiqua/Zainer-Initials45mm.otf")
    if not zainer.is_file():
        pytest.skip("fonts-gotico-antiqua not installed (make setup)")
    with pytest.raises(F.FontError, match="initials"):
        F.check_usable(F.Font.load(str(zainer)))


# -------------------------------------------------------------------------------- corpus
def test_roman_numerals_in_period_form():
    assert CO.roman(1702) == "MDCCII" and CO.roman(1649) == "MDCXLIX"
    assert CO.roman(13, lower=True, final_j=True) == "xiij" and CO.roman(5, lower=True, final_j=True) == "v"


@pytest.fixture(scope="module")
def smoke_corpus():
    data = C.load_config(profile="smoke").data
    fonts = F.load_fonts(data.fonts)
    return data, fonts, CO.build_corpus(data, fonts)


def test_lines_respect_word_and_character_limits_and_the_font(smoke_corpus):
    data, fonts, corpus = smoke_corpus
    rng = np.random.default_rng(0)
    for i in range(200):
        font = fonts[i % len(fonts)]
        text = corpus.line(rng, font.name)
        assert len(text) <= data.max_chars and text == text.strip() and "  " not in text
        assert data.min_words <= len(text.split()) <= data.max_words, text
        assert not font.missing(text), (text, font.name)


def test_archival_tokens_appear_with_their_share(smoke_corpus):
    data, fonts, corpus = smoke_corpus
    rng = np.random.default_rng(1)
    lines = [corpus.line(rng, fonts[0].name) for _ in range(300)]
    digits = sum(any(c.isdigit() for c in t) for t in lines)
    abbrev = sum(any(w in CO.ABBREVIATIONS for w in t.split()) for t in lines)
    assert digits > 30 and abbrev > 15  # dates, numerals and amounts; Mr., Sr., voorsz. ...
    plain = CO.Corpus(pools=corpus.pools, allowed=corpus.allowed, archival_share=0.0, min_words=2,
                      max_words=3, max_chars=20)
    rng = np.random.default_rng(1)
    assert not any(any(c.isdigit() for c in plain.line(rng, fonts[0].name)) for _ in range(100))


@pytest.mark.parametrize("language", ["nl", "id", "ms"])
def test_wordfreq_languages(language):
    words = CO.wordfreq_words(language, 200)
    assert len(words) > 150 and all(CO.WORD_RE.fullmatch(w) for w in words)


def test_unknown_language_is_an_error():
    with pytest.raises(CO.CorpusError, match="'xx'"):
        CO.wordfreq_words("xx", 10)


def test_word_pools_are_limited_per_font_to_characters_a_training_font_draws():
    data = C.load_config(profile="smoke", overrides=["data.corpus_words=300"]).data
    sans, serif = F.load_fonts(["DejaVu Sans", "DejaVu Serif"])
    corpus = CO.build_corpus(data, [sans, serif], train_fonts=[serif])
    assert corpus.allowed[sans.name] <= corpus.allowed[serif.name] | {" "}
    for font in (sans, serif):
        for words in corpus.pools[font.name].values():
            assert all(not font.missing(w) for w in words)
