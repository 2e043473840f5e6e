"""Hand-written examples for every normalization step, its switch, the config plumbing and both code paths."""

from __future__ import annotations

import pytest

from seqlab.config import load_config
from seqlab.text import NormalizeConfig, normalize
from seqlab.text.config import CHAR_SWITCHES, SWITCHES, TOKEN_SWITCHES
from seqlab.text.normalize import _NUMPY_MIN_CHARS, _plan_for, _translate_numpy, compile_plan

# (input, switches, expected). Words are chosen so that only the step under test changes them.
STEP_ROWS = {
    # URLs: any scheme, bare scheme, www. in any case, glued to a word; up to the next whitespace.
    "url-https": ("زوروا https://example.com/a?b=1&c=%D8 اليوم", {}, "زوروا اليوم"),
    "url-http-bare": ("رابط http:// فارغ", {}, "رابط فارغ"),
    "url-other-scheme": ("ملف ftp://files.mithal.net/x.zip هنا", {}, "ملف هنا"),
    "url-www": ("موقع www.mithal.org للتسجيل", {}, "موقع للتسجيل"),
    "url-www-upper": ("موقع WWW.Mithal.ORG/Path للتسجيل", {}, "موقع للتسجيل"),
    "url-glued": ("انظرhttps://x.example/y،", {}, "انظر"),
    "url-not-a-url": ("show.me في wiki.", {}, "show.me في wiki."),
    "url-off": ("موقع www.mithal.org", {"remove_urls": False}, "موقع www.mithal.org"),
    # Digits: the three ranges, also inside a word.
    "digits-ascii": ("عام 2024 ميلادي", {}, "عام ميلادي"),
    "digits-arabic-indic": ("عام ٢٠٢٤ ميلادي ٠١٢٣٤٥٦٧٨٩", {}, "عام ميلادي"),
    "digits-extended": ("عام ۲۰۲۴ ميلادي ۰۱۲۳۴۵۶۷۸۹", {}, "عام ميلادي"),
    "digits-in-word": ("الفصل3 والباب٤", {}, "الفصل والباب"),
    "digits-off": ("عام 2024 و٢٠٢٤ و۲۰۲۴", {"remove_digits": False}, "عام 2024 و٢٠٢٤ و۲۰۲۴"),
    # Alef forms.
    "alef-hamza-above": ("أحمد", {}, "احمد"),
    "alef-hamza-below": ("إسلام", {}, "اسلام"),
    "alef-madda": ("آخر", {}, "اخر"),
    "alef-wasla": ("ٱلكتاب", {}, "الكتاب"),
    "alef-off": ("أحمد إسلام آخر ٱلكتاب", {"normalize_alef": False}, "أحمد إسلام آخر ٱلكتاب"),
    # Alef maksura.
    "yaa": ("على مستشفى", {}, "علي مستشفي"),
    "yaa-off": ("على", {"normalize_yaa": False}, "على"),
    # Diacritics (each code point is also covered one by one below).
    "diacritics-word": ("مَدْرَسَةٌ كَبِيرَةٌ جِدًّا", {}, "مدرسة كبيرة جدا"),
    "superscript-alef": ("هٰذا", {}, "هذا"),
    "diacritics-off": ("كَتَبَ", {"remove_diacritics": False}, "كَتَبَ"),
    # Tatweel.
    "tatweel": ("جمـــيل", {}, "جميل"),
    "tatweel-alone": ("كلمة ـــ كلمة", {}, "كلمة كلمة"),
    "tatweel-off": ("جمـــيل", {"remove_tatweel": False}, "جمـــيل"),
    # Presentation forms, folded first and then through the other steps.
    "lam-alef-ligature-FEFB": ("\ufefb", {}, "لا"),
    "alef-isolated-FE8D": ("\ufe8d", {}, "ا"),
    "lam-alef-hamza-FEF7": ("\ufef7", {}, "لا"),
    "word-in-contextual-forms": ("\ufe91\ufef4\ufe96", {}, "بيت"),
    "allah-ligature-FDF2": ("\ufdf2", {}, "الله"),
    "salla-ligature-FDFA": ("\ufdfa", {}, "صلي الله عليه وسلم"),
    "fathatan-isolated-FE70": ("باب \ufe70 دار", {}, "باب دار"),
    "tatweel-fathatan-FE71": ("باب\ufe71", {}, "باب"),
    "presentation-off": ("\ufefb\ufe8d", {"fold_presentation_forms": False}, "\ufefb\ufe8d"),
    "presentation-fold-keeps-alef": ("\ufef7", {"normalize_alef": False}, "لأ"),
    # Whitespace.
    "whitespace": ("  كتاب \t\n جديد\u00a0\u3000قديم\r\n ", {}, "كتاب جديد قديم"),
    "whitespace-after-removals": ("يوم ١٢ و ١٣ ــ", {}, "يوم و"),
    "whitespace-off": (" كتاب\t\tجديد ", {"collapse_whitespace": False}, " كتاب\t\tجديد "),
    # Optional folds, off by default.
    "teh-marbuta-default-off": ("مدرسة", {}, "مدرسة"),
    "teh-marbuta-on": ("مدرسة جميلة", {"teh_marbuta": True}, "مدرسه جميله"),
    "hamza-default-off": ("مسؤول بيئة", {}, "مسؤول بيئة"),
    "hamza-on": ("مسؤول بيئة", {"fold_hamza": True}, "مسوول بيية"),
    # Everything at once, in a sentence.
    "sentence": (
        "قالَ المُعَلِّمُ: إنَّ الدرسَ سيبدأُ الساعة ٩ على www.dars.example ـــ فانتبهوا!",
        {},
        "قال المعلم: ان الدرس سيبدا الساعة علي فانتبهوا!",
    ),
    "empty": ("", {}, ""),
    "latin-untouched": ("Hello, World!", {}, "Hello, World!"),
}


