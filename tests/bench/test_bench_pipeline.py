"""``seqlab bench pipeline``: the pandas baselines in-process, the whole benchmark in its own process.

The full run starts two local Ray sessions of its own (1 and 2 CPUs), so it runs as a subprocess and never
touches the test session's shared Ray.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from seqlab.bench import pipeline as bench
from seqlab.config import ConfigError
from seqlab.text import normalize

REPO = Path(__file__).resolve().parents[2]
ROWS = ("pandas Series.map", "pandas normalize_batch", "Ray Data, 1 CPU", "Ray Data, 2 CPUs")
ROW_RE = re.compile(
    r"^\s+(?P<name>.+?)\s+(?P<secs>[\d.]+)\s+(?P<rate>[\d,]+)\s+(?P<ratio>[\d.]+)x"
    r"\s+(?P<share>\d+%|-)\s+(?P<load>[\d.]+)\s+(?P<same>yes|NO)$"
)


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    return parser.parse_args(argv)


def test_pandas_baselines_agree_with_normalize():
    texts = bench.make_texts(40, seed=3)
    assert len(texts) == 40 and all(isinstance(t, str) and t for t in texts)
    results = bench.time_pandas(texts, repeat=2)
    assert [r.name for r in results] == ["pandas Series.map", "pandas normalize_batch"]
    expected = [normalize(t) for t in texts]
    for r in results:
        assert r.outputs == expected  # both keep row order
        assert r.seconds > 0 and math.isfinite(r.seconds)
        assert r.cpu_share is not None and r.cpu_share > 0


@pytest.mark.parametrize("flag", ["--docs", "--repeat", "--batch-size", "--blocks"])
def test_rejects_non_positive_options(flag):
    with pytest.raises(ConfigError, match="must be >= 1"):
        bench.run(_parse([flag, "0"]))


@pytest.mark.slow
def test_bench_pipeline_prints_every_row_with_positive_figures():
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.setdefault("OMP_NUM_THREADS", "1")
    n_docs = 300
    proc = subprocess.run(
        [sys.executable, "-m", "seqlab", "bench", "pipeline", "--docs", str(n_docs), "--repeat", "1"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,  # two Ray start-ups take ~40 s on a loaded 2-core machine
    )
    out = proc.stdout
    assert proc.returncode == 0, f"stdout:\n{out}\nstderr:\n{proc.stderr[-3000:]}"
    assert f"{n_docs:,} generated documents" in out
    assert f"os.cpu_count()={os.cpu_count()}" in out

    rows = {m["name"]: m for m in map(ROW_RE.match, out.splitlines()) if m}
    assert sorted(rows) == sorted(ROWS), out
    base_secs = float(rows["pandas Series.map"]["secs"])
    for name, row in rows.items():
        secs, rate = float(row["secs"]), float(row["rate"].replace(",", ""))
        assert secs > 0 and rate > 0, row.group(0)
        assert rate == pytest.approx(n_docs / secs, rel=0.1), row.group(0)  # docs/s matches the time
        assert float(row["ratio"]) == pytest.approx(base_secs / secs, rel=0.1, abs=0.01), row.group(0)
        assert row["same"] == "yes", row.group(0)
        assert (row["share"] == "-") == name.startswith("Ray Data"), row.group(0)

    for label in (
        "speedup Ray Data 2 CPUs vs 1 CPU",
        "Ray Data 2 CPUs vs pandas Series.map",
        "Ray Data 2 CPUs vs pandas normalize_batch",
    ):
        match = re.search(re.escape(label) + r":\s+([\d.]+)x", out)
        assert match and float(match.group(1)) > 0, out
    assert re.search(r"1-min load average at end [\d.]+ on \d+ CPUs", out), out
