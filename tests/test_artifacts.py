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
