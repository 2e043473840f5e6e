"""Artifact manifests: inputs are named by content, not by the path they were reached through."""

from __future__ import annotations

import os

import pytest

from seqlab import artifacts


def test_input_hash_does_not_depend_on_the_path(tmp_path, monkeypatch):
    corpus = tmp_path / "runs" / "demo" / "scrape"
    artifacts.write_manifest(corpus, stage="scrape", config={"a": 1}, metrics={"documents": 3})
    monkeypatch.chdir(tmp_path)
    relative = artifacts.read_manifest("runs/demo/scrape")
    absolute = artifacts.read_manifest(str(corpus))
    via_file_uri = artifacts.read_manifest(f"file://{corpus}")
    assert relative["path"] != absolute["path"]
    assert artifacts.manifest_hash(relative) == artifacts.manifest_hash(absolute)
    assert artifacts.manifest_hash(via_file_uri) == artifacts.manifest_hash(absolute)
    out = artifacts.write_manifest(tmp_path / "tune", stage="tune", inputs={"corpus": relative})
    again = artifacts.write_manifest(tmp_path / "tune2", stage="tune", inputs={"corpus": absolute})
    assert out["inputs"]["corpus"]["hash"] == again["inputs"]["corpus"]["hash"]
    # a different corpus content gets a different hash
    artifacts.write_manifest(corpus, stage="scrape", config={"a": 2}, metrics={"documents": 3})
    assert artifacts.manifest_hash(artifacts.read_manifest(str(corpus))) != artifacts.manifest_hash(absolute)
    assert os.path.isabs(absolute["path"])


def test_atomic_writes_leave_no_temp_files(tmp_path):
    artifacts.atomic_write_text(tmp_path / "a.txt", "نص")
    artifacts.atomic_write_bytes(tmp_path / "b.bin", b"\x00\x01")
    assert (tmp_path / "a.txt").read_text(encoding="utf-8") == "نص"
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.bin"]


def test_written_files_get_the_usual_mode_not_owner_only(tmp_path):
    """mkstemp makes 0600 files; manifests on shared storage must be readable like the rest (umask)."""
    old = os.umask(0o022)
    try:
        artifacts.write_manifest(tmp_path, stage="corpus", metrics={})
        artifacts.atomic_write_text(tmp_path / "report.txt", "r")
    finally:
        os.umask(old)
    assert (tmp_path / "manifest.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "report.txt").stat().st_mode & 0o777 == 0o644


def test_atomic_output_keeps_the_old_file_when_writing_fails(tmp_path):
    import pytest

    path = tmp_path / "out.txt"
    path.write_text("old", encoding="utf-8")
    with pytest.raises(RuntimeError), artifacts.atomic_output(path, "w") as fh:
        fh.write("half")
        raise RuntimeError("disk went away")
    assert path.read_text(encoding="utf-8") == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_staged_dir_publishes_whole_directories_only(tmp_path):
    """A directory output appears complete or not at all; a failure (or Ctrl+C) keeps the old one."""
    import pytest

    target = tmp_path / "model"
    old = os.umask(0o022)
    try:
        with artifacts.staged_dir(target) as stage:
            assert not target.exists() and stage.parent == tmp_path  # staged next to it, hidden
            (stage / "weights.bin").write_bytes(b"v1")
            artifacts.write_manifest(stage, stage="finetune", metrics={})
    finally:
        os.umask(old)
    assert target.stat().st_mode & 0o777 == 0o755  # not mkdtemp's 0700
    assert sorted(p.name for p in target.iterdir()) == ["manifest.json", "weights.bin"]

    for interruption in (RuntimeError("disk full"), KeyboardInterrupt()):
        with pytest.raises(type(interruption)), artifacts.staged_dir(target) as stage:
            (stage / "weights.bin").write_bytes(b"half of v2")
            raise interruption
        assert (target / "weights.bin").read_bytes() == b"v1"
    with artifacts.staged_dir(target) as stage:  # a new version replaces the old one, files and all
        (stage / "weights.safetensors").write_bytes(b"v2")
    assert [p.name for p in target.iterdir()] == ["weights.safetensors"]
    assert [p.name for p in tmp_path.iterdir()] == ["model"], "staging or the old copy left behind"
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError), artifacts.staged_dir(tmp_path / "file"):
        pass


