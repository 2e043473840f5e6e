import json

import pytest
import torch

from seqlab.models import (
    RNNRegressor,
    TokenizerConfig,
    encode_texts,
    load_scorer,
    save_scorer,
    train_tokenizer,
)

torch.set_num_threads(1)

# Short Arabic documents written for this test.
TEXTS = [
    "الحاسوب يعالج البيانات بسرعة كبيرة",
    "تعلمت البرمجة في الجامعة مع أصدقائي",
    "نزل المطر على الحديقة طوال الليل",
    "الذكاء الاصطناعي يغير طريقة عمل الشركات",
    "ذهبنا إلى السوق لشراء الخضار والفاكهة",
    "الشبكة العصبية تتعلم من الأمثلة الكثيرة",
]


@pytest.mark.parametrize("kind", ["wordlevel", "bpe", "wordpiece"])
def test_tokenizer_reserves_pad_and_unk_and_truncates(kind):
    cfg = TokenizerConfig(kind=kind, vocab_size=200, min_frequency=1, max_len=4)
    tok = train_tokenizer(TEXTS * 3, cfg)
    assert tok.token_to_id("[PAD]") == 0 and tok.token_to_id("[UNK]") == 1
    ids, offsets = encode_texts(tok, ["الحاسوب يعالج البيانات بسرعة كبيرة جدا جدا", "", "البيانات"])
    lengths = offsets[1:] - offsets[:-1]
    assert lengths[0] == 4  # truncated to max_len
    assert lengths[1] == 1 and ids[offsets[1]] == 1  # an empty document becomes one [UNK]
    assert lengths[2] >= 1 and 0 not in ids


def test_wordlevel_maps_unseen_words_to_unk():
    tok = train_tokenizer(TEXTS, TokenizerConfig(min_frequency=1))
    ids = tok.encode("كلمة_لم_تظهر الحاسوب").ids
    assert ids[0] == 1 and ids[-1] == tok.token_to_id("الحاسوب")


def test_save_load_round_trip_gives_identical_predictions(tmp_path):
    tok = train_tokenizer(TEXTS, TokenizerConfig(min_frequency=1, max_len=32))
    torch.manual_seed(0)
    model = RNNRegressor(
        tok.get_vocab_size(), embed_dim=8, cell="gru", bidirectional=True, hidden=8, pooling="attention"
    )
    with torch.no_grad():  # move away from the all-5.0 start so predictions differ per text
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    save_scorer(
        str(tmp_path / "scorer"),
        model,
        tok,
        TokenizerConfig(min_frequency=1, max_len=32),
        {"val_rmse": 1.25},
        inputs={"corpus": {"stage": "corpus", "path": "x"}},
        normalize=None,
    )
    scorer = load_scorer(str(tmp_path / "scorer"))
    texts = [*TEXTS, "نص جديد لم يره النموذج", ""]
    before = model.eval()
    ids, offsets = encode_texts(tok, texts)
    expected = []
    with torch.no_grad():
        for i in range(len(texts)):
            seq = torch.tensor(ids[offsets[i] : offsets[i + 1]], dtype=torch.long)[None]
            expected.append(before(seq, torch.tensor([seq.shape[1]])).item())
    got = scorer.predict(texts, batch_size=3)  # several length-sorted batches; output order must hold
    assert got == pytest.approx(expected, abs=1e-6)
    assert len(set(round(g, 4) for g in got)) > 3
    assert all(0 <= g <= 10 for g in got)
    manifest = json.loads((tmp_path / "scorer" / "manifest.json").read_text())
    assert manifest["stage"] == "scorer" and manifest["metrics"]["val_rmse"] == 1.25
    assert manifest["inputs"]["corpus"]["hash"] and manifest["parameters"] == model.num_parameters()
    assert scorer.predict([]) == []
    for bad, says in [("نص واحد", "single str"), (None, "NoneType"), (["نص", 3], r"texts\[1\] is int")]:
        with pytest.raises(TypeError, match=says):
            scorer.predict(bad)
    texts = ["", "🙂🙂", "plain English", "١٢٣ ـــ", "نص عربي", "mixed نص"]
    assert scorer.no_arabic(texts) == [True, True, True, True, False, False]


