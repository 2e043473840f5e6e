"""The real-word share of generated text: words (punctuation stripped) found in the training vocabulary."""

import math

from seqlab.lm.evaluate import real_word_share, vocabulary, words_of


def test_words_lose_their_punctuation_and_keep_digits():
    assert words_of("الإنترنت. «قال» 300 مليون، -") == ["الإنترنت", "قال", "300", "مليون"]


def test_share_of_known_words():
    known = vocabulary(["يعتمد الذكاء الاصطناعي على البيانات.", "قال الباحث 300 مرة"])
    assert real_word_share(["يعتمد الذكاء على البيانات،"], known) == 1.0
    assert real_word_share(["يعتمد الذكاء نقاطئجار"], known) == 2 / 3
    assert math.isnan(real_word_share(["", "..."], known))  # no word at all: no share
