"""seqlab.logs: the libraries' chatter is quieted by configuration, and no escape codes reach a file."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest

from seqlab import logs


def _run(code: str, **env: str) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if k not in ("RAY_DATA_LOGGING_CONFIG", "RAY_COLOR_PREFIX")}
    full.update(env)
    # stdout and stderr are pipes here: "not a terminal", as in a log file or `ray job submit`'s log
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full, timeout=120)


def test_no_escape_codes_when_the_output_is_not_a_terminal():
    code = (
        "import sys\nfrom seqlab import logs\nlogs.configure()\n"
        "print('\\x1b[36m(run_trial pid=1)\\x1b[0m line\\x1b[32m [repeated 2x]\\x1b[0m')\n"
        "print('\\x1b[33mwarn\\x1b[0m', file=sys.stderr)\n"
        "import os; print(os.environ['RAY_COLOR_PREFIX'])\n"
    )
    done = _run(code)
    assert done.returncode == 0, done.stderr
    assert "\x1b" not in done.stdout + done.stderr
    assert done.stdout.splitlines() == ["(run_trial pid=1) line [repeated 2x]", "0"]
    assert done.stderr.strip() == "warn"


def test_ray_data_console_is_quiet_and_its_file_keeps_everything():
    code = (
        "import logging\nfrom seqlab import logs\nlogs.configure()\n"
        "from ray.data._internal.logging import configure_logging\nconfigure_logging()\n"
        "log = logging.getLogger('ray.data')\n"
        "print(log.level, sorted((type(h).__name__, h.level) for h in log.handlers))\n"
    )
    done = _run(code)
    assert done.returncode == 0, done.stderr
    # the logger takes everything (its file handler writes it); the console shows warnings and worse
    assert done.stdout.strip() == "10 [('PlainRayHandler', 30), ('SessionFileHandler', 0)]", done.stdout


def test_verbose_keeps_the_libraries_info_lines(monkeypatch):
    monkeypatch.setenv(logs.VERBOSE_ENV, "1")
    assert logs.worker_setup_hook() == {}
    name = "ray.train.v2._internal.execution.storage"
    before = logging.getLogger(name).level
    logs.quiet_worker()
    assert logging.getLogger(name).level == before
    monkeypatch.delenv(logs.VERBOSE_ENV)
    assert logs.worker_setup_hook() == {"worker_process_setup_hook": "seqlab.logs.quiet_worker"}


@pytest.mark.parametrize("name, level", sorted(logs.LIBRARY_LEVELS.items()))
def test_each_quieted_logger_is_set_in_a_worker(name, level):
    done = _run(
        f"import logging\nfrom seqlab import logs\nlogs.quiet_worker()\nprint(logging.getLogger({name!r}).level)"
    )
    assert done.returncode == 0 and int(done.stdout) == level


def test_a_worker_stopping_inside_a_callback_prints_no_traceback():
    code = (
        "from seqlab import logs\nlogs.quiet_worker()\n"
        "class Stop:\n    def __del__(self):\n        raise SystemExit(1)\n"
        "class Bug:\n    def __del__(self):\n        raise ValueError('a real bug')\n"
        "Stop()\nBug()\nprint('still running')\n"
    )
    done = _run(code)
    assert done.returncode == 0 and done.stdout.strip() == "still running", done.stderr
    assert "SystemExit" not in done.stderr  # the worker being stopped: quiet
    assert "ValueError: a real bug" in done.stderr  # anything else in a callback is still printed
