"""The bundled corpus generator: determinism, the order-dependent relevance, labels, the Parquet layout."""

from __future__ import annotations

import csv
import json
import math
from collections import Counter
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from seqlab.data.splits import split_for_url
from seqlab.synth import corpus
from seqlab.synth.corpus import (
    article_url,
    bundled_corpus_dir,
    documents_frame,
    generate_documents,
    load_sentence_bank,
    materialize_corpus,
    noise_floor_rmse,
    relevance,
    write_labels_csv,
)

REPO = Path(__file__).resolve().parents[2]

# A tiny bank written for these tests (comment and blank lines must be skipped).
TINY_BANK = {
    "technology": [
        "# تعليق يجب تجاهله",
        "تدرّب الباحثون على بناء نموذج لغوي صغير يفهم الأسئلة العربية.",
        "",
        "يحلل البرنامج الصور الطبية بسرعة تفوق الطرق التقليدية.",
        "أطلقت الجامعة مسابقة لبرمجة الروبوتات بين طلاب الهندسة.",
        "يحتاج تدريب الشبكات العصبية إلى معالجات رسومية قوية.",
        "تحمي خوارزميات التشفير بيانات المستخدمين من الاختراق.",
        "صار المساعد الصوتي يجيب عن الأسئلة باللهجات المحلية.",
    ],
    "sport": [
        "تأهل الفريق إلى الدور النهائي بعد فوز صعب في الوقت الإضافي.",
        "تدرب العداؤون في الصباح الباكر قبل اشتداد الحرارة.",
        "أحرز الحارس ركلة جزاء حاسمة في آخر دقيقة.",
        "امتلأت المدرجات بالجماهير منذ الظهيرة.",
    ],
    "cooking": [
        "اخلط الدقيق بالماء الدافئ حتى تتماسك العجينة.",
        "يطهى العدس على نار هادئة مع الكمون والبصل.",
        "قدمت الجدة طبق الكسكس مع الخضار المطهوة.",
        "يضاف الليمون إلى السلطة قبل التقديم مباشرة.",
    ],
}


