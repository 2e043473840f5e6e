"""Property test of every verb's flags: random values (negative, huge, NaN, inf, text, empty) never give a
traceback. Either the command refuses them with a usage or config error (exit 2, one message), or it gets
as far as its real work, which is replaced here by a sentinel so nothing heavy runs."""

from __future__ import annotations

import argparse

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seqlab.cli import build_verb_parser, main


class ReachedWork(Exception):
    """The flags were accepted: the verb called its real work."""


def _reached(*args, **kwargs):
    raise ReachedWork


# verb -> (module attribute to replace with the sentinel, fixed flags the verb needs)
WORK = {
    "corpus": ("seqlab.synth.corpus.generate_documents", []),
    "site": ("seqlab.synth.site.LocalSite", []),
    "scrape": ("seqlab.ray_utils.init_ray", []),
    "tune": ("seqlab.tune.job.run_tune_job", []),
    "finetune": ("seqlab.lm.finetune.run_finetune", []),
    "generate": ("seqlab.lm.generator.load_generator", []),
    "score": ("seqlab.models.load_scorer", []),
}
SKIP = {"--help", "--version", "--config", "--resume", "--input", "--sentences"}  # paths: tested elsewhere

values = st.one_of(
    st.integers(-(10**13), 10**13).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["nan", "-inf", "1e12", "-0", "0", "", " ", "abc", "١٢", "--", "=", "0x10"]),
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=6),
)


def _value_flags(verb: str) -> list[argparse.Action]:
    parser, _ = build_verb_parser(verb)
    return [
        a
        for a in parser._actions
        if a.option_strings
        and a.option_strings[-1] not in SKIP
        and a.nargs in (None, "?")
        and not isinstance(a, (argparse._StoreTrueAction, argparse._HelpAction))
    ]


@pytest.mark.parametrize("verb", sorted(WORK))
def test_random_flag_values_never_give_a_traceback(verb, monkeypatch, tmp_path_factory, capsys):
    import importlib

    target, fixed = WORK[verb]
    module, attr = target.rsplit(".", 1)
    monkeypatch.setattr(importlib.import_module(module), attr, _reached)
    flags = _value_flags(verb)
    assert flags, f"{verb} has no value flags to fuzz"

    @settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(st.lists(st.tuples(st.sampled_from(flags), values), min_size=1, max_size=4))
    def check(chosen):
        cwd = tmp_path_factory.mktemp("fuzz")
        argv = [verb, *fixed]
        for action, value in chosen:
            argv.append(f"{action.option_strings[-1]}={value}")
        monkeypatch.chdir(cwd)  # relative paths a value may name land in a scratch dir
        try:
            code = main(argv)
        except ReachedWork:
            return
        except SystemExit as exc:  # argparse: a usage error is exit 2 with its message
            assert exc.code in (0, 2), (argv, exc.code)
            return
        assert code == 2, (argv, code)
        assert "Traceback" not in capsys.readouterr().err

    check()


# --- properties of every verb's paths, outputs and configs ---------------------------------------------------

from seqlab.cli import PATH_OPTIONS, STREAM_OUT_VERBS, VERBS  # noqa: E402

NEEDS = {"score": {"--model": "m", "": "x"}, "generate": {"--model": "m", "--prompt": "x"}}  # required flags


def _needs(verb: str, without: str = "") -> list[str]:
    return [
        part
        for flag, value in NEEDS.get(verb, {}).items()
        if flag != without
        for part in (flag, value)
        if part
    ]


def _path_flags(verb: str) -> list[str]:
    parser, _ = build_verb_parser(verb)
    dests = {a.dest for a in parser._actions if a.option_strings}
    return [f"--{d.replace('_', '-')}" for d in PATH_OPTIONS if d in dests]


@pytest.mark.parametrize("verb", sorted(VERBS))
def test_no_verb_takes_an_empty_path_or_writes_a_file_named_dash(verb, monkeypatch, tmp_path, capsys):
    import seqlab.ray_utils

    monkeypatch.setattr(seqlab.ray_utils, "init_ray", _reached)  # nothing may get as far as Ray
    monkeypatch.chdir(tmp_path)
    for flag in _path_flags(verb):
        argv = [verb, *_needs(verb, without=flag), f"{flag}="]
        assert main(argv) == 2, argv
        assert f"{flag} is empty: give a path" in capsys.readouterr().err
    if "--out" in _path_flags(verb) and verb not in STREAM_OUT_VERBS:
        assert main([verb, *_needs(verb), "--out", "-"]) == 2
        assert "--out - means stdout" in capsys.readouterr().err
    assert not (tmp_path / "-").exists() and not list(tmp_path.iterdir())


@settings(max_examples=60, deadline=None)
@given(
    st.recursive(
        st.floats(allow_nan=True, allow_infinity=True) | st.integers() | st.text(max_size=3) | st.none(),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
        max_leaves=12,
    )
)
def test_no_json_seqlab_writes_holds_nan_or_infinity(value):
    import json
    import math

    from seqlab.artifacts import json_text

    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")

    text = json_text({"metrics": value})
    back = json.loads(text, parse_constant=refuse)  # what a strict parser (JavaScript, jq) accepts

    def non_finite(v) -> int:
        if isinstance(v, float):
            return int(not math.isfinite(v))
        if isinstance(v, dict):
            return sum(map(non_finite, v.values()))
        return sum(map(non_finite, v)) if isinstance(v, list) else 0

    assert len(back.get("null_because", {})) == non_finite(value)


@pytest.mark.parametrize("verb", ["tune", "finetune", "scrape", "normalize", "serve"])
def test_a_duplicate_key_in_any_config_is_an_error_naming_it(verb, tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("out: a\nsmoke_test: true\nout: b\n", encoding="utf-8")
    argv = {"scrape": ["--config", str(config)], "serve": ["--config", str(config), "--scorer", "x"]}
    assert main([verb, *argv.get(verb, ["--config", str(config)])]) == 2
    assert (
        f"{config}: line 3: not valid YAML: duplicate key 'out' (first on line 1)" in capsys.readouterr().err
    )
