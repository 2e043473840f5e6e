"""Where artifacts live: local paths and ``pyarrow.fs`` URIs, atomic files and staged directories.

The bottom layer of the artifact code (no seqlab imports): :mod:`seqlab.manifest` and
:mod:`seqlab.outputs` build on it, and :mod:`seqlab.artifacts` re-exports all three.
Paths may be local or any URI ``pyarrow.fs`` understands (``s3://``, ``gs://``, ``file://``).
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

__all__ = [
    "MANIFEST",
    "atomic_output",
    "atomic_write_bytes",
    "atomic_write_text",
    "filesystem",
    "is_uri",
    "join",
    "list_files",
    "local_copy",
    "local_path",
    "read_parquet",
    "read_text",
    "resolve",
    "staged_dir",
    "write_bytes",
    "write_text",
]

MANIFEST = "manifest.json"  # an artifact directory's record (seqlab.manifest); staged_dir uploads it last


def is_uri(path: str | os.PathLike[str]) -> bool:
    """True for ``scheme://...`` paths other than plain local files."""
    return "://" in str(path) and not str(path).startswith("file://")


def local_path(path: str | os.PathLike[str]) -> str:
    """A local path given as it is or as a ``file://`` URI, as a plain path string (not expanded or made
    absolute). Only for paths that are not :func:`is_uri`."""
    return str(path).removeprefix("file://")


def _umask() -> int:
    try:  # Linux: read it without changing it (os.umask can only be read by setting it)
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextmanager
def atomic_output(path: str | os.PathLike[str], mode: str = "wb", **open_kwargs: Any) -> Iterator[IO]:
    """Open a local ``path`` for writing such that readers never see half a file and a failure loses nothing.

    The one way the project writes an output file:

    * a regular file, or a new path: the data goes to a unique temp file next to it (``.NAME.XXXX.tmp``,
      never a fixed name that could be someone's file) that is renamed over it on success and removed on
      failure. The file gets the usual mode (``0666`` minus the umask), or keeps the mode of the file it
      replaces;
    * a symlink is followed: its target is replaced and the link stays a link;
    * a FIFO, a character device or a socket cannot be replaced and is written directly (``-o /dev/stdout``,
      a named pipe).

    Raises:
        IsADirectoryError: ``path`` is a directory.
    """
    target = Path(os.path.realpath(path))
    if target.is_dir():
        raise IsADirectoryError(f"{path} is a directory, not a file")
    if target.exists() and not target.is_file():  # FIFO, device, socket: stream into it
        with open(target, mode, **open_kwargs) as fh:
            yield fh
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    keep = stat.S_IMODE(target.stat().st_mode) if target.exists() else None
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, keep if keep is not None else 0o666 & ~_umask())  # mkstemp makes it 0600
        with os.fdopen(fd, mode, **open_kwargs) as fh:
            yield fh
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to a local ``path`` through :func:`atomic_output`."""
    with atomic_output(path, "wb") as fh:
        fh.write(data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write UTF-8 ``text`` to a local ``path`` atomically (see :func:`atomic_write_bytes`)."""
    atomic_write_bytes(path, text.encode("utf-8"))