@pytest.fixture
def tiny_bank_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "sentences"
    folder.mkdir()
    for theme, lines in TINY_BANK.items():
        (folder / f"{theme}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


@pytest.fixture
def tiny_bank(tiny_bank_dir: Path) -> dict[str, list[str]]:
    return load_sentence_bank(tiny_bank_dir)


@pytest.fixture(scope="module")
def default_docs() -> list[corpus.Document]:
    """The default set (3000 docs, seed 0) from the shipped sentence bank, generated once."""
    return generate_documents(3000, 0)


# --- sentence bank --------------------------------------------------------------------------------


def test_load_sentence_bank_skips_comments_and_blanks(tiny_bank):
    assert sorted(tiny_bank) == ["cooking", "sport", "technology"]
    assert len(tiny_bank["technology"]) == 6
    assert all(s and not s.startswith("#") for lines in tiny_bank.values() for s in lines)


def test_load_sentence_bank_errors_are_clear(tmp_path, tiny_bank_dir):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_sentence_bank(tmp_path / "nope")
    (tiny_bank_dir / "technology.txt").unlink()
    with pytest.raises(ValueError, match="technology"):
        load_sentence_bank(tiny_bank_dir)


def test_shipped_bank_has_the_on_topic_theme_and_off_topic_themes():
    bank = load_sentence_bank()
    assert corpus.ON_TOPIC_THEME in bank and len(bank) >= 3
    assert len(bank[corpus.ON_TOPIC_THEME]) >= 50


# --- the relevance function -----------------------------------------------------------------------


def test_relevance_matches_the_documented_formula():
    # flags [1, 0], title on-topic: w = [1, 2**-0.7], clean = 10 * (1 + 1) / (1 + 1 + 2**-0.7)
    assert relevance([True, False], True) == pytest.approx(10 * 2 / (2 + 2**-0.7))
    assert relevance([True] * 7, True) == pytest.approx(10.0)
    assert relevance([False] * 7, False) == 0.0


def test_relevance_depends_on_order_and_rewards_an_on_topic_lead():
    lead = relevance([True, False, False, False, False], False)
    tail = relevance([False, False, False, False, True], False)
    assert lead > tail > 0
    assert relevance([True, False, False], True) > relevance([True, False, False], False)
    with pytest.raises(ValueError):
        relevance([], True)


def test_reordering_a_documents_sentences_changes_its_clean_score(tiny_bank):
    doc = next(d for d in generate_documents(200, 1, bank=tiny_bank) if 0 < sum(d.on_topic) < len(d.on_topic))
    on_first = sorted(doc.on_topic, reverse=True)  # the same sentences, on-topic ones first
    on_last = sorted(doc.on_topic)
    actual = relevance(doc.on_topic, doc.on_topic[0])
    assert doc.clean_score == pytest.approx(actual)
    assert relevance(on_first, on_first[0]) >= actual >= relevance(on_last, on_last[0])
    assert relevance(on_first, on_first[0]) > relevance(on_last, on_last[0])


# --- generation -----------------------------------------------------------------------------------


def test_generation_is_deterministic_per_seed_and_seeds_differ(tiny_bank):
    a = generate_documents(40, 7, bank=tiny_bank)
    assert a == generate_documents(40, 7, bank=tiny_bank)
    b = generate_documents(40, 8, bank=tiny_bank)
    assert [d.sentences for d in a] != [d.sentences for d in b]
    assert generate_documents(15, 7, bank=tiny_bank) == a[:15]  # doc i depends on (seed, i) only


def test_noise_sd_changes_only_the_label(tiny_bank):
    noisy = generate_documents(30, 2, bank=tiny_bank, noise_sd=1.0)
    clean = generate_documents(30, 2, bank=tiny_bank, noise_sd=0.0)
    assert [d.sentences for d in noisy] == [d.sentences for d in clean]
    assert all(d.score == round(d.clean_score, 1) for d in clean)
    assert any(n.score != c.score for n, c in zip(noisy, clean, strict=True))


def test_documents_are_well_formed(tiny_bank):
    tech = set(tiny_bank["technology"])
    docs = generate_documents(300, 3, bank=tiny_bank)
    assert len({d.doc_id for d in docs}) == len({d.slug for d in docs}) == 300
    for d in docs:
        assert corpus.MIN_SENTENCES <= len(d.sentences) <= corpus.MAX_SENTENCES
        assert d.on_topic == tuple(s in tech for s in d.sentences)
        assert 0.0 <= d.clean_score <= 10.0 and 0.0 <= d.score <= 10.0
        assert d.score == round(d.score, 1)
        assert d.clean_score == pytest.approx(relevance(d.on_topic, d.on_topic[0]))
        assert d.sentences[0].startswith(d.title) and d.title
        assert d.text == " ".join(d.sentences)
        assert d.theme in tiny_bank and d.slug.startswith(d.theme)


def test_scores_cover_the_whole_range(default_docs):
    scores = pd.Series([d.score for d in default_docs])
    bins = pd.cut(scores, bins=[-0.1, 2, 4, 6, 8, 10]).value_counts()
    assert (bins > 0.07 * len(scores)).all(), bins.to_dict()
    fractions = Counter(round(sum(d.on_topic) / len(d.on_topic), 1) for d in default_docs)
    assert fractions[0.0] > 100 and fractions[1.0] > 100 and fractions[0.5] > 100


def test_noise_floor_is_close_to_the_noise_sd(default_docs, tiny_bank):
    floor = noise_floor_rmse(default_docs)
    # Clipping at 0 and 10 halves the noise variance of pure off/on-topic docs: a bit below 0.5.
    assert 0.38 < floor < 0.51
    exact = generate_documents(500, 0, bank=tiny_bank, noise_sd=0.0)
    assert noise_floor_rmse(exact) < 0.05  # only the rounding to 0.1 is left
    assert noise_floor_rmse(generate_documents(1000, 0, bank=tiny_bank, noise_sd=1.0)) > 0.75


# --- urls, splits, labels ---------------------------------------------------------------------------


def test_split_for_url_is_stable_and_roughly_80_10_10(default_docs):
    urls = [article_url(d) for d in default_docs]
    splits = [split_for_url(u) for u in urls]
    assert splits == [split_for_url(u) for u in urls]
    counts = Counter(splits)
    assert abs(counts["train"] / len(urls) - 0.8) < 0.03
    assert abs(counts["val"] / len(urls) - 0.1) < 0.02 and abs(counts["test"] / len(urls) - 0.1) < 0.02
    # the same page under a different spelling of its URL lands in the same split
    for u in urls[:50]:
        assert split_for_url(u.replace("http://", "HTTP://") + "#comments") == split_for_url(u)
    assert Counter(split_for_url(u, val=0.0, test=0.0) for u in urls[:200]) == {"train": 200}
    with pytest.raises(ValueError):
        split_for_url(urls[0], val=0.7, test=0.6)


def test_shipped_labels_csv_matches_the_default_set(default_docs):
    with (REPO / "data" / "labels.csv").open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["url"] for r in rows] == [article_url(d, "http://127.0.0.1:8765") for d in default_docs]
    assert [float(r["score"]) for r in rows] == [d.score for d in default_docs], (
        "data/labels.csv is stale: regenerate with `seqlab corpus --labels data/labels.csv`"
    )


