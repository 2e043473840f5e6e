"""``seqlab normalize`` on text, JSONL and Parquet, stdin/stdout, switches and clear errors."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from seqlab.cli import main
from seqlab.text import normalize, preprocess

DOCS = ["ذَهَبَ الطّالِبُ إلى المَكتبةِ ٣ مرات", "زوروا www.mithal.org للمزيد", "المدرسةُ جميلةٌ"]


def test_text_file_to_file(tmp_path):
    src, out = tmp_path / "in.txt", tmp_path / "sub" / "out.txt"
    src.write_text("\n".join(DOCS) + "\n", encoding="utf-8")
    assert main(["normalize", str(src), "--out", str(out)]) == 0
    assert out.read_text(encoding="utf-8").splitlines() == [normalize(d) for d in DOCS]
    assert out.read_text(encoding="utf-8").splitlines()[0] == "ذهب الطالب الي المكتبة مرات"


def test_stdin_to_stdout_with_flag_and_override(monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n".join(DOCS) + "\n"))
    assert main(["normalize", "--teh-marbuta", "--remove_digits=false"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [normalize(d, teh_marbuta=True, remove_digits=False) for d in DOCS]
    assert lines[2] == "المدرسه جميله"


def test_config_yaml_then_no_flag(tmp_path, monkeypatch, capsys):
    cfg = tmp_path / "norm.yaml"
    cfg.write_text("teh_marbuta: true\nnormalize_alef: true\n", encoding="utf-8")
    monkeypatch.setattr(sys, "stdin", io.StringIO("إلى المدرسة\n"))
    assert main(["normalize", "--config", str(cfg), "--no-normalize-alef"]) == 0
    assert capsys.readouterr().out == "إلي المدرسه\n"


def test_tokens_mode(tmp_path, capsys):
    src = tmp_path / "in.txt"
    src.write_text("\n".join(DOCS), encoding="utf-8")
    assert main(["normalize", str(src), "--tokens"]) == 0
    assert capsys.readouterr().out.splitlines() == [" ".join(preprocess(d)) for d in DOCS]


def test_jsonl_field_with_null_and_out_field(tmp_path):
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    records = [{"id": i, "body": d} for i, d in enumerate(DOCS)] + [{"id": 9, "body": None}]
    src.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n\n", encoding="utf-8")
    assert main(["normalize", str(src), "--field", "body", "--out-field", "body_norm", "-o", str(out)]) == 0
    got = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["body"] for r in got] == [*DOCS, None]
    assert [r["body_norm"] for r in got] == [*(normalize(d) for d in DOCS), None]
    assert [r["id"] for r in got] == [0, 1, 2, 9]


def test_parquet_column_in_place(tmp_path):
    src, out = tmp_path / "in.parquet", tmp_path / "out.parquet"
    pq.write_table(pa.table({"url": ["a", "b", "c", "d"], "text": [*DOCS, None]}), src)
    assert main(["normalize", str(src), "--column", "text", "--out", str(out)]) == 0
    table = pq.read_table(out)
    assert table.column_names == ["url", "text"]
    assert table.column("text").to_pylist() == [*(normalize(d) for d in DOCS), None]


def test_parquet_new_column_with_switches_and_tokens(tmp_path):
    # the column goes through normalize_batch's Arrow route; --tokens still goes value by value
    src, out = tmp_path / "in.parquet", tmp_path / "out.parquet"
    pq.write_table(pa.table({"text": [*DOCS, None, "مدرسة\u00a0\ufefb"]}), src)
    argv = [
        "normalize",
        str(src),
        "--column",
        "text",
        "--out-field",
        "norm",
        "--teh-marbuta",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    table = pq.read_table(out)
    assert table.column_names == ["text", "norm"]
    assert table.column("norm").to_pylist() == [
        *(normalize(d, teh_marbuta=True) for d in [*DOCS]),
        None,
        normalize("مدرسة\u00a0\ufefb", teh_marbuta=True),
    ]
    assert (
        main(["normalize", str(src), "--column", "text", "--out-field", "tok", "--tokens", "--out", str(out)])
        == 0
    )
    tokens = pq.read_table(out).column("tok").to_pylist()
    assert tokens[:-2] == [" ".join(preprocess(d)) for d in DOCS]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["normalize", "{tmp}/missing.txt"], "no such file"),
        (["normalize", "{tmp}"], "is a directory"),
        (["normalize", "{tmp}/data.csv"], "cannot tell the format"),
        (["normalize", "{tmp}/data.jsonl", "--field", "body"], "no field 'body'"),
        (["normalize", "{tmp}/data.parquet", "--column", "body"], "no column 'body'"),
        (["normalize", "{tmp}/bad.jsonl"], "not valid JSON"),
        (
            ["normalize", "{tmp}/surrogate.jsonl"],
            "surrogate.jsonl:2: field 'text' holds an unpaired surrogate",
        ),
        (["normalize", "{tmp}/latin1.txt"], "latin1.txt:3: not valid UTF-8 (byte 0xe9"),
        (["normalize", "{tmp}/data.jsonl", "-o", ""], "--out is empty: give a path"),
    ],
    ids=[
        "missing-file",
        "directory",
        "unknown-format",
        "missing-field",
        "missing-column",
        "bad-json",
        "surrogate",
        "bad-byte",
        "empty-out",
    ],
)
def test_clear_errors(tmp_path, capsys, argv, message):
    (tmp_path / "data.csv").write_text("a,b\n", encoding="utf-8")
    (tmp_path / "data.jsonl").write_text('{"text": "نص"}\n', encoding="utf-8")
    (tmp_path / "bad.jsonl").write_text('{"text": "نص"\n', encoding="utf-8")
    (tmp_path / "surrogate.jsonl").write_text('{"text": "نص"}\n{"text": "\\ud800"}\n', encoding="utf-8")
    (tmp_path / "latin1.txt").write_bytes("سطر\nسطر\ncaf\u00e9\n".encode("utf-8")[:-4] + b"\xe9\n")
    pq.write_table(pa.table({"text": ["نص"]}), tmp_path / "data.parquet")
    assert main([a.format(tmp=tmp_path) for a in argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_subprocess_console_script(tmp_path):
    script = Path(sys.executable).with_name("seqlab")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "seqlab"]
    done = subprocess.run(
        [*cmd, "normalize", "--no-remove-diacritics"],
        input="\n".join(DOCS) + "\n",
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [normalize(d, remove_diacritics=False) for d in DOCS]


def test_output_never_touches_a_file_named_like_a_temp_file(tmp_path):
    """The old fixed OUT.parquet.tmp overwrote and then deleted a user's file of that name."""
    src, out = tmp_path / "in.parquet", tmp_path / "o.parquet"
    pq.write_table(pa.table({"text": DOCS}), src)
    (tmp_path / "o.parquet.tmp").write_text("keep", encoding="utf-8")
    (tmp_path / "o.txt.tmp").write_text("keep too", encoding="utf-8")
    assert main(["normalize", str(src), "--column", "text", "-o", str(out)]) == 0
    assert main(["normalize", str(src), "--column", "text", "-o", str(tmp_path / "o.txt")]) == 0
    assert (tmp_path / "o.parquet.tmp").read_text(encoding="utf-8") == "keep"
    assert (tmp_path / "o.txt.tmp").read_text(encoding="utf-8") == "keep too"
    assert pq.read_table(out).column("text").to_pylist() == [normalize(d) for d in DOCS]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no temp file left behind"


