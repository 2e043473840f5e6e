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
from pydantic import BaseModel, ConfigDict, Field, ValidationError

__all__ = [
    "JOB_CONFIGS",
    "Config",
    "ConfigError",
    "JobConfig",
    "add_config_flags",
    "apply_overrides",
    "config_class_for",
    "flag_overrides",
    "load_config",
    "parse_overrides",
]


class ConfigError(ValueError):
    """A config file or override is invalid; the message names the offending field."""


class Config(BaseModel):
    """Base of every config model: unknown keys are errors (a typo must not be silently ignored)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())


C = TypeVar("C", bound=Config)


class JobConfig(Config):
    """A stage's whole job (``jobs/<stage>.yaml``). ``smoke_test: true`` asks for its tiny form, which
    :meth:`smoke` returns: every stage runs ``cfg.smoke()``, so the flag means the same everywhere."""

    smoke_test: bool = Field(False, description="a tiny run that exercises every step (CI, laptops)")

    def smoke(self: J) -> J:
        """``self`` with the stage's smoke-test reductions when ``smoke_test`` is set, else ``self``."""
        return self._smoke_reduced() if self.smoke_test else self

    def _smoke_reduced(self: J) -> J:
        """The reductions (a validated copy); stages override this."""
        return self

    def with_out(self: J, out: str | Path) -> J:
        """A validated copy writing to ``out`` (a stage's directory inside a demo or pipeline run)."""
        return type(self).model_validate({**self.model_dump(), "out": str(out)})


J = TypeVar("J", bound=JobConfig)

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
            parsed = load_yaml(value) if value != "" else ""
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


def add_config_flags(parser: Any, cls: type[Config], skip: tuple[str, ...] = ()) -> None:
    """One ``--field-name`` flag per field of a flat config model: its type, default and help come from
    the field, so no default is written twice. Read them back with :func:`config_from_args`.

    ``bool`` fields that default to False become switches (``--no-faults``); other fields take a value.
    """
    import typing

    for name, field in cls.model_fields.items():
        if name in skip:
            continue
        flag = "--" + name.replace("_", "-")
        default = field.get_default(call_default_factory=True)
        text = field.description or name.replace("_", " ")
        if field.annotation is bool and default is False:
            parser.add_argument(flag, dest=name, action="store_true", help=text)
            continue
        kinds = [a for a in typing.get_args(field.annotation) if a is not type(None)] or [field.annotation]
        kind = kinds[0] if kinds[0] in (int, float, str) else str
        shown = "none" if default is None else default
        parser.add_argument(flag, dest=name, type=kind, default=default, help=f"{text} (default {shown})")


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


def flag_overrides(flags: dict[str, Any]) -> dict[str, Any]:
    """Named command-line flags as a nested override: ``{"data.path": "runs/c", "out": None}`` ->
    ``{"data": {"path": "runs/c"}}`` (None means the flag was not given)."""
    nested: dict[str, Any] = {}
    for key, value in flags.items():
        if value is None:
            continue
        node = nested
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return nested


def load_config(
    cls: type[C],
    path: str | Path | None = None,
    overrides: list[str] | None = None,
    *,
    base: dict[str, Any] | None = None,
    flags: dict[str, Any] | None = None,
) -> C:
    """The one way from a command line to a config: validate ``cls`` from its layers, lowest first:

    the model's defaults < ``base`` (a saved config, e.g. ``--resume``) < the YAML file at ``path`` <
    named flags (``flags``: dotted field -> value, None = not given; ``--out DIR`` is ``{"out": DIR}``) <
    dotted ``overrides`` (``--train.lr=3e-4``).

    Raises:
        ConfigError: unreadable YAML, unknown fields, or values of the wrong type/range; the message
            names each offending field and where the values came from.
    """
    data: dict[str, Any] = dict(base or {})
    source = "saved config" if base else "defaults"
    if path is not None:
        source = str(path) if not base else f"{source} + {path}"
        data = apply_overrides(data, _read_yaml(path))
    named = flag_overrides(flags or {})
    if named:
        data = apply_overrides(data, named)
        source += " + flags"
    if overrides:
        data = apply_overrides(data, parse_overrides(overrides))
        source += " + overrides"
    return validate_config(cls, data, source)


class _StrictLoader(yaml.SafeLoader):
    """``yaml.safe_load`` that refuses a mapping with the same key twice (YAML lets the last one win, so
    ``remove_digits: false`` ... ``remove_digits: true`` would silently mean true)."""


def _no_duplicate_keys(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: dict[Any, yaml.Mark] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first on line {seen[key].line + 1})", key_node.start_mark
            )
        seen[key] = key_node.start_mark
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicate_keys)


def load_yaml(text: str) -> Any:
    """Parse YAML like ``yaml.safe_load``, refusing duplicate keys: every config the project reads goes
    through here.

    Raises:
        yaml.YAMLError: invalid YAML, or a key given twice in one mapping (the message names it).
    """
    return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass: no arbitrary objects


def yaml_error(path: str | Path, exc: yaml.YAMLError) -> str:
    """One line for a YAML error: where (file and line) and what."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    where = f"{path}: line {mark.line + 1}" if mark is not None else str(path)
    return f"{where}: not valid YAML: {problem}"


def _read_yaml(path: str | Path) -> dict[str, Any]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    try:
        loaded = load_yaml(text)
    except yaml.YAMLError as exc:
        raise ConfigError(yaml_error(path, exc)) from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: top level must be a mapping of fields, got {type(loaded).__name__}")
    return loaded


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
