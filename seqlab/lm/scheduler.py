"""Continuous batching over a :class:`~seqlab.lm.generator.DecodeSession`, without Ray (or torch).

The Serve generator replica (:class:`seqlab.serve.deployments.GeneratorDeployment`) drives one
:class:`Scheduler`; the scheduler decides which requests decode together, and when each request's text
is sent. It is tested without Serve (``tests/lm/test_scheduler.py``).

Threads: :meth:`Scheduler.submit` and :meth:`Scheduler.cancel` may be called from any thread (the
replica's event loop); they only put a message on a :class:`queue.SimpleQueue`. Everything else runs in
one decoding thread at a time (:meth:`~Scheduler.advance`, and :meth:`~Scheduler.abort` /
:meth:`~Scheduler.idle` between two advances), which drains that queue at step boundaries, so the
waiting line and the running batch are only ever touched by the decoding thread.
"""

from __future__ import annotations

import collections
import itertools
import queue
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from seqlab.lm.requests import GenerationRequest, StreamEvent

__all__ = ["Advance", "Scheduler"]

Key = int


class Session(Protocol):
    """What the scheduler needs of a decoding session (:class:`~seqlab.lm.generator.DecodeSession`)."""

    texts: dict[Any, Any]

    def __len__(self) -> int: ...

    @property
    def rows(self) -> int: ...

    def accepts(self) -> bool: ...

    def add(self, key: Any, request: GenerationRequest, ids: list[int] | None = None) -> None: ...

    def cancel(self, key: Any) -> None: ...

    def step(self) -> list[tuple[Any, list[StreamEvent]]]: ...


@dataclass
class Advance:
    """What one :meth:`Scheduler.advance` produced.

    Every submitted key ends exactly once: in ``finished`` (all its candidates ended), ``failed`` (it
    could not join the batch), or ``cancelled`` (:meth:`Scheduler.cancel`); or, when the model itself
    fails, in what :meth:`Scheduler.abort` returns.
    """

    messages: dict[Key, list[StreamEvent]] = field(default_factory=dict)  # events per request, merged
    finished: list[Key] = field(default_factory=list)
    failed: list[tuple[Key, Exception]] = field(default_factory=list)
    cancelled: list[Key] = field(default_factory=list)

    def ended(self) -> list[Key]:
        """Keys whose stream ends with this advance (finished, failed or cancelled)."""
        return [*self.finished, *(k for k, _ in self.failed), *self.cancelled]


def _merge(into: dict[int, StreamEvent], events: list[StreamEvent]) -> bool:
    """Add one step's events to a request's pending message (texts joined per candidate); any finish?"""
    finishing = False
    for ev in events:
        if ev.index in into:
            ev = _join(into[ev.index], ev)
        into[ev.index] = ev
        finishing = finishing or ev.finish_reason is not None
    return finishing


def _join(first: StreamEvent, second: StreamEvent) -> StreamEvent:
    return StreamEvent(
        first.index,
        first.text + second.text,
        second.finish_reason or first.finish_reason,
        second.completion_tokens or first.completion_tokens,
    )


