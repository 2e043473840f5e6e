"""``seqlab scrape --out s3://...`` end to end against a local S3 endpoint (moto): every task writes through
pyarrow.fs, nothing lands on the local disk, and the outputs read back from the bucket."""

import json
import os
import subprocess
import sys

import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from seqlab.corpus import CORPUS_COLUMNS
from seqlab.synth.corpus import generate_documents
from seqlab.synth.site import LocalSite

pytestmark = pytest.mark.slow
moto_server = pytest.importorskip("moto.server", reason="pip install 'moto[server]' (in .[dev])")


@pytest.fixture()
def s3(monkeypatch):
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {
        "AWS_ENDPOINT_URL": f"http://{host}:{port}",  # pyarrow's S3 (and Ray Data's reads) honour it
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    fs = pafs.S3FileSystem(endpoint_override=env["AWS_ENDPOINT_URL"], allow_bucket_creation=True)
    fs.create_dir("corpora")
    yield fs, env
    server.stop()


def test_scrape_writes_raw_corpus_failures_and_manifest_to_s3(s3, tmp_path):
    fs, env = s3
    with LocalSite(generate_documents(12, seed=5), port=0, faults=True, seed=5) as site:
        run_env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"} | env
        done = subprocess.run(
            [
                *(sys.executable, "-m", "seqlab", "scrape", site.index_url, "--out", "s3://corpora/run1"),
                *("--sources.delay_s=0", "--sources.request_timeout_s=2", "--sources.retries=1"),
                "--sources.backoff_s=0.05",
            ],
            cwd=tmp_path,
            env=run_env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert done.returncode == 0, done.stderr[-3000:]

    manifest = json.loads(fs.open_input_stream("corpora/run1/manifest.json").read())
    assert manifest["stage"] == "scrape"
    corpus = pq.read_table("corpora/run1/corpus", filesystem=fs)
    assert corpus.column_names == CORPUS_COLUMNS
    assert manifest["metrics"]["docs"] == corpus.num_rows > 0
    raw = fs.get_file_info(pafs.FileSelector("corpora/run1/raw"))
    assert raw and all(i.base_name.startswith("part-") for i in raw)
    failures = pq.read_table("corpora/run1/failures/process.parquet", filesystem=fs)
    assert "url" in failures.column_names
    # the faulty site's broken pages are accounted for in the bucket, as on a local disk
    assert manifest["metrics"]["failed"] > 0
    assert not any(tmp_path.iterdir()), f"the scrape wrote locally: {list(tmp_path.iterdir())}"
