"""Output directories: refuse one that holds another artifact, and lock one while a stage writes it.

:func:`check_output_dir` reads what is there (:mod:`seqlab.manifest`); :func:`claim_output_dir` adds an
``flock`` so two runs cannot write one ``--out``. Re-exported by :mod:`seqlab.artifacts`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from seqlab.manifest import read_manifest
from seqlab.storage import MANIFEST, is_uri, local_path, resolve

__all__ = [
    "LOCK_FILE",
    "OutputBusy",
    "OutputTaken",
    "OutputUnwritable",
    "check_output_dir",
    "claim_output_dir",
    "release_output_dir",
    "releases_outputs",
]


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
        local = Path(local_path(directory)).expanduser()
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
