"""Switches of the Arabic text pipeline, as one typed config that other stages embed.

``NormalizeConfig`` holds every step of :func:`seqlab.text.preprocess` as a bool field. The first
group (:data:`CHAR_SWITCHES`) is what :func:`seqlab.text.normalize` does to characters; the second
(:data:`TOKEN_SWITCHES`) only matters once the text is split into tokens. ``normalize`` accepts the
token-level switches and ignores them, so a stage that embeds ``NormalizeConfig`` can call either
``normalize(text, cfg)`` or ``normalize(text, **cfg.model_dump())``.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from seqlab.config import Config

__all__ = [
    "CHAR_SWITCHES",
    "SWITCHES",
    "TOKEN_SWITCHES",
    "NormalizeConfig",
    "corpus_normalization",
    "resolve_switches",
]


class NormalizeConfig(Config):
    """Every step of Arabic normalization and preprocessing, each one switchable.

    Character-level steps run inside :func:`seqlab.text.normalize`; the last three only in
    :func:`seqlab.text.preprocess`.
    """

    # --- character level: the seed's steps, in the seed's order ---
    remove_urls: bool = Field(
        True,
        description="drop 'scheme://...' (any scheme, also bare 'http://') and 'www....' up to whitespace",
    )
    remove_digits: bool = Field(
        True,
        description="drop digits: ASCII 0-9, Arabic-Indic U+0660-0669, Extended Arabic-Indic U+06F0-06F9",
    )
    normalize_alef: bool = Field(
        True, description="map alef forms إ أ آ ٱ (U+0625/0623/0622/0671) to bare alef ا"
    )
    normalize_yaa: bool = Field(True, description="map alef maksura ى (U+0649) to yaa ي (U+064A)")
    remove_diacritics: bool = Field(
        True,
        description="drop harakat U+064B-0652, superscript alef U+0670 and Quranic annotation marks U+06D6-06ED",
    )
    remove_tatweel: bool = Field(True, description="drop the tatweel/kashida ـ (U+0640)")
    # --- character level: additions to the seed ---
    fold_presentation_forms: bool = Field(
        True,
        description="fold Arabic presentation forms (U+FB50-FDFF, U+FE70-FEFF) to base letters with NFKC, "
        "e.g. the lam-alef ligature U+FEFB -> لا; the folded letters then go through the other steps",
    )
    remove_invisible: bool = Field(
        True,
        description="drop zero-width and bidi control characters (ZWSP, ZWNJ, ZWJ, LRM, RLM, ALM, embeddings, "
        "overrides, isolates, word joiner, BOM, soft hyphen)",
    )
    collapse_whitespace: bool = Field(
        True, description="turn every run of Unicode whitespace into one space and strip both ends"
    )
    teh_marbuta: bool = Field(False, description="map teh marbuta ة (U+0629) to heh ه (U+0647)")
    fold_hamza: bool = Field(False, description="map hamza on waw ؤ to و and hamza on yaa ئ to ي")
    # --- token level (preprocess only) ---
    remove_stopwords: bool = Field(
        True,
        description="drop Arabic-Stopwords entries (normalized like the text) and data/stopwords_extra.txt",
    )
    stem: bool = Field(True, description="stem each token with the Snowball Arabic stemmer")
    lowercase_latin: bool = Field(True, description="lowercase tokens (affects Latin-script words only)")


SWITCHES: tuple[str, ...] = tuple(NormalizeConfig.model_fields)
TOKEN_SWITCHES: tuple[str, ...] = ("remove_stopwords", "stem", "lowercase_latin")
CHAR_SWITCHES: tuple[str, ...] = tuple(name for name in SWITCHES if name not in TOKEN_SWITCHES)
_SWITCH_SET = frozenset(SWITCHES)
_DEFAULTS: tuple[bool, ...] = tuple(NormalizeConfig.model_fields[name].default for name in SWITCHES)


def resolve_switches(config: NormalizeConfig | None, switches: dict[str, Any]) -> tuple[bool, ...]:
    """The value of every field of :class:`NormalizeConfig`, in :data:`SWITCHES` order.

    Starts from ``config`` (or the defaults) and applies ``switches`` on top. Cheap enough to call once
    per document: no model is built.

    Raises:
        TypeError: a switch that is not a field of NormalizeConfig, or a value that is not a bool;
            the message names the switch.
    """
    if config is None:
        if not switches:
            return _DEFAULTS
        values = dict(zip(SWITCHES, _DEFAULTS, strict=True))
    elif isinstance(config, NormalizeConfig):
        values = {name: getattr(config, name) for name in SWITCHES}
    else:
        raise TypeError(f"config must be a NormalizeConfig or None, got {type(config).__name__}")
    if switches:
        unknown = switches.keys() - _SWITCH_SET
        if unknown:
            raise TypeError(f"unknown normalization switch(es) {sorted(unknown)}; known: {list(SWITCHES)}")
        for name, value in switches.items():
            if not isinstance(value, bool):
                raise TypeError(f"switch {name!r} must be a bool, got {type(value).__name__} {value!r}")
        values.update(switches)
    return tuple(values[name] for name in SWITCHES)


def corpus_normalization(manifest: dict[str, Any] | None) -> NormalizeConfig:
    """The switches a corpus's ``text_norm`` column was made with, read from its manifest.

    Corpus manifests carry them as ``normalize`` (written by ``seqlab scrape`` and ``seqlab corpus``);
    older scrape manifests only have them inside ``config.normalize``. A manifest with neither was made
    with the defaults.
    """
    manifest = manifest or {}
    recorded = manifest.get("normalize")
    if recorded is None:
        recorded = (manifest.get("config") or {}).get("normalize")
    if not isinstance(recorded, dict):
        return NormalizeConfig()
    return NormalizeConfig.model_validate({k: v for k, v in recorded.items() if k in _SWITCH_SET})