def test_write_labels_csv_round_trips_through_the_labels_reader(tmp_path, tiny_bank):
    from seqlab.data.labeling import read_labels_csv

    docs = generate_documents(25, 4, bank=tiny_bank)
    path = write_labels_csv(docs, tmp_path / "labels.csv", base_url="http://127.0.0.1:9000")
    labels = read_labels_csv(path)
    assert labels == {article_url(d, "http://127.0.0.1:9000"): d.score for d in docs}


def test_documents_frame_columns(tiny_bank):
    docs = generate_documents(12, 0, bank=tiny_bank)
    frame = documents_frame(docs, base_url="http://h.example")
    assert list(frame.columns) == ["url", "title", "text", "score", "clean_score", "theme"]
    assert frame["url"].iloc[3] == f"http://h.example/articles/{docs[3].slug}.html"
    assert frame["score"].tolist() == [d.score for d in docs]


# --- the materialized corpus ------------------------------------------------------------------------


def test_materialize_corpus_layout_schema_and_manifest(tmp_path, tiny_bank_dir):
    from seqlab.text import normalize

    out = materialize_corpus(tmp_path / "c", n_docs=60, seed=5, noise_sd=0.3, bank_dir=tiny_bank_dir)
    table = pq.read_table(Path(out) / "corpus")
    assert table.column_names == [
        "url",
        "title",
        "text",
        "text_norm",
        "score",
        "split",
        "fetched_at",
        "status",
        "published",
        "author",
        "canonical_url",
        "language",
    ]
    assert str(table.schema.field("fetched_at").type) == "timestamp[us, tz=UTC]"
    # a generated corpus has no pages, so nothing states a date, an author, a canonical URL or a language
    assert all(table.column(c).null_count == len(table) for c in ("published", "author", "canonical_url"))
    df = table.to_pandas()
    docs = generate_documents(60, 5, bank=load_sentence_bank(tiny_bank_dir), noise_sd=0.3)
    assert df["url"].tolist() == [article_url(d) for d in docs]
    assert df["score"].tolist() == [d.score for d in docs]
    assert df["text_norm"].tolist() == [normalize(d.text) for d in docs]
    assert df["split"].tolist() == [split_for_url(u) for u in df["url"]]
    assert set(df["status"]) == {"ok"} and df["fetched_at"].nunique() == 1

    manifest = json.loads((Path(out) / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["stage"] == "corpus" and manifest["labeler"] == "generator"
    assert manifest["config"]["n_docs"] == 60 and manifest["config"]["seed"] == 5
    assert manifest["metrics"]["n_docs"] == 60
    assert manifest["metrics"]["noise_floor_rmse"] == pytest.approx(noise_floor_rmse(docs), abs=1e-4)
    assert manifest["metrics"]["split_sizes"] == dict(Counter(df["split"])) | {
        k: 0 for k in ("train", "val", "test") if k not in set(df["split"])
    }


def test_materialize_corpus_is_idempotent(tmp_path, tiny_bank_dir):
    out = Path(materialize_corpus(tmp_path / "c", n_docs=20, seed=1, bank_dir=tiny_bank_dir))
    part = out / "corpus" / "part-00000.parquet"
    manifest = (out / "manifest.json").read_text(encoding="utf-8")
    stamp = part.stat().st_mtime_ns
    materialize_corpus(out, n_docs=20, seed=1, bank_dir=tiny_bank_dir)
    assert (
        part.stat().st_mtime_ns == stamp and (out / "manifest.json").read_text(encoding="utf-8") == manifest
    )
    from seqlab.artifacts import OutputTaken

    with pytest.raises(OutputTaken, match="another config"):  # another corpus is not silently replaced
        materialize_corpus(out, n_docs=30, seed=1, bank_dir=tiny_bank_dir)
    assert len(pd.read_parquet(out / "corpus")) == 20
    materialize_corpus(out, n_docs=30, seed=1, bank_dir=tiny_bank_dir, overwrite=True)
    assert len(pd.read_parquet(out / "corpus")) == 30
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []  # no temp dirs left


def test_bundled_corpus_dir_materializes_once(tmp_path, tiny_bank_dir, monkeypatch):
    calls = []
    real = corpus.materialize_corpus
    monkeypatch.setattr(corpus, "materialize_corpus", lambda *a, **k: calls.append(a) or real(*a, **k))
    monkeypatch.setattr(corpus, "DEFAULT_N_DOCS", 40)  # keep the test small; same code path
    monkeypatch.setenv("SEQLAB_CACHE", str(tmp_path / "cache"))
    first = bundled_corpus_dir(bank_dir=tiny_bank_dir)
    assert Path(first).parent == tmp_path / "cache" and Path(first).name.startswith("bundled-")
    assert bundled_corpus_dir(bank_dir=tiny_bank_dir) == first and len(calls) == 1
    assert len(pd.read_parquet(Path(first) / "corpus")) == 40
    other = bundled_corpus_dir(tmp_path / "elsewhere", bank_dir=tiny_bank_dir)
    assert Path(other).parent == tmp_path / "elsewhere"


def test_corpus_cli_writes_labels_and_corpus(tmp_path, tiny_bank_dir, capsys):
    from seqlab.cli import main

    rc = main(
        [
            "corpus",
            "--n-docs", "30",
            "--seed", "2",
            "--sentences", str(tiny_bank_dir),
            "--out", str(tmp_path / "c"),
            "--labels", str(tmp_path / "l.csv"),
            "--base-url", "http://127.0.0.1:9999",
        ]
    )  # fmt: skip
    assert rc == 0
    printed = capsys.readouterr().out
    assert "noise floor RMSE" in printed and "split sizes" in printed
    rows = (tmp_path / "l.csv").read_text(encoding="utf-8").splitlines()
    assert (
        rows[0] == "url,score" and len(rows) == 31 and rows[1].startswith("http://127.0.0.1:9999/articles/")
    )
    assert (tmp_path / "c" / "manifest.json").is_file()
    assert math.isfinite(
        json.loads((tmp_path / "c" / "manifest.json").read_text())["metrics"]["noise_floor_rmse"]
    )


@pytest.mark.parametrize(
    "verb, flags, named",
    [
        ("corpus", ["--noise-sd", "nan"], "--noise-sd"),
        ("corpus", ["--noise-sd", "-1"], "--noise-sd"),
        ("corpus", ["--noise-sd", "inf"], "--noise-sd"),
        ("corpus", ["--n-docs", "-5"], "--n-docs"),
        ("corpus", ["--n-docs", "0"], "--n-docs"),
        ("corpus", ["--n-docs", "1000000000000"], "--n-docs"),
        ("corpus", ["--seed", "-1"], "--seed"),
        ("site", ["--port", "99999"], "--port"),
        ("site", ["--port", "-1"], "--port"),
        ("site", ["--latency-ms", "-5"], "--latency-ms"),
        ("site", ["--latency-ms", "nan"], "--latency-ms"),
        ("site", ["--crawl-delay", "-1"], "--crawl-delay"),
        ("site", ["--base-path", "news"], "--base-path"),
        ("site", ["--n-docs", "0"], "--n-docs"),
        ("corpus", ["--base-url", "notaurl", "--labels", "{tmp}/l.csv"], "--base-url"),
        ("corpus", ["--sentences", "{tmp}/no-bank"], "sentence bank directory"),
        ("site", ["--sentences", "{tmp}/no-bank"], "sentence bank directory"),
        ("corpus", ["--labels", "{tmp}"], "is a directory"),
    ],
)
def test_bad_flags_are_one_line_errors_before_any_work(verb, flags, named, tmp_path, capsys):
    from seqlab.cli import main

    out = tmp_path / "out"
    extra = ["--out", str(out)] if verb == "corpus" and "--labels" not in flags else []
    assert main([verb, *(f.format(tmp=tmp_path) for f in flags), *extra]) == 2
    captured = capsys.readouterr()
    assert named in captured.err and "Traceback" not in captured.err
    assert "--labels" in flags or not captured.out  # nothing generated, nothing served
    assert not out.exists()
