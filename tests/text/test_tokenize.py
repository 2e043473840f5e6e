"""Tokenization, stop words (package list + project overrides) and stemming, and preprocess() end to end."""

from __future__ import annotations

import pytest

from seqlab.text import NormalizeConfig, load_stopwords, normalize, preprocess, stem, tokenize
from seqlab.text.tokenize import STOPWORDS_EXTRA


def test_tokenize_splits_words_from_arabic_and_latin_punctuation():
    text = "هل قرأتَ الكتاب؟ نعم، قرأته (مرتين) - Really, twice!"
    assert tokenize(text) == ["هل", "قرأتَ", "الكتاب", "نعم", "قرأته", "مرتين", "Really", "twice"]


def test_tokenize_keeps_digits_and_drops_symbol_only_pieces():
    assert tokenize("عام 2024 ... *** ٣ 😀") == ["عام", "2024", "٣"]
    assert tokenize("") == []


def test_stopwords_are_normalized_like_the_text():
    stop = load_stopwords()
    # The package lists "إلى" and "على"; normalized text has "الي" and "علي".
    assert {"الي", "علي", "في", "من", "ان"} <= stop
    assert "إلى" not in stop
    assert not any(normalize(w) != w for w in list(stop)[:2000])
    # With the alef switch off, the list keeps the hamza so it still matches the text.
    assert "إلي" in load_stopwords(normalize_alef=False)


def test_project_overrides_add_and_remove(tmp_path):
    extra = tmp_path / "extra.txt"
    extra.write_text("# comment\nمرحبا  # trailing comment\n-إلى\n\n", encoding="utf-8")
    stop = load_stopwords(extra=extra)
    assert "مرحبا" in stop
    assert "الي" not in stop  # removed by its normalized form
    assert "في" in stop
    assert "الي" in load_stopwords(extra=None)


def test_bundled_overrides_file_is_applied():
    assert STOPWORDS_EXTRA.is_file()
    assert "يا" in load_stopwords()
    assert "يا" not in load_stopwords(extra=None)


def test_stem_strips_the_article_and_suffixes():
    assert stem("الطالب") == "طالب"
    assert stem("المكتبات") != "المكتبات"
    assert stem("hello") == "hello"


def test_preprocess_drops_stop_words_and_stems():
    text = "ذَهَبَ الطّالِبُ إلى المَكتبةِ في الساعةِ ٣، ليقرأ كتاباً عن Python!"
    content = ["ذهب", "الطالب", "المكتبة", "الساعة", "ليقرا", "كتابا", "python"]
    assert preprocess(text, stem=False) == content
    tokens = preprocess(text)
    assert tokens == [stem(t) for t in content]
    assert "طالب" in tokens
    # Everything off but tokenization: all words in order, stop words included, original case.
    raw = preprocess(text, remove_stopwords=False, stem=False, lowercase_latin=False)
    assert raw == ["ذهب", "الطالب", "الي", "المكتبة", "في", "الساعة", "ليقرا", "كتابا", "عن", "Python"]


def test_preprocess_accepts_a_config_and_rejects_unknown_switches():
    cfg = NormalizeConfig(stem=False, teh_marbuta=True)
    assert preprocess("المدرسة في المدينة", cfg) == ["المدرسه", "المدينه"]
    with pytest.raises(TypeError, match="stemming"):
        preprocess("نص", stemming=True)
    with pytest.raises(TypeError):
        preprocess(b"bytes")
