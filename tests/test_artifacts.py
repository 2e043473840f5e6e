"""Artifact manifests: inputs are named by content, not by the path they were reached through."""

from __future__ import annotations

import os

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