@contextmanager
def staged_dir(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Build a directory artifact in private staging and publish it at ``target`` only once it is complete.

    The one way the project writes an output directory (a model, a report, a corpus):

    * local: the block fills a hidden sibling (``.NAME.XXXX.tmp``); on success it is renamed to ``target``
      (an older ``target`` is renamed aside first and removed after), so readers see the old directory or
      the new one, never half of one. The directory gets the usual mode (``0777`` minus the umask);
    * URI: the block fills a local temp directory, uploaded with pyarrow.fs after the old objects under
      ``target`` are deleted, ``manifest.json`` last: a manifest there means the rest is there too.

    On an error or Ctrl+C inside the block the staging is removed and ``target`` is left as it was.

    Example::

        with staged_dir(join(out, "model")) as model_dir:
            model.save_pretrained(model_dir)
            write_manifest(model_dir, stage="finetune")

    Raises:
        NotADirectoryError: ``target`` exists and is not a directory.
    """
    if is_uri(target):
        with tempfile.TemporaryDirectory(prefix="seqlab-stage-") as tmp:
            yield Path(tmp)
            _upload_dir(Path(tmp), str(target))
        return
    final = Path(os.path.realpath(local_path(target)))
    if final.exists() and not final.is_dir():
        raise NotADirectoryError(f"{target} exists and is not a directory")
    final.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp"))
    try:
        os.chmod(stage, 0o777 & ~_umask())  # mkdtemp makes it 0700
        yield stage
        old = None
        if final.exists():
            old = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.", suffix=".old"))
            os.replace(final, old)  # onto the empty placeholder: rename(2) replaces an empty directory
        os.replace(stage, final)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _upload_dir(local: Path, uri: str) -> None:
    import pyarrow.fs as pafs

    fs, root = pafs.FileSystem.from_uri(uri)
    fs.delete_dir_contents(root, missing_dir_ok=True)
    files = sorted((p for p in local.rglob("*") if p.is_file()), key=lambda p: p == local / MANIFEST)
    for path in files:
        dest = f"{root.rstrip('/')}/{path.relative_to(local).as_posix()}"
        fs.create_dir(dest.rsplit("/", 1)[0], recursive=True)
        with open(path, "rb") as src, fs.open_output_stream(dest) as out:
            shutil.copyfileobj(src, out, 1 << 20)


@contextmanager
def local_copy(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A local directory holding what ``path`` holds: ``path`` itself when local, else a temp download
    (removed after the block). The read-side twin of :func:`staged_dir`."""
    if not is_uri(path):
        yield Path(local_path(path))
        return
    import pyarrow.fs as pafs

    with tempfile.TemporaryDirectory(prefix="seqlab-fetch-") as tmp:
        pafs.copy_files(str(path), tmp)
        yield Path(tmp)


def filesystem(path: str | os.PathLike[str]):
    """``(pyarrow.fs.FileSystem, inner path)`` for a local path (made absolute) or a URI."""
    import pyarrow.fs as pafs

    if is_uri(path):
        return pafs.FileSystem.from_uri(str(path))
    return pafs.LocalFileSystem(), os.path.abspath(os.path.expanduser(local_path(path)))


def write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write bytes to a local path (atomically) or a URI (one PUT via pyarrow.fs: atomic on object stores)."""
    if not is_uri(path):
        atomic_write_bytes(local_path(path), data)
        return
    fs, inner = filesystem(path)
    fs.create_dir(inner.rsplit("/", 1)[0], recursive=True)
    with fs.open_output_stream(inner) as out:
        out.write(data)


def write_text(path: str, text: str) -> None:
    """Write text to a local path (atomically) or a URI (via pyarrow.fs)."""
    write_bytes(path, text.encode("utf-8"))


def list_files(directory: str | os.PathLike[str], prefix: str = "", suffix: str = "") -> list[str]:
    """Sorted paths (local paths or URIs, as ``directory`` is) of the files directly in ``directory`` whose
    names start with ``prefix`` and end with ``suffix``; hidden files (a local write's temp) are skipped.
    A missing directory has none."""
    import pyarrow.fs as pafs

    fs, root = filesystem(directory)
    infos = fs.get_file_info(pafs.FileSelector(root, allow_not_found=True))
    names = sorted(
        i.base_name
        for i in infos
        if i.type == pafs.FileType.File
        and not i.base_name.startswith(".")
        and i.base_name.startswith(prefix)
        and i.base_name.endswith(suffix)
    )
    return [join(directory, name) for name in names]


def read_parquet(path: str | os.PathLike[str], columns: list[str] | None = None):
    """A Parquet file or dataset directory (local or URI) as a ``pyarrow.Table``."""
    import pyarrow.parquet as pq

    fs, inner = filesystem(path)
    return pq.read_table(inner, columns=columns, filesystem=fs)


def read_text(path: str) -> str:
    """Read text from a local path or a URI."""
    if not is_uri(path):
        return Path(local_path(path)).read_text(encoding="utf-8")
    fs, inner = filesystem(path)
    with fs.open_input_stream(inner) as src:
        return src.read().decode("utf-8")


def resolve(path: str | os.PathLike[str]) -> str:
    """A URI as it is, a local path (``file://`` or not) made absolute: what Ray's ``storage_path`` wants."""
    path = str(path)
    return path if is_uri(path) else os.path.abspath(os.path.expanduser(local_path(path)))


def join(base: str | os.PathLike[str], *parts: str) -> str:
    """Join path parts for local paths and URIs alike."""
    base = str(base)
    if is_uri(base) or base.startswith("file://"):  # Path() would fold file:// into file:/
        return "/".join([base.rstrip("/"), *parts])
    return str(Path(base, *parts))
