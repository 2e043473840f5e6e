"""Artifact directories: ``manifest.json`` (what produced a directory), hashes, atomic writes, output claims.

Every stage reads and writes a directory carrying a manifest, so stages talk only through artifacts.
Paths may be local or any URI ``pyarrow.fs`` understands (``s3://``, ``gs://``, ``file://``).

The one import for all of it, made of three layers, each importing only those below it:

* :mod:`seqlab.storage`: local paths and URIs, atomic files, staged directories;
* :mod:`seqlab.manifest`: ``manifest.json`` (:class:`Manifest`), its hash, strict JSON;
* :mod:`seqlab.outputs`: refusing and locking an output directory.
"""

from __future__ import annotations

from seqlab.manifest import (
    InputRef,
    Manifest,
    artifact_stage,
    json_text,
    library_versions,
    load_manifest,
    manifest_hash,
    read_manifest,
    write_manifest,
)
from seqlab.outputs import (
    LOCK_FILE,
    OutputBusy,
    OutputTaken,
    OutputUnwritable,
    check_output_dir,
    claim_output_dir,
    release_output_dir,
    releases_outputs,
)
from seqlab.storage import (
    MANIFEST,
    atomic_output,
    atomic_write_bytes,
    atomic_write_text,
    filesystem,
    is_uri,
    join,
    list_files,
    local_copy,
    local_path,
    read_parquet,
    read_text,
    resolve,
    staged_dir,
    write_bytes,
    write_text,
)

__all__ = [
    "LOCK_FILE",
    "MANIFEST",
    "InputRef",
    "Manifest",
    "OutputBusy",
    "OutputTaken",
    "OutputUnwritable",
    "artifact_stage",
    "atomic_output",
    "atomic_write_bytes",
    "atomic_write_text",
    "check_output_dir",
    "claim_output_dir",
    "filesystem",
    "is_uri",
    "join",
    "json_text",
    "library_versions",
    "list_files",
    "load_manifest",
    "local_copy",
    "local_path",
    "manifest_hash",
    "read_manifest",
    "read_parquet",
    "read_text",
    "release_output_dir",
    "releases_outputs",
    "resolve",
    "staged_dir",
    "write_bytes",
    "write_manifest",
    "write_text",
]
