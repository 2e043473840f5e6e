"""``seqlab generate`` and ``seqlab finetune`` argument handling (the Ray run itself is in test_train)."""

from __future__ import annotations

import json

import pytest

from seqlab.cli import main

PROMPT = "افتتحت البلدية مكتبة"


def _generate(capsys, model_dir, *extra: str) -> tuple[int, str, str]:
    rc = main(["generate", "--model", str(model_dir), "--prompt", PROMPT, "--device", "cpu", *extra])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_generate_prints_the_continued_prompt(capsys, tiny_gpt2_dir):
    rc, out, _ = _generate(capsys, tiny_gpt2_dir, "--strategy", "greedy", "--max-new-tokens", "6")
    assert rc == 0 and out.startswith(PROMPT) and len(out.strip()) > len(PROMPT)
    rc, again, _ = _generate(capsys, tiny_gpt2_dir, "--strategy", "greedy", "--max-new-tokens", "6")
    assert again == out
    rc, streamed, _ = _generate(
        capsys, tiny_gpt2_dir, "--strategy", "greedy", "--max-new-tokens", "6", "--stream"
    )
    assert rc == 0 and streamed == out
    rc, only, _ = _generate(
        capsys, tiny_gpt2_dir, "--strategy", "greedy", "--max-new-tokens", "6", "--no-prompt"
    )
    assert PROMPT + only == out


def test_generate_candidates_and_seed(capsys, tiny_gpt2_dir):
    args = ["--num-candidates", "3", "--seed", "5", "--max-new-tokens", "8", "--temperature", "1.0"]
    rc, out, _ = _generate(capsys, tiny_gpt2_dir, *args)
    assert rc == 0 and out.count(PROMPT) == 3
    assert _generate(capsys, tiny_gpt2_dir, *args)[1] == out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--temperature", "-1"], "temperature"),
        (["--top-p", "1.5"], "top_p"),
        (["--max-new-tokens", "0"], "max_new_tokens"),
        (["--stream", "--num-candidates", "2"], "--stream"),
        (["--device", "banana"], "'banana' is not a device"),
        (["--device", "cuda:9"], "cuda:9"),  # no CPU-only build, nor a 1-GPU box, has a 10th GPU
        (["--prompt", "\udcff\udcfe"], "not valid UTF-8"),  # how undecodable argv bytes arrive
    ],
)
def test_generate_rejects_bad_values(capsys, tiny_gpt2_dir, extra, message):
    rc, out, err = _generate(capsys, tiny_gpt2_dir, *extra)
    assert rc == 2 and message in err and out == ""


def test_generate_missing_model_dir(capsys, tmp_path):
    rc, _, err = _generate(capsys, tmp_path / "nope")
    assert rc == 2 and "does not exist" in err
    rc, _, err = _generate(capsys, tmp_path)
    assert rc == 2 and "config.json" in err


def test_finetune_needs_an_output_and_a_corpus(capsys, tmp_path):
    assert main(["finetune"]) == 2
    assert "--out" in capsys.readouterr().err
    rc = main(["finetune", "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--smoke_test=true"])
    assert rc == 2 and "not a corpus directory" in capsys.readouterr().err
    assert main(["finetune", "--out", str(tmp_path), "--train.epochs=0"]) == 2
    assert "train.epochs" in capsys.readouterr().err
    (tmp_path / "a-file").write_text("x", encoding="utf-8")
    assert main(["finetune", "--out", str(tmp_path / "a-file")]) == 2
    assert "is a file, not a directory" in capsys.readouterr().err
    for base, says in [("./no-such-model", "does not exist"), (str(tmp_path), "has no config.json")]:
        assert main(["finetune", "--out", str(tmp_path / "o2"), "--base-model", base]) == 2
        assert says in capsys.readouterr().err


def test_resume_refuses_a_different_run(tmp_path, corpus_dir, tokenizer):
    from seqlab.config import load_config
    from seqlab.lm.config import FinetuneJobConfig
    from seqlab.lm.finetune import _check_resume_identity
    from seqlab.lm.model import ModelSpec

    cfg = load_config(FinetuneJobConfig, None, [f"--data.path={corpus_dir}"])
    spec = ModelSpec(gpt2_config={"n_layer": 2}, seed=0)
    _check_resume_identity(str(tmp_path), cfg, spec, tokenizer)  # first run: records itself
    recorded = json.loads((tmp_path / "finetune" / "seqlab_run.json").read_text())
    assert recorded["model"]["gpt2_config"] == {"n_layer": 2}
    _check_resume_identity(str(tmp_path), cfg, spec, tokenizer)  # same run: resumes
    with pytest.raises(ValueError, match="model"):
        _check_resume_identity(str(tmp_path), cfg, ModelSpec(gpt2_config={"n_layer": 3}), tokenizer)
    cfg.data.block_size = 64
    with pytest.raises(ValueError, match="data"):
        _check_resume_identity(str(tmp_path), cfg, spec, tokenizer)


def test_generate_accepts_temperature_zero_and_says_when_it_cuts_the_prompt(capsys, tiny_gpt2_dir):
    rc, out, err = _generate(
        capsys, tiny_gpt2_dir, "--temperature", "0", "--strategy", "greedy", "--max-new-tokens", "6"
    )
    assert rc == 0 and out.startswith(PROMPT), err  # 0 means greedy, as in OpenAI's API
    rc, out, err = _generate(
        capsys, tiny_gpt2_dir, "--prompt", " ".join([PROMPT] * 40), "--max-new-tokens", "4"
    )
    assert rc == 0 and "its start was cut" in err, err  # the tiny model's context is 64 tokens


def test_finetune_names_a_missing_text_column(capsys, tmp_path, corpus_dir):
    import pandas as pd

    data = tmp_path / "corpus-in"
    (data / "corpus").mkdir(parents=True)
    frame = pd.read_parquet(corpus_dir / "corpus")
    frame.drop(columns=["text"]).to_parquet(data / "corpus" / "part-0.parquet")
    assert (
        main(["finetune", "--data", str(data), "--out", str(tmp_path / "o"), "--data.text_column=text"]) == 2
    )
    err = capsys.readouterr().err
    assert "lacks column(s) ['text']" in err and "--data.text_column" in err and "Traceback" not in err