class Scheduler:
    """Continuous batching (as vLLM and TGI schedule): every running request decodes in one forward pass
    per step, and a request submitted mid-flight joins at the next step boundary instead of waiting for
    the running batch to end; a finished or cancelled request leaves at once. Up to ``max_batch_size``
    rows (requests x candidates) decode together, the rest wait in arrival order (one request at least
    when the batch is empty, whatever its size).

    Steps are merged into one message per request every ``stream_interval_s``, except that a request's
    first text and any finish end its message at once (see :meth:`advance`).

    Args:
        new_session: makes an empty decoding session (``Generator.session``); called again after a
            model failure (:meth:`abort`).
        max_batch_size: rows that decode together at most.
        stream_interval_s: the least time between two messages of one request (0: every step its own).
    """

    def __init__(
        self, new_session: Callable[[], Session], max_batch_size: int, stream_interval_s: float = 0.0
    ) -> None:
        self._new_session = new_session
        self.max_batch_size = max_batch_size
        self.stream_interval_s = stream_interval_s
        self._keys = itertools.count()
        self._inbox: queue.SimpleQueue[tuple[str, Key, Any, Any]] = queue.SimpleQueue()
        # decoding thread only:
        self.session = new_session()
        self._waiting: collections.deque[tuple[Key, GenerationRequest, list[int]]] = collections.deque()
        self._admitted: set[Key] = set()  # taken from the waiting line, end not yet reported
        self._pending: dict[Key, dict[int, StreamEvent]] = {}  # unsent events per request
        self._due: dict[Key, float] = {}  # when each request's next message may go
        self._rows = 0  # the session's rows as of the last step boundary (read by stats, any thread)

    # --- any thread ---

    def submit(self, request: GenerationRequest, ids: list[int]) -> Key:
        """Queue ``request`` (its prompt already encoded as ``ids``); its key, for :meth:`cancel` and the
        results of :meth:`advance`."""
        key = next(self._keys)
        self._inbox.put(("add", key, request, ids))
        return key

    def cancel(self, key: Key) -> None:
        """Stop decoding ``key`` at the next step boundary (waiting or running; unknown keys are ignored)."""
        self._inbox.put(("cancel", key, None, None))

    def stats(self) -> dict[str, int]:
        """Requests waiting and rows running right now (a snapshot, for ``/metrics``)."""
        return {"waiting": len(self._waiting) + self._inbox.qsize(), "running_rows": self._rows}

    # --- the decoding thread ---

    def idle(self) -> bool:
        """Nothing to decode and nothing submitted: the caller may sleep until the next submit."""
        return not len(self.session) and not self._waiting and self._inbox.empty()

    def advance(self) -> Advance:
        """Take in what was submitted or cancelled, then decode until some request's message is due.

        Each request keeps its own schedule: its text is sent every ``stream_interval_s``, and at once
        when it is its first text or a finish; the other requests' text keeps accumulating. Submits and
        cancellations that arrive meanwhile are applied between steps (a newcomer joins the running
        batch there when it fits).

        Raises:
            Exception: whatever the model raised; then call :meth:`abort`.
        """
        out = Advance()
        self._take_inbox(out)
        self._admit(out)
        due: set[Key] = set()
        finishing: list[Key] = []
        while len(self.session) and not due and not out.failed:
            now = time.monotonic()
            for key, events in self.session.step():
                pending = self._pending.setdefault(key, {})
                if _merge(pending, events) or key not in self.session.texts:
                    finishing.append(key)
                    due.add(key)
                elif any(ev.text for ev in pending.values()) and now >= self._due.get(key, 0.0):
                    due.add(key)
            self._take_inbox(out)
            self._admit(out)
            self._rows = self.session.rows
        gone = set(out.cancelled)
        for key in due - gone:
            out.messages[key] = list(self._pending.pop(key, {}).values())
            self._due[key] = time.monotonic() + self.stream_interval_s
            self._pending[key] = {}
        for key in finishing:
            self._pending.pop(key, None)
            self._due.pop(key, None)
        out.finished = [k for k in finishing if k not in self.session.texts and k not in gone]
        self._admitted.difference_update(out.ended())
        self._rows = self.session.rows
        return out

    def abort(self) -> list[Key]:
        """After :meth:`advance` raised: a fresh session; the keys that were decoding (they end failed).

        Requests still waiting stay queued for the next :meth:`advance`.
        """
        keys = sorted(self._admitted)
        self._admitted.clear()
        self._pending.clear()
        self._due.clear()
        self.session = self._new_session()
        self._rows = 0
        return keys

    def _take_inbox(self, out: Advance) -> None:
        """Apply what :meth:`submit` and :meth:`cancel` queued, in the order they were called."""
        while True:
            try:
                kind, key, request, ids = self._inbox.get_nowait()
            except queue.Empty:
                return
            if kind == "add":
                self._waiting.append((key, request, ids))
            else:
                self._drop(key, out)

    def _drop(self, key: Key, out: Advance) -> None:
        waiting = len(self._waiting)
        self._waiting = collections.deque(w for w in self._waiting if w[0] != key)
        if len(self._waiting) == waiting and (
            key not in self._admitted or any(k == key for k, _ in out.failed)
        ):
            return  # ended already (or never submitted): nothing to stop
        self.session.cancel(key)
        self._admitted.discard(key)
        self._pending.pop(key, None)
        self._due.pop(key, None)
        out.cancelled.append(key)

    def _admissible(self) -> list[tuple[Key, GenerationRequest, list[int]]]:
        """Waiting requests that fit under ``max_batch_size`` rows now (one at least when idle)."""
        admit: list[tuple[Key, GenerationRequest, list[int]]] = []
        rows = self.session.rows
        while self._waiting and self.session.accepts():
            key, request, ids = self._waiting[0]
            n = request.config.num_candidates
            if rows + n > self.max_batch_size and (rows or admit):
                break
            self._waiting.popleft()
            admit.append((key, request, ids))
            rows += n
        return admit

    def _admit(self, out: Advance) -> None:
        for key, request, ids in self._admissible():
            self._admitted.add(key)
            try:
                self.session.add(key, request, ids)
            except ValueError as exc:
                out.failed.append((key, exc))
                continue
            self._pending[key] = {}
            self._due[key] = 0.0  # its first text goes out at once: time to first token
