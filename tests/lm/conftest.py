"""Fixtures for the causal-LM tests: a small synthetic corpus (the real schema) and tiny GPT-2 models.

The Arabic sentences below were written for these tests. Documents are random draws of them, so the
corpus is repetitive enough for a tiny model to learn quickly, which keeps the training tests short.
"""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import pytest

SENTENCES = [
    "استيقظت الأسرة مبكرا لتستعد لرحلة طويلة إلى الجبال.",
    "حمل الأب حقيبة كبيرة فيها خبز وجبن وزيتون.",
    "كانت السماء صافية والهواء باردا في الصباح الباكر.",
    "توقفت السيارة قرب نبع ماء صغير بين الأشجار.",
    "قرأت البنت قصة قصيرة عن طائر يبحث عن بيته.",
    "افتتحت البلدية مكتبة جديدة في وسط الحي القديم.",
    "يجتمع الطلاب كل مساء لمراجعة دروس الرياضيات.",
    "شرح المعلم كيف تتحول المياه إلى بخار عند الغليان.",
    "ازدحم السوق بالناس الذين جاؤوا لشراء الفاكهة الطازجة.",
    "باع التاجر البرتقال والتفاح بأسعار مناسبة للجميع.",
    "نصح الطبيب المرضى بشرب الماء والمشي نصف ساعة كل يوم.",
    "أعلنت الشركة عن هاتف جديد ببطارية تدوم طويلا.",
    "تعلم الشاب البرمجة من دروس مجانية على الإنترنت.",
    "زرع الفلاح القمح في الخريف وانتظر المطر بصبر.",
    "هطلت أمطار غزيرة على المدينة طوال الليل.",
    "فاز الفريق المحلي بالمباراة بعد شوط ثان مثير.",
    "طبخت الجدة طبقا من الأرز والعدس للعائلة كلها.",
    "زار السياح المتحف ليشاهدوا المخطوطات النادرة.",
    "كتب الصحفي مقالا عن تلوث النهر وأسبابه.",
    "أصلح العامل الطريق المؤدي إلى المدرسة الابتدائية.",
    "يحب الأطفال اللعب في الحديقة بعد انتهاء الدوام.",
    "سافرت الطالبة إلى العاصمة لتشارك في مسابقة علمية.",
    "اشترى الجيران مصابيح تعمل بالطاقة الشمسية.",
    "غنى الأطفال نشيدا جميلا في حفل نهاية العام.",
]


def make_documents(n: int, seed: int = 0) -> list[str]:
    """``n`` documents of 5-9 sentences drawn from :data:`SENTENCES`."""
    rng = random.Random(seed)
    return [" ".join(rng.choice(SENTENCES) for _ in range(rng.randint(5, 9))) for _ in range(n)]


def _split_of(url: str) -> str:
    bucket = int(hashlib.sha256(url.encode()).hexdigest(), 16) % 10
    return "train" if bucket < 8 else ("val" if bucket == 8 else "test")


def write_corpus(root: Path, n_docs: int = 120, seed: int = 0) -> Path:
    """A corpus directory with the pipeline's schema (``corpus/`` Parquet + ``manifest.json``)."""
    import pandas as pd

    from seqlab.artifacts import write_manifest

    docs = make_documents(n_docs, seed)
    urls = [f"http://127.0.0.1:8000/doc/{i}" for i in range(n_docs)]
    frame = pd.DataFrame(
        {
            "url": urls,
            "title": [d.split(".")[0] for d in docs],
            "text": docs,
            "text_norm": docs,
            "score": [float(i % 11) for i in range(n_docs)],
            "split": [_split_of(u) for u in urls],
            "fetched_at": pd.Timestamp("2024-01-01", tz="UTC"),
            "status": 200,
        }
    )
    (root / "corpus").mkdir(parents=True, exist_ok=True)
    frame.to_parquet(root / "corpus" / "part-0.parquet", index=False)
    write_manifest(root, stage="scrape", metrics={"documents": n_docs})
    return root


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory) -> Path:
    """A 120-document synthetic corpus shared by the session."""
    return write_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="session")
def tokenizer(corpus_dir):
    """A byte-level BPE tokenizer trained on the corpus' train split."""
    from seqlab.lm.data import read_split_texts
    from seqlab.lm.tokenizer import train_bpe_tokenizer

    return train_bpe_tokenizer(read_split_texts(str(corpus_dir), "train"), vocab_size=400, min_frequency=2)


@pytest.fixture(scope="session")
def tiny_gpt2_dir(tmp_path_factory, tokenizer) -> Path:
    """A tiny randomly initialized GPT-2 + tokenizer saved with ``save_pretrained`` (loads by path)."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=64,
        n_embd=32,
        n_layer=2,
        n_head=2,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    path = tmp_path_factory.mktemp("tiny-gpt2")
    GPT2LMHeadModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_model(tiny_gpt2_dir):
    """The tiny GPT-2 and its tokenizer loaded for inference (1 torch thread: shared 2-core CI).

    A freshly initialized GPT-2 predicts an almost uniform next-token distribution, which would make
    top-k/top-p contracts trivially true or untestable; scaling the final LayerNorm's gain by 8 scales
    every logit by 8 and gives peaked, varied distributions like a trained model's.
    """
    import torch

    from seqlab.lm.generator import load_model_and_tokenizer

    torch.set_num_threads(1)
    model, tokenizer = load_model_and_tokenizer(tiny_gpt2_dir, device="cpu")
    with torch.no_grad():
        model.transformer.ln_f.weight.mul_(8.0)
        model.transformer.ln_f.bias.mul_(8.0)
    return model, tokenizer
