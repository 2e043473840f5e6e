"""Parity with CAMeL Tools, the reference Arabic toolkit, where our definitions and theirs agree.

Compared steps: diacritics (``dediac_ar``), alef forms (``normalize_alef_ar``), alef maksura
(``normalize_alef_maksura_ar``) and teh marbuta (``normalize_teh_marbuta_ar``). Our other steps
(URLs, digits, tatweel, presentation forms, invisible characters, whitespace) are switched off.
"""

from __future__ import annotations

import pytest

camel_dediac = pytest.importorskip("camel_tools.utils.dediac")
camel_norm = pytest.importorskip("camel_tools.utils.normalize")

from seqlab.text import normalize  # noqa: E402

ONLY_SHARED_STEPS = {
    "remove_urls": False,
    "remove_digits": False,
    "remove_tatweel": False,
    "fold_presentation_forms": False,
    "remove_invisible": False,
    "collapse_whitespace": False,
}

# The known, intended differences, found by comparing every BMP code point: CAMeL's dediac_ar covers
# U+064B-0652 and U+0670 like ours, but not the Quranic annotation marks U+06D6-06ED, which we remove.
# Everything else (the alef set إأآٱ, ى -> ي, ة -> ه) agrees exactly.
KNOWN_DIFFERENCES = {chr(c) for c in range(0x06D6, 0x06EE)}

SENTENCES = [
    "ذَهَبَ الطّالِبُ إلى المَكْتَبَةِ فِي الصَّباحِ البَاكِرِ.",
    "إِنَّ العِلْمَ نُورٌ، وَالجَهْلَ ظَلامٌ دامِسٌ.",
    "آمَنَ القَوْمُ بِأَنَّ الصَّبْرَ مِفْتاحُ كُلِّ فَرَجٍ.",
    "هٰذِهِ مَدينَةٌ قَديمَةٌ تَقَعُ عَلى ضِفافِ النَّهْرِ الكَبيرِ.",
    "ٱقْرَأْ كِتاباً مُفيداً كُلَّ أُسْبوعٍ، وَلا تَنْسَ الرِّياضَةَ.",
    "سَأَلَ الطِّفْلُ أُمَّهُ: مَتى نَعودُ إِلى البَيْتِ؟",
    "تَجِدُ فِي المُسْتَشْفى أَطِبّاءَ مَهَرَةً يَعْمَلونَ لَيْلاً وَنَهاراً.",
]
# A line with Quranic annotation marks (small high meem, small high jeem, end of ayah), authored here.
QURANIC_STYLE = "وَٱصْبِرْ عَلَىٰ مَا يَقُولُونَۖ وَٱهْجُرْهُمْ هَجْرًا جَمِيلًاۚ ۝"


def camel(text: str, teh_marbuta: bool = False) -> str:
    text = camel_norm.normalize_alef_maksura_ar(camel_norm.normalize_alef_ar(camel_dediac.dediac_ar(text)))
    return camel_norm.normalize_teh_marbuta_ar(text) if teh_marbuta else text


@pytest.mark.parametrize("teh_marbuta", [False, True])
@pytest.mark.parametrize("sentence", SENTENCES, ids=[f"s{i}" for i in range(len(SENTENCES))])
def test_same_output_on_diacritized_sentences(sentence, teh_marbuta):
    ours = normalize(sentence, teh_marbuta=teh_marbuta, **ONLY_SHARED_STEPS)
    assert ours == camel(sentence, teh_marbuta)
    assert ours != sentence  # the sentence did exercise the steps


def test_differences_are_exactly_the_known_ones():
    differing = set()
    for code in range(0x10000):
        if 0xD800 <= code <= 0xDFFF:
            continue
        char = chr(code)
        if normalize(char, teh_marbuta=True, **ONLY_SHARED_STEPS) != camel(char, True):
            differing.add(char)
    assert differing == KNOWN_DIFFERENCES


def test_quranic_marks_are_the_only_difference_in_a_marked_line():
    ours = normalize(QURANIC_STYLE, **ONLY_SHARED_STEPS)
    theirs = camel(QURANIC_STYLE)
    assert ours != theirs
    assert "".join(c for c in theirs if c not in KNOWN_DIFFERENCES) == ours