def test_load_scorer_names_a_missing_artifact(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a scorer artifact"):
        load_scorer(str(tmp_path))


@pytest.mark.parametrize(
    "name, damage, error",
    [
        ("tokenizer.json", "delete", FileNotFoundError),
        ("config.json", "delete", FileNotFoundError),
        ("model.safetensors", "truncate", ValueError),
        ("config.json", "truncate", ValueError),
        ("tokenizer.json", "truncate", ValueError),
    ],
)
def test_load_scorer_names_the_damaged_file(tmp_path, name, damage, error):
    tok = train_tokenizer(TEXTS, TokenizerConfig(min_frequency=1))
    model = RNNRegressor(tok.get_vocab_size(), embed_dim=8, hidden=8, pooling="mean")
    save_scorer(str(tmp_path), model, tok)
    target = tmp_path / name
    assert target.is_file(), f"save_scorer no longer writes {name}; update this test"
    if damage == "delete":
        target.unlink()
    else:
        target.write_bytes(target.read_bytes()[: target.stat().st_size // 2])
    with pytest.raises(error, match=name.replace(".", r"\.")):
        load_scorer(str(tmp_path))


def test_predict_normalizes_raw_text_like_the_corpus(tmp_path):
    from seqlab.text import normalize

    raw = "الذَّكاءُ الاصطناعـــي يُغيّر العالم 2024 https://example.com"  # diacritics, tatweel, digits, URL
    tok = train_tokenizer([normalize(t) for t in [*TEXTS, raw]], TokenizerConfig(min_frequency=1))
    torch.manual_seed(0)
    model = RNNRegressor(tok.get_vocab_size(), embed_dim=8, hidden=8, pooling="mean")
    save_scorer(str(tmp_path), model, tok)
    scorer = load_scorer(str(tmp_path))
    assert scorer.predict([raw]) == scorer.predict([normalize(raw)])
    assert normalize(raw) != raw


def test_predict_applies_the_recorded_switches_and_column(tmp_path):
    """Non-default switches travel with the artifact: raw text scores as its training-time form."""
    from seqlab.text import normalize
    from seqlab.text.config import NormalizeConfig

    raw = "مدرسةٌ جديدة في المدينة وفيها مكتبة كبيرة 2024"
    switches = NormalizeConfig(teh_marbuta=True, remove_digits=False)
    trained_on = normalize(raw, switches)
    assert trained_on != normalize(raw)  # the switches matter for this text
    tok = train_tokenizer([normalize(t, switches) for t in [*TEXTS, raw]], TokenizerConfig(min_frequency=1))
    torch.manual_seed(0)
    model = RNNRegressor(tok.get_vocab_size(), embed_dim=8, hidden=8, pooling="mean")
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    save_scorer(str(tmp_path / "norm"), model, tok, normalize=switches, text_column="text_norm")
    scorer = load_scorer(str(tmp_path / "norm"))
    direct = load_scorer(str(tmp_path / "norm"))
    direct.prepare = lambda t: t
    assert scorer.predict([raw]) == direct.predict([trained_on])
    assert scorer.predict([raw]) != direct.predict([normalize(raw)])
    config = json.loads((tmp_path / "norm" / "config.json").read_text())
    assert config["normalize"]["teh_marbuta"] is True and config["text_column"] == "text_norm"

    save_scorer(str(tmp_path / "raw"), model, tok, normalize=None, text_column="text")
    raw_scorer = load_scorer(str(tmp_path / "raw"))
    assert raw_scorer.predict([raw]) == direct.predict([raw])


def test_corpus_normalization_reads_every_manifest_form():
    from seqlab.text.config import NormalizeConfig, corpus_normalization

    assert corpus_normalization(None) == NormalizeConfig()
    assert corpus_normalization({"normalize": {"teh_marbuta": True}}).teh_marbuta
    assert corpus_normalization({"config": {"normalize": {"fold_hamza": True}}}).fold_hamza
