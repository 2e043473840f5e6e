"""``seqlab score``: texts, text/JSONL/Parquet files and stdin scored with the artifact's normalization."""

from __future__ import annotations

import io
import json

import pandas as pd
import pytest
import torch

from seqlab.cli import main
from seqlab.models import RNNRegressor, TokenizerConfig, load_scorer, save_scorer, train_tokenizer
from seqlab.text import normalize
from seqlab.text.config import NormalizeConfig

# Written for this test.
TEXTS = [
    "تطوّر الشركةُ خوارزميةً جديدة لتحليل البيانات",
    "طبخت الجدة الأرز مع العدس في المساء",
    "يتعلم الطلاب البرمجة في المدرسة",
]


@pytest.fixture(scope="module")
def scorer_dir(tmp_path_factory):
    switches = NormalizeConfig(teh_marbuta=True)
    tok = train_tokenizer([normalize(t, switches) for t in TEXTS], TokenizerConfig(min_frequency=1))
    torch.manual_seed(0)
    model = RNNRegressor(tok.get_vocab_size(), embed_dim=8, hidden=8, pooling="mean")
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    path = tmp_path_factory.mktemp("scorer")
    save_scorer(str(path), model, tok, normalize=switches)
    return path


def expected(scorer_dir, texts):
    return [round(s, 3) for s in load_scorer(str(scorer_dir)).predict(texts)]


def test_texts_on_the_command_line(capsys, scorer_dir):
    assert main(["score", "--model", str(scorer_dir), *TEXTS]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [float(line.split("\t")[0]) for line in lines] == expected(scorer_dir, TEXTS)
    assert [line.split("\t", 1)[1] for line in lines] == TEXTS
    assert main(["score", "--model", str(scorer_dir), "--scores-only", TEXTS[0]]) == 0
    assert float(capsys.readouterr().out) == expected(scorer_dir, TEXTS[:1])[0]


def test_text_jsonl_parquet_and_stdin(capsys, scorer_dir, tmp_path, monkeypatch):
    want = expected(scorer_dir, TEXTS)
    txt = tmp_path / "in.txt"
    txt.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    assert main(["score", "--model", str(scorer_dir), "--input", str(txt), "--scores-only"]) == 0
    assert [float(x) for x in capsys.readouterr().out.split()] == want

    jsonl = tmp_path / "in.jsonl"
    jsonl.write_text(
        "\n".join(json.dumps({"id": i, "body": t}) for i, t in enumerate(TEXTS)), encoding="utf-8"
    )
    out = tmp_path / "out.jsonl"
    assert (
        main(["score", "--model", str(scorer_dir), "--input", str(jsonl), "--field", "body", "-o", str(out)])
        == 0
    )
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in rows] == [0, 1, 2] and [round(r["score"], 3) for r in rows] == want

    pq_in, pq_out = tmp_path / "in.parquet", tmp_path / "out.parquet"
    pd.DataFrame({"text": TEXTS, "n": [1, 2, 3]}).to_parquet(pq_in)
    assert main(["score", "--model", str(scorer_dir), "--input", str(pq_in), "-o", str(pq_out)]) == 0
    frame = pd.read_parquet(pq_out)
    assert list(frame.columns) == ["text", "n", "score"] and [round(s, 3) for s in frame["score"]] == want

    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(TEXTS) + "\n"))
    assert main(["score", "--model", str(scorer_dir), "--input", "-", "--scores-only"]) == 0
    assert [float(x) for x in capsys.readouterr().out.split()] == want


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--model", "{model}"], "one of the two"),
        (["--model", "{model}", "x", "--input", "f.txt"], "one of the two"),
        (["--model", "/nonexistent", "x"], "does not exist"),
        (["--model", "{model}", "--input", "/nonexistent.txt"], "no such file"),
        (["--model", "{tmp}", "x"], "not a scorer artifact"),
        (["--model", "{model}", "--input", "{bad_jsonl}"], "not valid JSON"),
        (["--model", "{model}", "--input", "{weird}"], "--format"),
        (["--model", "{model}", "--input", "{surrogate}"], "unpaired surrogate"),
        (["--model", "{model}", "-o", "{tmp}", "نص"], "cannot write"),
        (["--model", "{model}", "--device", "banana", "نص"], "not a device"),
        (["--model", "{model}", "--input", "{tmp}"], "is a directory"),
        (["--model", "{model}", "--out", "", "نص"], "--out is empty"),
    ],
)
def test_bad_input_gets_one_clear_line(capsys, scorer_dir, tmp_path, argv, message):
    bad_jsonl = tmp_path / "bad.jsonl"
    bad_jsonl.write_text('{"text": "a"}\n{oops\n', encoding="utf-8")
    weird = tmp_path / "in.xyz"
    weird.write_text("a\n", encoding="utf-8")
    surrogate = tmp_path / "surrogate.jsonl"
    surrogate.write_text('{"text": "\\ud800"}\n', encoding="utf-8")
    fill = {
        "model": scorer_dir,
        "tmp": tmp_path,
        "bad_jsonl": bad_jsonl,
        "weird": weird,
        "surrogate": surrogate,
    }
    assert main(["score", *[a.format(**fill) for a in argv]]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err


def test_a_generator_directory_is_named(capsys, tmp_path):
    from seqlab.artifacts import write_manifest

    write_manifest(tmp_path, stage="finetune")
    assert main(["score", "--model", str(tmp_path), "x"]) == 2
    assert "not a scorer" in capsys.readouterr().err


def test_dash_means_stdout_and_no_file_named_dash_is_written(capsys, scorer_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["score", "--model", str(scorer_dir), "-o", "-", "--scores-only", *TEXTS]) == 0
    assert [float(x) for x in capsys.readouterr().out.split()] == expected(scorer_dir, TEXTS)
    assert not (tmp_path / "-").exists()


def test_a_broken_manifest_is_named(capsys, scorer_dir, tmp_path):
    import shutil

    broken = tmp_path / "scorer"
    shutil.copytree(scorer_dir, broken)
    (broken / "manifest.json").write_text('{"stage": "scorer",', encoding="utf-8")
    assert main(["score", "--model", str(broken), "x"]) == 2
    err = capsys.readouterr().err
    assert f"{broken / 'manifest.json'} is broken: not valid JSON" in err and err.count("\n") == 1
