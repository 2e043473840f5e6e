"""The fine-tuning config: the shipped YAML, smoke-test shrinking, validation messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from seqlab.config import ConfigError, config_class_for, load_config
from seqlab.lm.config import FinetuneJobConfig

YAML = Path(__file__).resolve().parents[2] / "jobs" / "finetune.yaml"


def test_shipped_yaml_loads_and_starts_with_the_submit_line():
    cfg = load_config(config_class_for("finetune"), YAML)
    assert isinstance(cfg, FinetuneJobConfig)
    assert YAML.read_text(encoding="utf-8").splitlines()[0] == (
        "# ray job submit --working-dir . -- python jobs/finetune.py --config jobs/finetune.yaml"
    )
    assert cfg.model_dump() == FinetuneJobConfig(out=cfg.out).model_dump(), "YAML should show the defaults"


def test_every_field_is_described():
    def walk(model_cls):
        for name, field in model_cls.model_fields.items():
            assert field.description, f"{model_cls.__name__}.{name} has no description"
            sub = field.annotation
            if isinstance(sub, type) and hasattr(sub, "model_fields"):
                walk(sub)

    walk(FinetuneJobConfig)


def test_smoke_test_shrinks_everything():
    cfg = load_config(FinetuneJobConfig, YAML, ["--smoke_test=true"]).smoke()
    assert cfg.model.n_layer <= 2 and cfg.train.max_steps <= 30 and cfg.data.max_docs <= 300
    assert cfg.eval.num_prompts <= 6
    assert load_config(FinetuneJobConfig, YAML).smoke().train.max_steps is None


def test_lr_default_depends_on_the_model_source():
    cfg = FinetuneJobConfig()
    assert cfg.effective_lr() == 1e-3
    cfg.model.base_model = "gpt2"
    assert cfg.effective_lr() == 5e-5
    cfg.train.lr = 2e-4
    assert cfg.effective_lr() == 2e-4


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ("--model.n_head=3", "model"),
        ("--train.epochs=0", "train.epochs"),
        ("--train.mixed_precision=fp8", "train.mixed_precision"),
        ("--data.text_column=body", "data.text_column"),
        ("--eval.strategies=[beam]", "eval.strategies"),
        ("--ray.num_workers=0", "ray.num_workers"),
    ],
)
def test_bad_values_name_the_field(override, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        load_config(FinetuneJobConfig, None, [override])