def _artifact(directory, stage: str):
    """Another stage's finished output, as far as the guard can tell: its manifest and some data."""
    (directory / "corpus").mkdir(parents=True)
    (directory / "corpus" / "part-0.parquet").write_bytes(b"PAR1 not really")
    artifacts.write_manifest(directory, stage=stage, metrics={"docs": 3})
    return directory


def _files(directory):
    return {p: p.read_bytes() for p in directory.rglob("*") if p.is_file()}


def test_every_stage_refuses_an_out_another_stage_made(tmp_path, capsys):
    """`seqlab corpus --out` on a finished scrape deleted its corpus/ and replaced its manifest."""
    from seqlab.cli import main

    scrape = _artifact(tmp_path / "scrape", "scrape")
    scorer = _artifact(tmp_path / "best", "scorer")
    before = {**_files(scrape), **_files(scorer)}
    for argv, there in (
        (["corpus", "--n-docs", "5", "--out", str(scrape)], "scrape"),
        (["tune", "--data", str(scrape), "--out", str(scrape)], "scrape"),
        (["finetune", "--data", str(scrape), "--out", str(scrape)], "scrape"),
        (["scrape", "http://127.0.0.1:9/", "--out", str(scorer)], "scorer"),
        (["corpus", "--n-docs", "5", "--out", str(scorer)], "scorer"),
    ):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert f"holds a {there} artifact" in err and "--overwrite" in err, (argv, err)
    assert {**_files(scrape), **_files(scorer)} == before, "nothing was touched"


def test_corpus_refuses_another_config_unless_overwrite(tmp_path, capsys):
    from seqlab.cli import main

    out = tmp_path / "c"
    assert main(["corpus", "--n-docs", "5", "--out", str(out)]) == 0
    assert main(["corpus", "--n-docs", "5", "--out", str(out)]) == 0  # the same corpus: a no-op
    assert main(["corpus", "--n-docs", "6", "--out", str(out)]) == 2
    assert "another config" in capsys.readouterr().err
    assert artifacts.read_manifest(out)["metrics"]["n_docs"] == 5
    assert main(["corpus", "--n-docs", "6", "--out", str(out), "--overwrite"]) == 0
    assert artifacts.read_manifest(out)["metrics"]["n_docs"] == 6


# --- claiming an output directory ---------------------------------------------------------------------------


def test_a_second_process_cannot_claim_an_output_another_holds(tmp_path):
    import subprocess
    import sys

    from seqlab.artifacts import OutputBusy, claim_output_dir

    out = tmp_path / "out"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from seqlab.artifacts import claim_output_dir; "
            "claim_output_dir(sys.argv[1], 'corpus'); print('held', flush=True); time.sleep(60)",
            str(out),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(
            OutputBusy, match=rf"being written by another seqlab run \(pid {holder.pid}, seqlab corpus\)"
        ):
            claim_output_dir(out, "corpus")
    finally:
        holder.kill()
        holder.wait()
    claim_output_dir(out, "corpus")  # the lock went with the process that held it
    claim_output_dir(out, "corpus")  # and this process may claim its own output again


def test_a_refused_claim_leaves_nothing_behind(tmp_path):
    from seqlab.artifacts import OutputTaken, claim_output_dir, write_manifest

    taken = tmp_path / "taken"
    write_manifest(taken, stage="tune")
    with pytest.raises(OutputTaken, match="holds a tune artifact"):
        claim_output_dir(taken, "corpus")
    assert sorted(p.name for p in taken.iterdir()) == ["manifest.json"]  # no lock file left either
    with pytest.raises(OutputTaken, match="cannot be written"):
        claim_output_dir("/sys/seqlab-test/out", "corpus")  # root cannot write there either


def test_two_corpus_runs_racing_on_one_out_leave_one_whole_corpus(tmp_path):
    import json
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "seqlab", "corpus", "--n-docs", "300", "--out", str(tmp_path / "race")]
    runs = [
        subprocess.Popen([*cmd, "--seed", str(seed)], stderr=subprocess.PIPE, text=True) for seed in (1, 2)
    ]
    codes = [run.wait(timeout=300) for run in runs]
    errors = [run.stderr.read() for run in runs]
    assert sorted(codes) == [0, 2], errors
    loser = errors[codes.index(2)]
    assert "being written by another seqlab run" in loser or "made with another config" in loser
    winner_seed = (1, 2)[codes.index(0)]
    manifest = json.loads((tmp_path / "race" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["config"]["seed"] == winner_seed
