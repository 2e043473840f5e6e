"""The continuous-batching scheduler (seqlab.lm.scheduler) without Ray or Serve: the tiny GPT-2 decodes."""

from __future__ import annotations

import collections
import random
import subprocess
import sys
import threading
import time

import pytest

from seqlab.lm.config import DecodingConfig
from seqlab.lm.requests import GenerationRequest
from seqlab.lm.scheduler import Advance, Scheduler

PROMPTS = ["ذهب الطلاب إلى المكتبة", "هطلت أمطار غزيرة", "باع التاجر"]


def _cfg(max_new_tokens: int, **kw) -> DecodingConfig:
    return DecodingConfig(strategy="greedy", max_new_tokens=max_new_tokens, stop_at_eos=False, **kw)


@pytest.fixture
def gen(tiny_model):
    from seqlab.lm.generator import Generator

    return Generator(*tiny_model)


class Run:
    """Drives a scheduler in the test's thread and records what each key got."""

    def __init__(self, gen, max_batch_size: int = 8, stream_interval_s: float = 0.0) -> None:
        self.gen = gen
        self.sched = Scheduler(gen.session, max_batch_size, stream_interval_s)
        self.messages: dict[int, list[list]] = collections.defaultdict(list)
        self.ends: collections.Counter = collections.Counter()
        self.how: dict[int, str] = {}
        self.failures: dict[int, Exception] = {}

    def submit(self, request: GenerationRequest) -> int:
        ids, _ = self.gen.encode(request.prompt, request.config.max_new_tokens)
        return self.sched.submit(request, ids)

    def record(self, adv: Advance) -> None:
        for key, events in adv.messages.items():
            assert key not in self.ends, f"a message for {key} after its end"
            self.messages[key].append(events)
        for key, exc in adv.failed:
            self.failures[key] = exc
        for how, keys in (("finished", adv.finished), ("failed", [k for k, _ in adv.failed])):
            for key in keys:
                self.how[key] = how
        for key in adv.cancelled:
            self.how[key] = "cancelled"
        self.ends.update(adv.ended())

    def advance(self) -> Advance:
        adv = self.sched.advance()
        self.record(adv)
        return adv

    def until_idle(self, limit: int = 2000) -> None:
        for _ in range(limit):  # bounded: a scheduler bug fails the test instead of hanging it
            if self.sched.idle():
                return
            self.advance()
        raise AssertionError("the scheduler never went idle")

    def text(self, key: int, index: int = 0) -> str:
        return "".join(ev.text for msg in self.messages[key] for ev in msg if ev.index == index)

    def finish(self, key: int, index: int = 0) -> tuple[str | None, int]:
        last = [ev for msg in self.messages[key] for ev in msg if ev.index == index and ev.finish_reason]
        assert len(last) == 1, f"one finishing event per candidate, got {last}"
        return last[0].finish_reason, last[0].completion_tokens


def test_the_scheduler_imports_without_ray_or_torch():
    code = "import sys, seqlab.lm.scheduler; print('ray' in sys.modules, 'torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "False"]


def test_admission_counts_rows_up_to_max_batch_size(gen):
    run = Run(gen, max_batch_size=3)
    a = run.submit(GenerationRequest(PROMPTS[0], _cfg(6, num_candidates=2)))
    b = run.submit(GenerationRequest(PROMPTS[1], _cfg(6, num_candidates=2)))  # 2 + 2 rows > 3: waits
    c = run.submit(GenerationRequest(PROMPTS[2], _cfg(6)))  # would fit beside a, but waits behind b
    run.advance()
    assert run.sched.stats() == {"waiting": 2, "running_rows": 2}
    while a not in run.ends:
        assert set(run.sched.session.texts) == {a}
        run.advance()
    assert set(run.sched.session.texts) == {b, c} and run.sched.session.rows == 3, "both joined once a left"
    run.until_idle()
    assert run.how == {a: "finished", b: "finished", c: "finished"}
    assert run.sched.stats() == {"waiting": 0, "running_rows": 0}


def test_an_oversized_request_runs_alone_when_the_batch_is_empty(gen):
    run = Run(gen, max_batch_size=2)
    big = run.submit(GenerationRequest(PROMPTS[0], _cfg(3, num_candidates=3)))
    run.advance()
    assert run.sched.session.rows == 3
    run.until_idle()
    assert run.how == {big: "finished"}
    assert [run.finish(big, i) for i in range(3)] == [("length", 3)] * 3


def test_a_request_submitted_mid_run_joins_the_running_batch(gen):
    """The newcomer's first text comes before the running request ends; both get what they get alone."""
    run = Run(gen, max_batch_size=4)
    long = GenerationRequest(PROMPTS[0], _cfg(20))
    short = GenerationRequest(PROMPTS[1], _cfg(5))
    a = run.submit(long)
    for _ in range(4):
        run.advance()
    b = run.submit(short)
    order = []
    while not run.sched.idle():
        adv = run.advance()
        order += [key for key, events in adv.messages.items() if any(ev.text for ev in events)]
        if b in adv.messages:
            assert run.sched.session.rows == 2 or b in adv.finished, "b decodes beside a"
    assert order.index(b) < len(order) - 1 - order[::-1].index(a), "b waited for a to end"
    assert run.text(a) == gen.generate(long.prompt, long.config)[0].text
    assert run.text(b) == gen.generate(short.prompt, short.config)[0].text


