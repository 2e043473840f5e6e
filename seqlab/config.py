"""One typed config system: Pydantic v2 models, loaded from YAML, with dotted command-line overrides.

Every stage owns one config model (a subclass of :class:`Config`) next to its code; this module holds
the shared machinery and the registry that maps each shipped job YAML to its model, so a single test
can load every YAML the project ships.

Example::

    cfg = load_config(TuneJobConfig, "jobs/tune.yaml", ["--search.num_samples=8", "--smoke_test=true"])
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

__all__ = [
    "JOB_CONFIGS",
    "Config",
    "ConfigError",
    "apply_overrides",
    "config_class_for",
    "load_config",
    "parse_overrides",
]


class ConfigError(ValueError):
    """A config file or override is invalid; the message names the offending field."""


class Config(BaseModel):
    """Base of every config model: unknown keys are errors (a typo must not be silently ignored)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())


C = TypeVar("C", bound=Config)

# Shipped job YAML (by file stem in jobs/) -> "module:Class" of the model that validates it.
JOB_CONFIGS: dict[str, str] = {
    "scrape": "seqlab.data.config:ScrapeJobConfig",
    "tune": "seqlab.tune.config:TuneJobConfig",
    "finetune": "seqlab.lm.config:FinetuneJobConfig",
    "demo": "seqlab.demo:DemoConfig",
    "deploy": "seqlab.serve.config:DeployJobConfig",
    "pipeline": "seqlab.pipeline:PipelineJobConfig",
}


def config_class_for(name: str) -> type[Config]:
    """Return the config model registered for job ``name`` (e.g. ``"tune"``)."""
    try:
        target = JOB_CONFIGS[name]
    except KeyError:
        raise ConfigError(
            f"no config model registered for job {name!r}; known: {sorted(JOB_CONFIGS)}"
        ) from None
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def parse_overrides(args: list[str]) -> dict[str, Any]:
    """Turn ``["--train.lr=3e-4", "search.cell=[gru,lstm]"]`` into a nested dict.

    Values are parsed as YAML scalars/flow collections, so ``3e-4`` is a float, ``true`` a bool and
    ``[a,b]`` a list. A leading ``--`` is optional.
    """
    nested: dict[str, Any] = {}
    for raw in args:
        item = raw[2:] if raw.startswith("--") else raw
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {raw!r} must look like --section.field=value")
        try:
            parsed = yaml.safe_load(value) if value != "" else ""
        except yaml.YAMLError as exc:
            raise ConfigError(f"override {raw!r}: value is not valid YAML ({exc})") from None
        if isinstance(parsed, str):
            parsed = _maybe_float(parsed)  # YAML 1.1 reads "3e-4" as a string; users mean a number
        node = nested
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {raw!r} conflicts with another override of {part!r}")
        node[parts[-1]] = parsed
    return nested


def _maybe_float(value: str) -> str | float:
    try:
        return float(value) if any(c.isdigit() for c in value) else value
    except ValueError:
        return value


def apply_overrides(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge ``overrides`` into a copy of ``base`` (dicts merge, everything else replaces)."""
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = apply_overrides(merged[key], value)
        else:
            merged[key] = value
    return merged


def format_validation_error(exc: ValidationError, source: str) -> str:
    lines = [f"invalid config ({source}):"]
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "<root>"
        got = err.get("input")
        shown = "" if isinstance(got, dict) else f" (got {got!r})"
        lines.append(f"  {field}: {err['msg']}{shown}")
    return "\n".join(lines)


def validate_config(cls: type[C], data: dict[str, Any], source: str = "<dict>") -> C:
    """Validate ``data`` against ``cls``, raising :class:`ConfigError` that names each bad field."""
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source)) from None


def config_from_args(cls: type[C], args: Any) -> C:
    """``cls`` validated from an argparse namespace's attributes of the same names.

    For verbs whose flags are the whole config (``seqlab corpus``, ``seqlab site``); errors name the flag
    as typed (``--noise-sd``), not the field.
    """
    data = {name: getattr(args, name) for name in cls.model_fields if hasattr(args, name)}
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        lines = ["invalid flags:"]
        for err in exc.errors():
            flag = "--" + "-".join(str(p) for p in err["loc"][:1]).replace("_", "-")
            lines.append(f"  {flag}: {err['msg']} (got {err.get('input')!r})")
        raise ConfigError("\n".join(lines)) from None


def load_config(cls: type[C], path: str | Path | None = None, overrides: list[str] | None = None) -> C:
    """Load ``cls`` from a YAML file (or its defaults when ``path`` is None) plus dotted overrides.

    Args:
        cls: the config model.
        path: YAML file; its top level maps onto the model's fields.
        overrides: strings like ``--train.lr=3e-4``.

    Raises:
        ConfigError: unreadable YAML, unknown fields, or values of the wrong type/range.
    """
    data: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        source = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path} is not valid YAML: {exc}") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: top level must be a mapping of fields, got {type(loaded).__name__}")
        data = loaded
    if overrides:
        data = apply_overrides(data, parse_overrides(overrides))
        source += " + overrides"
    return validate_config(cls, data, source)


def dump_config(cfg: Config) -> dict[str, Any]:
    """A JSON-safe dict of ``cfg`` (for manifests and reports)."""
    return cfg.model_dump(mode="json")


def add_config_arguments(parser: Any, default: str | None = None) -> None:
    """Give a verb's argparse parser ``--config FILE``; dotted ``--a.b=value`` overrides are collected
    by :func:`seqlab.cli.main` into ``args.overrides``."""
    parser.add_argument(
        "--config",
        default=default,
        help=f"YAML config file (default: {default or 'built-in defaults'}); "
        "any field can be overridden as --section.field=value",
    )
    parser.set_defaults(overrides=[])
