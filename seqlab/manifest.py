"""``manifest.json``: what produced an artifact directory, from what, with which config and versions.

Every stage reads and writes a directory carrying a manifest, so stages talk only through artifacts.
:func:`write_manifest` writes one; :func:`read_manifest` reads it as a dict, :func:`load_manifest` as a
:class:`Manifest`. Re-exported by :mod:`seqlab.artifacts`.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import numbers
import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from seqlab.storage import MANIFEST, join, read_text, write_text

__all__ = [
    "InputRef",
    "Manifest",
    "artifact_stage",
    "json_text",
    "library_versions",
    "load_manifest",
    "manifest_hash",
    "read_manifest",
    "write_manifest",
]

_TRACKED_PACKAGES = ("seqlab", "ray", "torch", "transformers", "optuna", "pyarrow", "pandas", "tokenizers")


def library_versions() -> dict[str, str]:
    """Installed versions of the packages that shape an artifact (absent ones are skipped)."""
    versions = {"python": platform.python_version()}
    for name in _TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def manifest_hash(manifest: dict[str, Any]) -> str:
    """Stable short hash of a manifest's content (sorted JSON), naming an input in a downstream manifest.

    ``path`` (where :func:`read_manifest` found it) is left out: the same artifact reached as
    ``runs/demo/scrape``, as an absolute path or through a URI gets the same hash.
    """
    content = {k: v for k, v in manifest.items() if k != "path"}
    blob = json.dumps(content, sort_keys=True, ensure_ascii=False, default=str).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:16]


def json_text(obj: Any, indent: int | None = 2) -> str:
    """JSON that strict parsers accept: a NaN or an infinity becomes ``null``, and a dict at the top gains
    ``"null_because"`` naming each such place (``{"metrics.val_r2": "not a finite number (nan)"}``)."""
    replaced: dict[str, str] = {}

    def clean(value: Any, path: str) -> Any:
        if isinstance(value, dict):
            return {k: clean(v, f"{path}.{k}" if path else str(k)) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v, f"{path}[{i}]") for i, v in enumerate(value)]
        if isinstance(value, bool):
            return value
        if isinstance(value, numbers.Integral):  # numpy's integers too: a count stays a count
            return int(value)
        if isinstance(value, numbers.Real):
            number = float(value)
            if not math.isfinite(number):
                replaced[path] = f"not a finite number ({number})"
                return None
            return number
        return value

    out = clean(obj, "")
    if replaced and isinstance(out, dict):
        out["null_because"] = replaced
    return json.dumps(out, indent=indent, ensure_ascii=False, default=str, allow_nan=False)


class InputRef(BaseModel):
    """An input artifact as a manifest names it (``inputs.ROLE``): by content, not by where it was read."""

    model_config = ConfigDict(extra="allow")

    hash: str = Field(description="manifest_hash of the input's manifest")
    path: str | None = Field(None, description="where the input was read from")
    stage: str | None = Field(None, description="the stage that made the input")


class Manifest(BaseModel):
    """What ``manifest.json`` holds. Stages add their own fields (``labeler``, ``files``, ``model_source``
    ...), and artifacts written by older versions may hold keys no longer written: every unknown key is
    kept as an extra field, so any manifest the project ever wrote still loads."""

    model_config = ConfigDict(extra="allow")

    stage: str = Field(description="what produced the directory: scrape, corpus, tune, scorer, finetune ...")
    created_at: str | None = Field(None, description="UTC, ISO 8601 to the second")
    config: dict[str, Any] = Field(default_factory=dict, description="the stage's config, JSON-safe")
    inputs: dict[str, InputRef] = Field(default_factory=dict, description="input artifacts by role")
    metrics: dict[str, Any] = Field(
        default_factory=dict, description="numbers a person or a later stage needs"
    )
    versions: dict[str, str] = Field(default_factory=dict, description="library_versions() when written")
    path: str | None = Field(None, description="where it was read from (set on reading, never written)")


def write_manifest(
    directory: str | os.PathLike[str],
    stage: str,
    config: dict[str, Any] | None = None,
    inputs: dict[str, dict[str, Any]] | None = None,
    metrics: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Write ``directory/manifest.json`` (a :class:`Manifest`) and return it as a dict.

    Args:
        directory: the artifact directory (local or URI).
        stage: what produced it (``scrape``, ``tune``, ``finetune`` ...).
        config: the stage's config as a JSON-safe dict.
        inputs: input artifacts by role -> their manifests; only their hashes and paths are stored.
        metrics: numbers a person or a later stage needs.
        **extra: stage-specific fields (e.g. ``labeler``, ``tokenizer``).

    Raises:
        pydantic.ValidationError: the fields do not make a :class:`Manifest` (a ValueError).
    """
    manifest = Manifest(
        stage=stage,
        created_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        config=config or {},
        inputs={
            role: InputRef(hash=manifest_hash(m), path=m.get("path"), stage=m.get("stage"))
            for role, m in (inputs or {}).items()
        },
        metrics=metrics or {},
        versions=library_versions(),
        **extra,
    )
    content = manifest.model_dump(exclude_unset=True)  # `path` is the reader's, and values stay as given
    write_text(join(directory, MANIFEST), json_text(content))
    return content


def read_manifest(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """Read ``directory/manifest.json``; the returned dict gains ``path`` (where it was read from).

    Raises:
        FileNotFoundError: with a message naming the directory when it holds no manifest.
        ValueError: the manifest is not a JSON object (the message names the file).
    """
    path = join(directory, MANIFEST)
    try:
        manifest = json.loads(read_text(path))
    except FileNotFoundError:
        raise FileNotFoundError(f"{directory} is not a seqlab artifact: no {MANIFEST} in it") from None
    except ValueError as exc:  # JSONDecodeError, or bytes that are not UTF-8
        raise ValueError(f"{path} is broken: not valid JSON ({exc})") from None
    if not isinstance(manifest, dict):
        raise ValueError(f"{path} is broken: a JSON object was expected, got {type(manifest).__name__}")
    manifest["path"] = str(directory)
    return manifest


def load_manifest(directory: str | os.PathLike[str]) -> Manifest:
    """:func:`read_manifest` as a :class:`Manifest` (``path`` set to where it was read).

    Raises:
        FileNotFoundError: no manifest there.
        ValueError: not valid JSON, or not a manifest (pydantic's ValidationError says which field).
    """
    return Manifest.model_validate(read_manifest(directory))


def artifact_stage(directory: str | os.PathLike[str]) -> str | None:
    """The ``stage`` a local directory's manifest names (``scorer``, ``finetune-model`` ...), or None."""
    try:
        return json.loads(Path(directory, MANIFEST).read_text(encoding="utf-8")).get("stage")
    except (OSError, ValueError, AttributeError):
        return None
