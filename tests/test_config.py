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


def test_one_way_in_layers_defaults_saved_yaml_flags_then_overrides(tmp_path):
    """load_config is the one path from a command line to a config; later layers win, None flags are absent."""
    from seqlab.tune.config import TuneJobConfig

    yaml_file = tmp_path / "tune.yaml"
    yaml_file.write_text("out: from-yaml\ndata:\n  max_docs: 50\n")
    saved = {"out": "saved", "data": {"path": "saved-corpus", "max_docs": 10}}
    cfg = load_config(
        TuneJobConfig,
        yaml_file,
        ["--data.max_docs=70"],
        base=saved,
        flags={"out": "from-flag", "data.path": None},
    )
    assert cfg.out == "from-flag"  # flag over YAML over saved
    assert cfg.data.path == "saved-corpus"  # a None flag was not given: the saved value stays
    assert cfg.data.max_docs == 70  # dotted overrides come last
    with pytest.raises(ConfigError, match=r"data\.max_docs"):
        load_config(TuneJobConfig, flags={"data.max_docs": -1})  # flags are validated like the rest


def test_every_stage_config_has_the_same_smoke_switch():
    from seqlab.config import JobConfig
    from seqlab.data.config import ScrapeJobConfig, SourcesConfig
    from seqlab.lm.config import FinetuneJobConfig
    from seqlab.tune.config import TuneJobConfig

    for cls in (ScrapeJobConfig, TuneJobConfig, FinetuneJobConfig):
        assert issubclass(cls, JobConfig)
        plain = cls()
        assert plain.smoke() is plain
        small = cls(smoke_test=True).smoke()
        assert small != cls(smoke_test=True) and small.smoke() == small  # reduced, and only once
    scrape = ScrapeJobConfig(sources=SourcesConfig(seeds=["https://a.example/"]), smoke_test=True).smoke()
    assert scrape.sources.max_pages <= 50 and scrape.sources.max_depth <= 2