def test_output_through_a_symlink_writes_its_target_and_keeps_the_link(tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("\n".join(DOCS) + "\n", encoding="utf-8")
    target, link = tmp_path / "real" / "out.txt", tmp_path / "out-link.txt"
    target.parent.mkdir()
    target.write_text("old\n", encoding="utf-8")
    target.chmod(0o640)
    link.symlink_to(target)
    assert main(["normalize", str(src), "-o", str(link)]) == 0
    assert link.is_symlink() and link.resolve() == target.resolve()
    assert target.read_text(encoding="utf-8").splitlines() == [normalize(d) for d in DOCS]
    assert (target.stat().st_mode & 0o777) == 0o640, "replacing a file keeps its mode"


def test_output_to_a_fifo_streams_into_it(tmp_path):
    import os
    import threading

    src, fifo = tmp_path / "in.txt", tmp_path / "pipe"
    src.write_text("\n".join(DOCS) + "\n", encoding="utf-8")
    os.mkfifo(fifo)
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text(encoding="utf-8")))
    reader.start()
    assert main(["normalize", str(src), "-o", str(fifo)]) == 0
    reader.join(timeout=30)
    assert got and got[0].splitlines() == [normalize(d) for d in DOCS]
    assert fifo.is_fifo(), "a FIFO is never replaced by a regular file"


@pytest.mark.parametrize("where", ["a-directory", "under-a-file"])
def test_unwritable_output_is_a_one_line_error(tmp_path, capsys, where):
    src = tmp_path / "in.txt"
    src.write_text(DOCS[0] + "\n", encoding="utf-8")
    (tmp_path / "dir").mkdir()
    (tmp_path / "file").write_text("x", encoding="utf-8")
    out = tmp_path / "dir" if where == "a-directory" else tmp_path / "file" / "out.txt"
    assert main(["normalize", str(src), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("seqlab normalize: cannot write") and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_dash_out_is_stdout_and_a_file_named_dash_is_left_alone(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "-").write_text(DOCS[0] + "\n", encoding="utf-8")  # a file that happens to be named "-"
    src = tmp_path / "in.txt"
    src.write_text("\n".join(DOCS) + "\n", encoding="utf-8")
    assert main(["normalize", str(src), "-o", "-"]) == 0
    assert capsys.readouterr().out.splitlines() == [normalize(d) for d in DOCS]
    assert (tmp_path / "-").read_text(encoding="utf-8") == DOCS[0] + "\n"