@pytest.mark.parametrize(("text", "switches", "expected"), STEP_ROWS.values(), ids=STEP_ROWS.keys())
def test_step(text, switches, expected):
    assert normalize(text, **switches) == expected


@pytest.mark.parametrize("code", [*range(0x064B, 0x0653), 0x0670, *range(0x06D6, 0x06EE)], ids=hex)
def test_every_diacritic_and_quranic_mark_is_removed(code):
    assert normalize(f"ك{chr(code)}تب") == "كتب"
    assert normalize(f"ك{chr(code)}تب", remove_diacritics=False) == f"ك{chr(code)}تب"


INVISIBLE = {
    "ZWSP": "\u200b",
    "ZWNJ": "\u200c",
    "ZWJ": "\u200d",
    "LRM": "\u200e",
    "RLM": "\u200f",
    "ALM": "\u061c",
    "RLE": "\u202b",
    "PDF": "\u202c",
    "RLO": "\u202e",
    "LRI": "\u2066",
    "RLI": "\u2067",
    "PDI": "\u2069",
    "WJ": "\u2060",
    "BOM": "\ufeff",
    "SHY": "\u00ad",
}


@pytest.mark.parametrize("char", INVISIBLE.values(), ids=INVISIBLE.keys())
def test_invisible_characters_are_removed(char):
    assert normalize(f"{char}سل{char}ام{char}") == "سلام"
    assert normalize(f"سل{char}ام", remove_invisible=False) == f"سل{char}ام"


def test_invisible_character_cannot_hide_a_url():
    # Removing the ZWSP reveals "https://"; URLs go after the character maps, so one pass is enough.
    once = normalize("نص ht\u200btps://mithal.example/x نص")
    assert once == "نص نص"
    assert normalize(once) == once


def test_config_object_and_model_dump_agree():
    cfg = NormalizeConfig(teh_marbuta=True, remove_digits=False, stem=False)
    text = "مدرسة ٣ أولى"
    assert normalize(text, cfg) == normalize(text, **cfg.model_dump()) == "مدرسه ٣ اولي"
    # Per-call switches override the config object.
    assert normalize(text, cfg, teh_marbuta=False) == "مدرسة ٣ اولي"


def test_token_level_switches_are_accepted_and_ignored():
    text = "في المدرسة"
    for name in TOKEN_SWITCHES:
        assert normalize(text, **{name: False}) == normalize(text) == text


def test_unknown_switch_is_named():
    with pytest.raises(TypeError, match="remove_url"):
        normalize("نص", remove_url=True)


def test_non_bool_switch_is_named():
    with pytest.raises(TypeError, match="teh_marbuta"):
        normalize("نص", teh_marbuta="yes")


def test_non_str_text_raises_type_error():
    with pytest.raises(TypeError, match="str"):
        normalize(None)


def test_config_fields_are_documented_and_partitioned():
    assert set(CHAR_SWITCHES) | set(TOKEN_SWITCHES) == set(SWITCHES)
    assert not set(CHAR_SWITCHES) & set(TOKEN_SWITCHES)
    for name, field in NormalizeConfig.model_fields.items():
        assert field.description, name
        assert field.annotation is bool, name


def test_config_from_yaml_and_overrides(tmp_path):
    path = tmp_path / "norm.yaml"
    path.write_text("teh_marbuta: true\nremove_digits: false\n", encoding="utf-8")
    cfg = load_config(NormalizeConfig, path, ["--remove_digits=true"])
    assert (cfg.teh_marbuta, cfg.remove_digits) == (True, True)
    assert normalize("مدرسة ٥", cfg) == "مدرسه"


def _switch_combinations() -> list[tuple[bool, ...]]:
    """Defaults, all off, all on, and the defaults with each switch flipped."""
    default = tuple(NormalizeConfig.model_fields[name].default for name in CHAR_SWITCHES)
    flipped = [tuple(v ^ (i == j) for j, v in enumerate(default)) for i in range(len(default))]
    return [default, (False,) * len(default), (True,) * len(default), *flipped]


def test_translate_table_is_idempotent_for_switch_combinations():
    # Every value the table produces must itself be left alone by the table.
    for key in _switch_combinations():
        table = compile_plan(key).table
        for code, value in enumerate(table):
            if value is None or value == code:
                continue
            out = chr(value) if isinstance(value, int) else value
            assert out.translate(table) == out, (key, hex(code))


LONG = (
    "قالَ المُعَلِّمُ إنَّ الامتحانَ يومَ ١٢ و 13 و ۱۴، راجعوا https://mithal.example/x?y=1 أو www.mithal.org "
    "ثُمَّ هٰذا الـــدرسُ مهمٌّ جداً \u200fعلى\u200d الجميع😀 𝐀 مستشفى ٱلمدينة\t\n"
) * 4


def test_long_text_uses_the_numpy_path_and_matches_translate():
    assert len(LONG) > _NUMPY_MIN_CHARS
    plan = _plan_for(None, {})
    fast = _translate_numpy(LONG, plan)
    assert fast is not None
    assert fast == LONG.translate(plan.table)
    assert "😀" in normalize(LONG) and "𝐀" in normalize(LONG)


@pytest.mark.parametrize(
    "tail", ["\ufefb", "\udc00", "\uffff", "\ufdfa"], ids=["ligature", "lone-surrogate", "U+FFFF", "FDFA"]
)
def test_long_text_falls_back_to_translate_when_it_must(tail):
    plan = _plan_for(None, {})
    text = LONG + tail
    assert _translate_numpy(text, plan) is None
    assert normalize(text) == f"{normalize(LONG)} {normalize(tail)}"
