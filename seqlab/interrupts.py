"""Ctrl+C and ``kill PID`` mean the same to every seqlab command: stop cleanly, keep what was saved, say how
to resume, and exit non-zero (130 for SIGINT, 143 for SIGTERM, as shells report them).

``ray.init`` installs its own SIGTERM handler in the driver (``sys.exit(15)`` mid-call, with Ray's C++ signal
dump on the way out), so :func:`sigterm_as_interrupt` is installed again once Ray is up
(:func:`seqlab.ray_utils.init_ray` does it). It forwards SIGTERM to whatever handles SIGINT at that moment:
inside ``Tuner.fit()`` that is Tune's graceful stop (the experiment state is saved, the search resumes), and
elsewhere Python's default, a ``KeyboardInterrupt`` that :func:`seqlab.cli.main` turns into one line.

Example::

    sigterm_as_interrupt()
    try:
        long_work()
    except KeyboardInterrupt:
        print("interrupted; resume with: ...", file=sys.stderr)
        sys.exit(exit_code())
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

__all__ = ["Interrupted", "exit_code", "own_signal_handlers", "received", "reset", "sigterm_as_interrupt"]

_received: list[int] = []


class Interrupted(KeyboardInterrupt):
    """A stage stopped by SIGINT/SIGTERM after saving its state; ``resume`` is the command that continues it."""

    def __init__(self, what: str, resume: str | None = None) -> None:
        super().__init__(what)
        self.what, self.resume = what, resume

    def __str__(self) -> str:
        return self.what + (f"; resume with: {self.resume}" if self.resume else "")


def _forward(signum: int, frame: Any) -> None:
    _received.append(signum)
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler):
        handler(signal.SIGINT, frame)  # Tune's graceful stop, or default_int_handler's KeyboardInterrupt
    else:
        raise KeyboardInterrupt


def sigterm_as_interrupt() -> None:
    """From now on SIGTERM does what Ctrl+C does (main thread only; elsewhere signals cannot be set)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _forward)


def received() -> int | None:
    """The last SIGTERM seen by the forwarder, or None (a plain Ctrl+C is not recorded: it is the default)."""
    return _received[-1] if _received else None


def exit_code() -> int:
    """130 after Ctrl+C, 143 after SIGTERM: 128 + the signal number, what a shell shows for a killed job."""
    return 128 + (received() or signal.SIGINT)


def reset() -> None:
    """Forget signals seen so far (tests, or one process running several commands)."""
    _received.clear()


@contextlib.contextmanager
def own_signal_handlers() -> Iterator[None]:
    """Put SIGINT/SIGUSR1 handlers back as they were after the block.

    ``Tuner.fit()`` installs its graceful-stop handler and removes it only when a signal arrives: after a
    search that ended normally, a later Ctrl+C (during the demo's fine-tuning, say) would only log "ending
    Ray Tune run" and be swallowed.
    """
    names = [signal.SIGINT] + ([signal.SIGUSR1] if hasattr(signal, "SIGUSR1") else [])
    main = threading.current_thread() is threading.main_thread()
    saved = {sig: signal.getsignal(sig) for sig in names} if main else {}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
