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