def test_finish_reasons_length_and_stop(gen):
    run = Run(gen)
    plain = GenerationRequest(PROMPTS[0], _cfg(8))
    full = gen.generate(plain.prompt, plain.config)[0].text
    stop = full[3:5]
    a = run.submit(plain)
    b = run.submit(GenerationRequest(PROMPTS[0], _cfg(8), stop=(stop,)))
    run.until_idle()
    assert run.finish(a) == ("length", 8) and run.text(a) == full
    reason, _ = run.finish(b)
    assert reason == "stop" and run.text(b) == full[: full.find(stop)]
    assert run.how == {a: "finished", b: "finished"} and not run.sched._admitted


def test_messages_merge_steps_until_the_stream_interval(gen):
    """With a long interval, the first text goes at once, the rest waits and comes merged with the finish."""
    run = Run(gen, stream_interval_s=60.0)
    request = GenerationRequest(PROMPTS[0], _cfg(10))
    key = run.submit(request)
    run.until_idle()
    assert len(run.messages[key]) == 2, run.messages[key]
    first, last = run.messages[key]
    assert first[0].text and first[0].finish_reason is None
    assert [ev.index for ev in last] == [0] and last[0].finish_reason == "length"
    assert last[0].completion_tokens == 10
    assert run.text(key) == gen.generate(request.prompt, request.config)[0].text


def test_a_cancelled_request_frees_its_row_and_its_stream_ends(gen):
    run = Run(gen, max_batch_size=1)
    a = run.submit(GenerationRequest(PROMPTS[0], _cfg(30)))
    b = run.submit(GenerationRequest(PROMPTS[1], _cfg(4)))
    run.advance()
    assert run.sched.stats() == {"waiting": 1, "running_rows": 1}
    run.sched.cancel(a)
    adv = run.advance()
    assert adv.cancelled == [a] and a not in adv.messages and a not in run.sched.session.texts
    assert b in run.sched.session.texts, "b took the row a freed"
    messages_of_a = len(run.messages[a])
    run.sched.cancel(a)  # again, after its end: ignored
    run.until_idle()
    assert len(run.messages[a]) == messages_of_a < 30
    assert run.how == {a: "cancelled", b: "finished"} and run.ends == {a: 1, b: 1}
    assert run.finish(b) == ("length", 4)


def test_a_request_cancelled_while_waiting_never_runs(gen):
    run = Run(gen, max_batch_size=1)
    a = run.submit(GenerationRequest(PROMPTS[0], _cfg(4)))
    b = run.submit(GenerationRequest(PROMPTS[1], _cfg(4)))
    c = run.submit(GenerationRequest(PROMPTS[2], _cfg(4)))
    run.sched.cancel(b)
    run.until_idle()
    assert run.how == {a: "finished", b: "cancelled", c: "finished"}
    assert b not in run.messages and run.ends == {a: 1, b: 1, c: 1}


def test_a_request_that_cannot_join_fails_alone(gen):
    run = Run(gen)
    ok = run.submit(GenerationRequest(PROMPTS[0], _cfg(4)))
    bad = run.sched.submit(GenerationRequest(PROMPTS[1], _cfg(4)), [])  # no prompt token: add refuses it
    run.until_idle()
    assert run.how == {ok: "finished", bad: "failed"} and isinstance(run.failures[bad], ValueError)


def test_a_model_failure_fails_the_running_requests_and_the_waiting_ones_run_after(gen, monkeypatch):
    run = Run(gen, max_batch_size=1)
    a = run.submit(GenerationRequest(PROMPTS[0], _cfg(6)))
    b = run.submit(GenerationRequest(PROMPTS[1], _cfg(3)))
    run.advance()
    broken = run.sched.session

    def fail():
        raise RuntimeError("out of memory")

    monkeypatch.setattr(broken, "step", fail)
    with pytest.raises(RuntimeError):
        run.sched.advance()
    assert run.sched.abort() == [a]
    assert run.sched.session is not broken and len(run.sched.session) == 0
    run.until_idle()
    assert run.how == {b: "finished"} and run.finish(b) == ("length", 3)


def test_cancelling_from_another_thread_while_the_decoding_thread_steps(gen):
    """The event loop's side (submit, cancel) and the decoding thread's (advance) race freely: no error,
    no request lost, every stream ends exactly once, and nothing is left running."""
    run = Run(gen, max_batch_size=4)
    stop, errors = threading.Event(), []

    def decode():
        try:
            while not (stop.is_set() and run.sched.idle()):
                if run.sched.idle():
                    time.sleep(0.0005)
                    continue
                run.advance()
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    thread = threading.Thread(target=decode)
    thread.start()
    rng = random.Random(0)
    keys, cancelled = [], set()
    try:
        for i in range(24):
            keys.append(run.submit(GenerationRequest(PROMPTS[i % 3], _cfg(rng.randint(2, 12)))))
            time.sleep(rng.random() * 0.005)
            if i % 2:
                victim = rng.choice(keys)
                run.sched.cancel(victim)
                cancelled.add(victim)
    finally:
        stop.set()
        thread.join(timeout=120)
    assert not thread.is_alive(), "the decoding thread never finished"
    assert not errors, errors
    assert set(run.ends) == set(keys) and set(run.ends.values()) == {1}, run.ends
    took = {k for k, how in run.how.items() if how == "cancelled"}
    assert took and took <= cancelled, "some cancellations reach requests still waiting or decoding"
    for key in set(keys) - cancelled:
        assert run.how[key] == "finished"
        assert run.finish(key)[0] == "length"
    assert len(run.sched.session) == 0 and not run.sched._admitted
    assert run.sched.stats() == {"waiting": 0, "running_rows": 0}
