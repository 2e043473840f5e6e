"""``seqlab bench normalize`` on a small text: it runs, prints every contender, and agrees with the seed."""

from __future__ import annotations

import argparse

from seqlab.bench import normalize as bench
from seqlab.text import normalize


def test_bench_documents_hit_every_step():
    docs = bench.build_documents(20_000, 500, seed=1)
    assert sum(len(d.encode("utf-8")) for d in docs) >= 20_000
    assert max(len(d) for d in docs) < 500 + max(map(len, bench.SENTENCES)) + 1
    text = " ".join(docs)
    for needle in ["https://", "www.", "\u0640", "\u064e", "\u0670", "٣", "۲", "5"]:
        assert needle in text, needle
    assert len(bench.build_documents(20_000, 0)) == 1


def test_seed_chain_agrees_with_seqlab_on_bench_text():
    seed = bench.seed_chain()
    for doc in bench.build_documents(30_000, 400, seed=2):
        assert seed(doc) == normalize(doc)


def test_bench_prints_figures_and_ratios(capsys):
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    assert bench.run(parser.parse_args(["--mb", "0.05", "--repeat", "1", "--doc-chars", "300"])) == 0
    out = capsys.readouterr().out
    for name in ["seqlab.text.normalize", "seed re.sub chain", "PyArabic chain", "goal seqlab >= 2x"]:
        assert name in out, out
    seed_line = next(line for line in out.splitlines() if "seed re.sub chain" in line)
    assert seed_line.rstrip().endswith("100.0%")  # same output as seqlab on every document


def test_a_bad_option_is_one_line_and_exit_2(capsys):
    from seqlab.cli import main

    assert main(["bench", "normalize", "--mb", "0"]) == 2
    captured = capsys.readouterr()
    assert captured.err.strip() == "seqlab bench: --mb must be > 0, --repeat >= 1, --doc-chars >= 0"
    assert not captured.out
