import pytest

from seqlab.data.labeling import label_key, lexicon_score, read_labels_csv

TECH = "يعتمد الذكاء الاصطناعي على خوارزميات تتعلم من البيانات"
OFF = "طبخت جدتي المقلوبة بالأرز والباذنجان يوم الجمعة"


def test_label_key_canonical_forms():
    assert label_key("HTTP://Example.COM:80/a/b#frag") == "http://example.com/a/b"
    assert label_key("https://x.example:443/?b=2&a=1&utm_source=n") == "https://x.example/?a=1&b=2"
    assert label_key("http://127.0.0.1:8765/articles/x.html") == "http://127.0.0.1:8765/articles/x.html"
    assert label_key(" not a url ") == "not a url"


def test_read_labels_csv_joins_on_normalized_url(tmp_path):
    f = tmp_path / "labels.csv"
    f.write_text("url,score\nHTTP://A.example/x,7.5\nhttp://a.example/y,0\n", encoding="utf-8")
    assert read_labels_csv(f) == {"http://a.example/x": 7.5, "http://a.example/y": 0.0}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("link,score\nhttp://a/x,1\n", "missing"),
        ("url,score\nhttp://a/x,high\n", r"labels\.csv:2: score 'high'"),
        ("url,score\nhttp://a/x,11\n", "outside"),
    ],
)
def test_read_labels_csv_errors_name_the_problem(tmp_path, content, message):
    f = tmp_path / "labels.csv"
    f.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        read_labels_csv(f)


def test_lexicon_score_rewards_topic_and_lead_position():
    on = lexicon_score(f"{TECH}. {TECH}. {TECH}.")
    off = lexicon_score(f"{OFF}. {OFF}. {OFF}.")
    lead = lexicon_score(f"{TECH}. {OFF}. {OFF}.")
    tail = lexicon_score(f"{OFF}. {OFF}. {TECH}.")
    assert on == 10.0 and off == 0.0
    assert 0.0 < tail < lead < on
    assert lexicon_score("") == 0.0
