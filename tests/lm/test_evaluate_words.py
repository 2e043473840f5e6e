"""The real-word share of generated text: words (punctuation stripped) found in the training vocabulary."""

import math

from seqlab.lm.evaluate import real_word_share, vocabulary, words_of


def test_words_lose_their_punctuation_and_keep_digits():
    assert words_of("الإنترنت. «قال» 300 مليون، -") == ["الإنترنت", "قال", "300", "مليون"]


def test_share_of_known_words():
    known = vocabulary(["يعتمد الذكاء الاصطناعي على البيانات.", "قال الباحث 300 مرة"])
    # the first and last word of each text are cut-off candidates and not counted
    assert real_word_share(["ـنا يعتمد الذكاء على البيانات، والخوا"], known) == 1.0
    assert real_word_share(["ـنا يعتمد الذكاء نقاطئجار على والخوا"], known) == 3 / 4
    assert math.isnan(real_word_share(["", "...", "كلمتان فقط"], known))  # no inner word: no share
