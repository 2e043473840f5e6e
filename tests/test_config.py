from pathlib import Path

import pytest
from pydantic import Field

from seqlab.config import (
    JOB_CONFIGS,
    Config,
    ConfigError,
    config_class_for,
    load_config,
    parse_overrides,
)

ROOT = Path(__file__).resolve().parents[1]


class Train(Config):
    lr: float = Field(1e-3, gt=0, description="learning rate")
    epochs: int = 3


class Job(Config):
    name: str = "x"
    train: Train = Train()
    smoke_test: bool = False


def test_overrides_parse_yaml_values():
    assert parse_overrides(["--train.lr=3e-4", "smoke_test=true", "--a.b.c=[1, 2]"]) == {
        "train": {"lr": 3e-4},
        "smoke_test": True,
        "a": {"b": {"c": [1, 2]}},
    }


def test_load_yaml_then_override(tmp_path):
    f = tmp_path / "job.yaml"
    f.write_text("name: demo\ntrain:\n  lr: 0.01\n  epochs: 5\n")
    cfg = load_config(Job, f, ["--train.lr=3e-4"])
    assert cfg.name == "demo" and cfg.train.lr == pytest.approx(3e-4) and cfg.train.epochs == 5


def test_errors_name_the_field(tmp_path):
    with pytest.raises(ConfigError, match=r"train\.lr"):
        load_config(Job, None, ["--train.lr=-1"])
    with pytest.raises(ConfigError, match=r"train\.epochs"):
        load_config(Job, None, ["--train.epochs=many"])
    with pytest.raises(ConfigError, match=r"train\.lrr"):
        load_config(Job, None, ["--train.lrr=1"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(Job, bad)
    with pytest.raises(ConfigError, match=r"missing\.yaml"):
        load_config(Job, tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="must look like"):
        parse_overrides(["--train.lr"])


def test_every_shipped_job_yaml_loads():
    yamls = sorted((ROOT / "jobs").glob("*.yaml"))
    assert yamls, "no job YAML shipped"
    for path in yamls:
        assert path.stem in JOB_CONFIGS, f"{path.name} has no registered config model"
        cfg = load_config(config_class_for(path.stem), path)
        assert isinstance(cfg, Config)
        first = path.read_text(encoding="utf-8").splitlines()[0]
        assert first.startswith("# ray job submit") and f"jobs/{path.stem}.py" in first, (
            f"{path.name}: first line must be the exact 'ray job submit' command"
        )
