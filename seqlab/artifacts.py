"""Artifact directories: ``manifest.json`` (what produced a directory), hashes, atomic writes.

Every stage reads and writes a directory carrying a manifest, so stages talk only through artifacts.
Paths may be local or any URI ``pyarrow.fs`` understands (``s3://``, ``gs://``, ``file://``).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import numbers
import os
import platform
import shutil
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import IO, Any

MANIFEST = "manifest.json"
_TRACKED_PACKAGES = ("seqlab", "ray", "torch", "transformers", "optuna", "pyarrow", "pandas", "tokenizers")


def is_uri(path: str | os.PathLike[str]) -> bool:
    """True for ``scheme://...`` paths other than plain local files."""
    return "://" in str(path) and not str(path).startswith("file://")


def library_versions() -> dict[str, str]:
    """Installed versions of the packages that shape an artifact (absent ones are skipped)."""
    versions = {"python": platform.python_version()}
    for name in _TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


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
    final = Path(os.path.realpath(str(target).removeprefix("file://")))
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
        yield Path(str(path).removeprefix("file://"))
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
    return pafs.LocalFileSystem(), os.path.abspath(os.path.expanduser(str(path).removeprefix("file://")))


def write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write bytes to a local path (atomically) or a URI (one PUT via pyarrow.fs: atomic on object stores)."""
    if not is_uri(path):
        atomic_write_bytes(str(path).removeprefix("file://"), data)
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
        return Path(path.removeprefix("file://")).read_text(encoding="utf-8")
    fs, inner = filesystem(path)
    with fs.open_input_stream(inner) as src:
        return src.read().decode("utf-8")


def resolve(path: str | os.PathLike[str]) -> str:
    """A URI as it is, a local path (``file://`` or not) made absolute: what Ray's ``storage_path`` wants."""
    path = str(path)
    return path if is_uri(path) else os.path.abspath(os.path.expanduser(path.removeprefix("file://")))


def join(base: str | os.PathLike[str], *parts: str) -> str:
    """Join path parts for local paths and URIs alike."""
    base = str(base)
    if is_uri(base) or base.startswith("file://"):  # Path() would fold file:// into file:/
        return "/".join([base.rstrip("/"), *parts])
    return str(Path(base, *parts))


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


def write_manifest(
    directory: str | os.PathLike[str],
    stage: str,
    config: dict[str, Any] | None = None,
    inputs: dict[str, dict[str, Any]] | None = None,
    metrics: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Write ``directory/manifest.json`` and return it.

    Args:
        directory: the artifact directory (local or URI).
        stage: what produced it (``scrape``, ``tune``, ``finetune`` ...).
        config: the stage's config as a JSON-safe dict.
        inputs: input artifacts by role -> their manifests; only their hashes and paths are stored.
        metrics: numbers a person or a later stage needs.
        **extra: stage-specific fields (e.g. ``labeler``, ``tokenizer``).
    """
    manifest: dict[str, Any] = {
        "stage": stage,
        "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "config": config or {},
        "inputs": {
            role: {"hash": manifest_hash(m), "path": m.get("path"), "stage": m.get("stage")}
            for role, m in (inputs or {}).items()
        },
        "metrics": metrics or {},
        "versions": library_versions(),
        **extra,
    }
    write_text(join(directory, MANIFEST), json_text(manifest))
    return manifest


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


def artifact_stage(directory: str | os.PathLike[str]) -> str | None:
    """The ``stage`` a local directory's manifest names (``scorer``, ``finetune-model`` ...), or None."""
    try:
        return json.loads(Path(directory, MANIFEST).read_text(encoding="utf-8")).get("stage")
    except (OSError, ValueError, AttributeError):
        return None


class OutputTaken(FileExistsError):
    """A stage was pointed at a directory that another stage (or other inputs) made."""


class OutputUnwritable(OutputTaken):
    """The output directory (or the folder it would be made in) refuses writes."""


def _check_writable(directory: str | os.PathLike[str], existing: Path) -> None:
    """Write and remove a probe file in ``existing`` (the output or its nearest existing parent): the only
    test that holds for root, read-only mounts and ACLs alike (``os.access`` says yes to root)."""
    try:
        fd, probe = tempfile.mkstemp(prefix=".seqlab-probe-", dir=existing)
    except OSError as exc:
        where = "" if existing == Path(str(directory)).expanduser() else f" (in {existing})"
        raise OutputUnwritable(
            f"{directory} cannot be written{where}: {exc.strerror or exc}: pick another --out"
        ) from None
    os.close(fd)
    os.unlink(probe)


def check_output_dir(
    directory: str | os.PathLike[str],
    stage: str,
    *,
    overwrite: bool = False,
    config: dict[str, Any] | None = None,
) -> None:
    """Refuse to write stage ``stage``'s output where it cannot be written or would replace another artifact.

    A directory whose manifest names another stage (a finished scrape under ``seqlab corpus --out``, a
    search under ``seqlab scrape --out``...) is refused, and so is one of the same stage made from another
    ``config`` when one is given; ``overwrite`` allows both. No manifest, or the same stage and config
    (a re-run, a resume), is fine.

    Raises:
        OutputTaken: naming what is there and how to go on.
    """
    if not is_uri(str(directory)):
        local = Path(str(directory).removeprefix("file://")).expanduser()
        blocker = next((p for p in (local, *local.parents) if p.exists()), None)
        if blocker is not None and not blocker.is_dir():  # never replaced, even with overwrite
            where = "is a file" if blocker == local else f"cannot be created: {blocker} is a file"
            raise OutputTaken(f"{directory} {where}, not a directory: pick another --out")
        if blocker is not None:
            _check_writable(directory, blocker)
    if overwrite:
        return
    try:
        manifest = read_manifest(directory)
    except (FileNotFoundError, ValueError, OSError):
        return
    there = manifest.get("stage")
    made = f"made {manifest['created_at']}" if manifest.get("created_at") else "made earlier"
    if there != stage:
        raise OutputTaken(
            f"{directory} holds a {there or 'unknown'} artifact ({MANIFEST}, {made}); writing the {stage} "
            "output there would replace it: pick another --out, or pass --overwrite"
        )
    if config is not None and manifest.get("config") not in (None, config):
        raise OutputTaken(
            f"{directory} holds a {stage} made with another config ({MANIFEST}, {made}); "
            "pick another --out, or pass --overwrite to replace it"
        )


LOCK_FILE = ".seqlab.lock"  # hidden, and removed when the stage ends
_CLAIMED: dict[str, int] = {}  # resolved local directory -> the locked file descriptor (this process)


class OutputBusy(OutputTaken):
    """Another seqlab run (another process) is writing the same output directory right now."""


def claim_output_dir(
    directory: str | os.PathLike[str],
    stage: str,
    *,
    overwrite: bool = False,
    config: dict[str, Any] | None = None,
) -> None:
    """Lock a local output directory for this process, then :func:`check_output_dir` it.

    The lock is ``flock`` on ``DIR/.seqlab.lock``: two runs racing on one ``--out`` cannot both write it,
    and the second is refused with :class:`OutputBusy`; checking after locking closes the window in which
    both would pass the check. The stage function that claimed it releases it when it ends (see
    :func:`releases_outputs`: the lock file is removed); a killed process's lock goes with it (the file may
    stay until the next run there ends). A refused claim leaves nothing behind that it made. URIs
    (``s3://``...) are not locked: object stores have no such lock.

    Raises:
        OutputBusy: another process holds the lock (the message gives its pid).
        OutputTaken: see :func:`check_output_dir`.
    """
    check_output_dir(directory, stage, overwrite=overwrite, config=config)  # a file in the way: no mkdir
    if is_uri(str(directory)):
        return
    local = _claim_key(directory)
    if str(local) in _CLAIMED:  # this process holds it already (a pipeline's stage inside another)
        return
    created = not local.exists()
    local.mkdir(parents=True, exist_ok=True)
    try:
        fd = _lock(local / LOCK_FILE, directory)
        try:
            check_output_dir(directory, stage, overwrite=overwrite, config=config)  # what another run left
            os.ftruncate(fd, 0)
            os.write(fd, f"pid {os.getpid()}, seqlab {stage}".encode())
        except BaseException:
            _unlock(local, fd)
            raise
    except BaseException:
        if created:
            shutil.rmtree(local, ignore_errors=True)
        raise
    _CLAIMED[str(local)] = fd


def _claim_key(directory: str | os.PathLike[str]) -> Path:
    """The local directory a claim is kept under: :func:`resolve`'s absolute path, symlinks followed."""
    return Path(resolve(directory)).resolve()


def _lock(path: Path, directory: str | os.PathLike[str]) -> int:
    """An exclusive ``flock`` on ``path``, the file that is there (a holder that just released it removed
    the one it locked: lock the new one)."""
    import fcntl

    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 200).decode("utf-8", "replace").strip() or "unknown"
            os.close(fd)
            raise OutputBusy(
                f"{directory} is being written by another seqlab run ({holder}): wait for it to end, "
                "or pick another --out"
            ) from None
        try:
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


def _unlock(local: Path, fd: int) -> None:
    """Remove the lock file while holding it, then let go."""
    try:
        (local / LOCK_FILE).unlink()
    except FileNotFoundError:
        pass
    os.close(fd)


def release_output_dir(directory: str | os.PathLike[str]) -> None:
    """Release this process's claim on ``directory`` (no claim: nothing happens)."""
    local = _claim_key(directory)
    fd = _CLAIMED.pop(str(local), None)
    if fd is not None:
        _unlock(local, fd)


def releases_outputs(fn):
    """Decorate a stage function: the output directories it claims are released when it returns or raises
    (claims this process held before the call are kept)."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        before = set(_CLAIMED)
        try:
            return fn(*args, **kwargs)
        finally:
            for key in set(_CLAIMED) - before:
                release_output_dir(key)

    return wrapper
