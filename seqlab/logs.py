"""How seqlab's commands log: one format, and the libraries' chatter quieted here, by configuration.

:func:`configure` runs once per command (``seqlab.cli.main``) in the driver; :func:`quiet_worker` runs in every
Ray worker process of a Ray that :func:`seqlab.ray_utils.init_ray` starts or joins (Ray's
``worker_process_setup_hook``), since Ray Train, Tune and Data log from their workers and Ray forwards those
lines to the driver's terminal. What is quieted, and why each is noise to a seqlab user:

* Ray Data's per-dataset execution plans and "finished" lines (seqlab prints its own summary): its console
  handler is configured to WARNING through ``RAY_DATA_LOGGING_CONFIG`` (Ray Data configures its logger itself,
  so a ``setLevel`` from outside is undone); its log file in the session folder keeps everything;
* Ray Train's "Checkpoint successfully created" per report (seqlab prints one progress line per epoch), and
  its placement-group cleaner's "State API may be temporarily unavailable" (the State API needs the dashboard,
  which seqlab's local Ray does not start; the cleaner keeps working);
* Ray's token-auth notice and "Started a local Ray instance" (seqlab's own line says what it started);
* colour escape codes when the output is not a terminal (a log file, a pipe, ``ray job submit``'s log):
  stripped from this process's stdout and stderr, where Ray prints its workers' lines too.

``SEQLAB_VERBOSE=1`` keeps every library's INFO lines. Imports neither Ray nor torch.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from pathlib import Path

__all__ = [
    "LIBRARY_LEVELS",
    "VERBOSE_ENV",
    "configure",
    "quiet_libraries",
    "quiet_optuna",
    "quiet_worker",
    "ray_train_log_level",
    "worker_setup_hook",
]

VERBOSE_ENV = "SEQLAB_VERBOSE"
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# logger -> the level below which its records are noise to a seqlab user (see the module docstring).
# Ray Train (v2) configures its own "ray.train" logger in its controller and workers: its console level is
# RunConfig's LoggingConfig (ray_train_log_level), the placement-group cleaner's below.
LIBRARY_LEVELS = {
    "ray.train": logging.WARNING,
    "ray.train.v2._internal.execution.controller.placement_group_cleaner": logging.ERROR,
    "ray.tune": logging.WARNING,
    "ray.serve": logging.WARNING,  # start-up notes; seqlab prints the URL and examples itself
    "ray._private.authentication.authentication_token_setup": logging.ERROR,
    "ray._private.worker": logging.WARNING,
}
# Set in each process's environment before the library reads it (at its import).
LIBRARY_ENV = {
    "TRANSFORMERS_VERBOSITY": "error",  # "loss_type=None", "passing an attention_mask" on unpadded blocks
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",  # "Writing model shards" bars in a log
}
# Python warnings from inside a library that its user cannot act on (message regex).
IGNORED_WARNINGS = (r"`ExecutionOptions\.exclude_resources` is deprecated",)
RAY_DATA_LOGGING = Path(__file__).with_name("ray_data_logging.yaml")


def _verbose() -> bool:
    return os.environ.get(VERBOSE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def quiet_worker() -> None:
    """Apply :data:`LIBRARY_LEVELS` in this process (a Ray worker's setup hook; idempotent).

    In a Ray worker it also names the worker's own cluster in ``RAY_ADDRESS``: Ray Train's placement-group
    cleaner asks the State API about "the" cluster, and with a second Ray on the machine (a ``ray start``
    cluster beside seqlab's local one) it died with a traceback ("Found multiple active Ray instances").
    """
    _name_own_cluster()
    sys.unraisablehook = _quiet_exit_in_callbacks
    quiet_libraries()


def _quiet_exit_in_callbacks(unraisable: object) -> None:
    """Ray stops a worker (a finished Tune trial, say) with SIGTERM, and its handler raises SystemExit; when
    that lands inside a finalizer or weakref callback Python prints "Exception ignored in ..." with a
    traceback of Ray's shutdown. That SystemExit is the worker stopping as asked: not printed. Any other
    exception in a callback still is."""
    if isinstance(getattr(unraisable, "exc_value", None), SystemExit):
        return
    sys.__unraisablehook__(unraisable)  # type: ignore[arg-type]


def quiet_libraries() -> None:
    """Apply :data:`LIBRARY_LEVELS`, :data:`LIBRARY_ENV` and :data:`IGNORED_WARNINGS` in this process
    (again after a library reset its logger, as ``import ray.serve`` does). Not with ``SEQLAB_VERBOSE``."""
    if _verbose():
        return
    for name, level in LIBRARY_LEVELS.items():
        logging.getLogger(name).setLevel(level)
    for name, value in LIBRARY_ENV.items():
        os.environ.setdefault(name, value)
    for message in IGNORED_WARNINGS:
        warnings.filterwarnings("ignore", message=message)


def quiet_optuna() -> None:
    """Optuna's "A new study created" notes off (it resets its logger's level when imported, so this runs
    after ``import optuna``)."""
    if _verbose():
        return
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)


def ray_train_log_level() -> str:
    """The console level of Ray Train's own logs (``ray.train.RunConfig(logging_config=...)``)."""
    return "INFO" if _verbose() else "WARNING"


def _name_own_cluster() -> None:
    if "ray" not in sys.modules or os.environ.get("RAY_ADDRESS"):
        return
    import ray

    try:
        if ray.is_initialized() and ray.get_runtime_context().worker.mode == ray.WORKER_MODE:
            os.environ["RAY_ADDRESS"] = ray.get_runtime_context().gcs_address
    except Exception:  # not a worker of a running Ray: nothing to name
        pass


def worker_setup_hook() -> dict[str, str]:
    """The ``runtime_env`` entry that runs :func:`quiet_worker` in each Ray worker."""
    return {} if _verbose() else {"worker_process_setup_hook": "seqlab.logs.quiet_worker"}


def _strip_colours_unless_terminal() -> None:
    if sys.stdout.isatty() and sys.stderr.isatty():
        return
    os.environ.setdefault("RAY_COLOR_PREFIX", "0")  # Ray's "(pid=...)" prefixes: no colour
    try:
        import colorama  # a dependency of Ray: strips the escape codes it still writes (dedup notes)
    except ImportError:
        return
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if not stream.isatty() and not isinstance(stream, colorama.ansitowin32.StreamWrapper):
            setattr(sys, name, colorama.AnsiToWin32(stream, strip=True, convert=False).stream)


def configure(level: int = logging.INFO) -> None:
    """seqlab's log format at ``level`` and the quieting above, for this process and the Rays it starts."""
    logging.basicConfig(level=level, format=FORMAT)
    _strip_colours_unless_terminal()
    if _verbose():
        return
    os.environ.setdefault("RAY_DATA_LOGGING_CONFIG", str(RAY_DATA_LOGGING))
    quiet_libraries()
