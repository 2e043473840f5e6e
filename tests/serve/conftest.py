"""Fixtures for the Serve tests: tiny artifacts, one Serve instance on the session's Ray, apps per module.

The artifacts are real (``save_scorer`` / ``save_pretrained`` + manifest) but untrained and tiny, so an
app starts in seconds. The scorer records non-default normalization switches (teh marbuta folded), so
"served scores equal library scores" also checks that the switches travel with the artifact.

The Arabic sentences below were written for these tests.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

SENTENCES = [
    "تعمل الشركة على تطوير خوارزمية جديدة لتحليل البيانات.",
    "يستخدم الباحثون الشبكات العصبية في ترجمة النصوص العربية.",
    "افتتحت المدينة حديقة كبيرة قرب النهر.",
    "طبخت الأم حساء العدس في مساء بارد.",
    "يتعلم الطلاب البرمجة في مدرسة الحي.",
    "فاز المنتخب بالمباراة بعد ركلات الترجيح.",
    "تساعد الحوسبة السحابية الشركات الصغيرة على النمو.",
    "زار المسافرون السوق القديمة واشتروا التوابل.",
    "أعلنت الجامعة عن مسابقة في الذكاء الاصطناعي.",
    "هطل المطر طوال الليل على القرية الجبلية.",
]
SWITCHES = {"teh_marbuta": True}  # non-default: ة -> ه


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_scorer(path: Path) -> Path:
    import torch

    from seqlab.models import RNNRegressor, TokenizerConfig, save_scorer, train_tokenizer
    from seqlab.text import normalize
    from seqlab.text.config import NormalizeConfig

    texts = [normalize(s, **SWITCHES) for s in SENTENCES]
    tok_cfg = TokenizerConfig(min_frequency=1, max_len=64)
    tok = train_tokenizer(texts, tok_cfg)
    torch.manual_seed(0)
    model = RNNRegressor(tok.get_vocab_size(), embed_dim=16, cell="gru", hidden=16, pooling="mean")
    with torch.no_grad():  # random but spread out, so texts get clearly different scores
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    save_scorer(
        str(path),
        model,
        tok,
        tok_cfg,
        {"test_rmse": 1.5},
        normalize=NormalizeConfig(**SWITCHES),
        text_column="text_norm",
        architecture="GRU",
    )
    return path


def make_generator(path: Path) -> Path:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from seqlab.artifacts import write_manifest
    from seqlab.lm.tokenizer import train_bpe_tokenizer

    tokenizer = train_bpe_tokenizer(SENTENCES * 5, vocab_size=300, min_frequency=2)
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=128,
        n_embd=32,
        n_layer=2,
        n_head=2,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    model = GPT2LMHeadModel(config)
    with torch.no_grad():  # peaked distributions, like a trained model's (see tests/lm/conftest.py)
        model.transformer.ln_f.weight.mul_(8.0)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    write_manifest(path, stage="finetune", metrics={"test_perplexity": 123.0}, model_source="scratch")
    return path


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("serve-artifacts")
    return {"scorer": make_scorer(root / "scorer"), "generator": make_generator(root / "generator")}


def app_args(artifacts, **overrides) -> dict:
    """ServeArgs for tests: no CPU reservations (the session Ray has 2 CPUs for everything)."""
    args = {
        "scorer": str(artifacts["scorer"]),
        "generator": str(artifacts["generator"]),
        "device": "cpu",
        "ingress": {"num_cpus": 0},
        "scorer_deployment": {"num_cpus": 0},
        "generator_deployment": {"num_cpus": 0},
        "generator_batch": {"stream_interval_s": 0.0},  # every token its own SSE event: streaming is visible
        "log_requests": False,
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(args.get(key), dict):
            args[key] = {**args[key], **value}
        else:
            args[key] = value
    return args


@pytest.fixture(scope="session")
def serve_instance(ray_session):
    """Serve's proxy on a free loopback port, shut down at the end.

    Its edge middleware comes from RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH (set in tests/conftest.py
    before the session's Ray starts, as seqlab.ray_utils.init_ray does for `seqlab serve`).
    """
    from ray import serve

    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port, "request_timeout_s": 30})
    yield f"http://127.0.0.1:{port}"
    serve.shutdown()


@pytest.fixture(scope="session")
def sentences() -> list[str]:
    return list(SENTENCES)


@pytest.fixture(scope="session")
def deploy(serve_instance, artifacts):
    """``deploy(name, **overrides) -> url``: the seqlab app under ``/<name>``, once it answers.

    Each test module deploys its app once and deletes it at the end (``serve.delete(name)``), so the
    session's 2 CPUs are free again for the other tests.
    """
    from ray import serve

    from seqlab.serve.app import build_app
    from seqlab.serve.cli_serve import wait_until_ready

    def _deploy(name: str, **overrides) -> str:
        serve.run(
            build_app(app_args(artifacts, **overrides)), name=name, route_prefix=f"/{name}", blocking=False
        )
        url = f"{serve_instance}/{name}"
        wait_until_ready(url, timeout_s=180)
        return url

    return _deploy


@pytest.fixture
def check_concurrent_scores():
    """``check(url, scorer_dir, sentences)``: see :func:`_check_concurrent_scores`."""
    return _check_concurrent_scores


def _check_concurrent_scores(url: str, scorer_dir, sentences: list[str]) -> None:
    """12 concurrent /v1/score requests each get exactly the library's scores of their own texts."""
    import asyncio

    import httpx

    from seqlab.models import load_scorer

    scorer = load_scorer(str(scorer_dir))
    batches = [[sentences[i % len(sentences)], sentences[(i * 3) % len(sentences)]] for i in range(12)]

    async def burst():
        async with httpx.AsyncClient(base_url=url, timeout=60) as ac:
            return await asyncio.gather(*(ac.post("/v1/score", json={"texts": b}) for b in batches))

    for texts, resp in zip(batches, asyncio.run(burst()), strict=True):
        assert resp.status_code == 200, resp.text
        assert resp.json()["scores"] == pytest.approx(scorer.predict(texts), abs=1e-5)
