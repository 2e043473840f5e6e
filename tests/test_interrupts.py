"""Ctrl+C and SIGTERM end every command the same way: a clean line on stderr, 130/143, how to resume; and a
Ray cluster that does not answer is an error naming it, never a hang."""

from __future__ import annotations

import os
import signal
import socket

import pytest

from seqlab import interrupts
from seqlab.cli import main
from seqlab.ray_utils import RayUnavailable, check_reachable


@pytest.fixture
def restore_handlers():
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # what a fresh `seqlab` process has
    interrupts.reset()
    yield
    signal.signal(signal.SIGTERM, before[0])
    signal.signal(signal.SIGINT, before[1])
    interrupts.reset()


def test_sigterm_becomes_keyboard_interrupt_and_exit_143(restore_handlers):
    interrupts.sigterm_as_interrupt()
    assert interrupts.exit_code() == 130  # nothing received yet: a plain Ctrl+C
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGTERM)
        signal.sigtimedwait([], 0.1)  # let the handler run
    assert interrupts.received() == signal.SIGTERM and interrupts.exit_code() == 143


def test_sigterm_reaches_a_graceful_sigint_handler_like_tunes(restore_handlers):
    """Inside Tuner.fit() SIGINT means "save the experiment and stop": SIGTERM must do exactly that."""
    seen = []
    signal.signal(signal.SIGINT, lambda signum, frame: seen.append(signum))
    interrupts.sigterm_as_interrupt()
    os.kill(os.getpid(), signal.SIGTERM)
    signal.sigtimedwait([], 0.1)
    assert seen == [signal.SIGINT]  # forwarded, and no exception escaped


def test_an_interrupted_stage_exits_143_and_says_how_to_resume(
    restore_handlers, monkeypatch, tmp_path, capsys
):
    import seqlab.lm.finetune as finetune

    def killed(cfg, overwrite=False):
        os.kill(os.getpid(), signal.SIGTERM)  # what `kill PID` or `ray job stop` sends
        signal.sigtimedwait([], 0.1)
        raise AssertionError("SIGTERM did not interrupt")

    monkeypatch.setattr(finetune, "run_finetune", killed)
    argv = ["finetune", "--data", str(tmp_path), "--out", str(tmp_path / "ft")]
    assert main(argv) == 143
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["seqlab finetune: interrupted"]

    def interrupted(cfg, overwrite=False):
        raise interrupts.Interrupted("fine-tuning interrupted; nothing was exported")

    interrupts.reset()
    monkeypatch.setattr(finetune, "run_finetune", interrupted)
    assert main(argv) == 130
    err = capsys.readouterr().err
    assert "nothing was exported" in err and f"resume: seqlab finetune --data {tmp_path}" in err


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the with-block ends: nobody listens there


def test_a_dead_cluster_address_is_a_clear_error_not_a_hang(capsys):
    port = _closed_port()
    with pytest.raises(RayUnavailable, match=f"no Ray cluster answers at 127.0.0.1:{port}"):
        check_reachable(f"127.0.0.1:{port}", timeout_s=2)
    with pytest.raises(RayUnavailable, match="not host:port"):
        check_reachable("nonsense")
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        check_reachable(f"ray://127.0.0.1:{listening.getsockname()[1]}")  # answers: no error
    assert main(["deploy", "--address", f"127.0.0.1:{port}"]) == 2
    assert "no Ray cluster answers" in capsys.readouterr().err


def test_ctrl_c_still_interrupts_after_a_search_ended(restore_handlers):
    """Tune's fit() leaves its SIGINT handler installed after a normal end; run_tune_job must not."""
    seen = []

    def tune_like_fit():
        signal.signal(signal.SIGINT, lambda signum, frame: seen.append(signum))  # what Tune does

    with interrupts.own_signal_handlers():
        tune_like_fit()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
        signal.sigtimedwait([], 0.1)
    assert not seen


@pytest.mark.parametrize("address", ["local", " local "])
def test_ray_address_local_starts_a_new_local_ray_as_ray_does(address, monkeypatch, restore_handlers):
    import ray

    from seqlab import ray_utils

    calls = []
    monkeypatch.setenv("RAY_ADDRESS", address)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kw: calls.append(kw))
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 2.0})
    monkeypatch.setattr(ray_utils, "check_reachable", lambda a: pytest.fail(f"probed {a!r}"))
    assert ray_utils.init_ray(num_cpus=1) is True  # started here: the caller shuts it down
    assert calls[0]["address"] == "local" and calls[0]["num_cpus"] == 1
