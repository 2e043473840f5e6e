"""The two LM benchmarks' measuring parts (the Ray run itself is exercised in test_train)."""

from __future__ import annotations

import argparse

import pytest

from seqlab.bench import finetune as bench_finetune
from seqlab.bench import generate as bench_generate
from seqlab.config import ConfigError


def test_ray_steady_rate_uses_tokens_and_time_after_warmup():
    history = [
        {"step": 5, "tokens_seen": 500, "elapsed_s": 40.0, "cpu_s": 30.0},  # start-up: excluded
        {"step": 10, "tokens_seen": 1000, "elapsed_s": 41.0, "cpu_s": 30.5},
        {"step": 15, "tokens_seen": 1500, "elapsed_s": 42.0, "cpu_s": 31.0},
    ]
    assert bench_finetune._ray_steady_rate(history, warmup=10) == pytest.approx(500.0)
    assert bench_finetune._ray_steady_rate(history, warmup=5) == pytest.approx(1000 / 2.0)
    assert bench_finetune._ray_steady_rate(history, warmup=5, clock="cpu_s") == pytest.approx(1000.0)


def test_bare_loop_measures_a_positive_rate(tiny_gpt2_dir, corpus_dir):
    from seqlab.config import load_config
    from seqlab.lm.config import FinetuneJobConfig
    from seqlab.lm.data import pack_blocks, read_split_texts
    from seqlab.lm.finetune import prepare_model_and_tokenizer

    cfg = load_config(FinetuneJobConfig, None, ["--train.batch_size=2", "--data.block_size=16"])
    cfg.model.base_model = str(tiny_gpt2_dir)
    spec, tokenizer, _ = prepare_model_and_tokenizer(cfg, str(corpus_dir))
    texts = read_split_texts(str(corpus_dir), "train")
    blocks = pack_blocks(tokenizer(texts)["input_ids"], 16, tokenizer.eos_token_id)
    wall, cpu = bench_finetune.bare_loop(spec, blocks, cfg, warmup=1, steps=3, device="cpu")
    assert wall > 0 and cpu > 0


def test_generate_benchmark_prints_all_variants(capsys, tiny_gpt2_dir):
    parser = argparse.ArgumentParser()
    bench_generate.add_arguments(parser)
    args = parser.parse_args(
        ["--model", str(tiny_gpt2_dir), "--prompt-tokens", "8", "--new-tokens", "8", "--repeats", "1"]
    )
    assert bench_generate.run(args) == 0
    out = capsys.readouterr().out
    for name in ("KV cache", "no cache (baseline)", "transformers.generate", "speed-up"):
        assert name in out
    args.new_tokens = 100  # 8 + 100 tokens do not fit the tiny model's 64-token context
    with pytest.raises(ConfigError, match="must fit the model's context of 64"):  # exit 2 from main
        bench_generate.run(args)


def test_generate_benchmark_refuses_a_scorer_and_a_prompt_too_long_on_stderr(capsys, tmp_path, tiny_gpt2_dir):
    from seqlab.artifacts import write_manifest
    from seqlab.cli import main

    (tmp_path / "config.json").write_text("{}", encoding="utf-8")
    write_manifest(tmp_path, stage="scorer")
    assert main(["bench", "generate", "--model", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert "--model:" in captured.err and "is a scorer artifact" in captured.err and not captured.out
    assert main(["bench", "generate", "--model", str(tiny_gpt2_dir), "--prompt-tokens", "100000"]) == 2
    captured = capsys.readouterr()
    assert "must fit the model's context" in captured.err and not captured.out
