"""Config models of the scrape stage: what to crawl and how politely (:class:`SourcesConfig`), and the
whole ``jobs/scrape.yaml`` job (:class:`ScrapeJobConfig`)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from seqlab.config import Config
from seqlab.text.config import NormalizeConfig

__all__ = ["CorpusArgs", "ScrapeJobConfig", "SiteArgs", "SourcesConfig", "SplitConfig"]

MAX_GENERATED_DOCS = 1_000_000  # about 1 GB of Python objects; beyond that generation would swap, not finish


def _host(url: str) -> str:
    return (urlsplit(url).hostname or "").lower()


class SourcesConfig(Config):
    """Which sites to crawl and the politeness rules the crawler keeps while doing it."""

    seeds: list[str] = Field(
        default_factory=list, description="start URLs (http or https); the crawl begins at depth 0 here"
    )
    allowed_domains: list[str] = Field(
        default_factory=list,
        description="hosts whose links are followed (a domain also admits its subdomains); "
        "empty = the hosts of the seeds",
    )
    max_depth: int = Field(3, ge=0, description="links followed at most this many hops from a seed")
    max_pages: int = Field(
        1000,
        ge=1,
        description="at most this many URLs are processed (pages + failures, resumed ones included)",
    )
    per_host_concurrency: int = Field(4, ge=1, description="requests in flight to one host at most")
    delay_s: float = Field(
        0.5,
        ge=0,
        description="minimum seconds between two request starts on one host (robots.txt Crawl-delay "
        "wins when larger); bounds throughput to 1/delay_s pages/s per host",
    )
    request_timeout_s: float = Field(20.0, gt=0, description="total seconds allowed for one request")
    retries: int = Field(3, ge=0, description="extra attempts after a timeout, connection error, 429 or 5xx")
    backoff_s: float = Field(
        0.5, ge=0, description="base of the exponential backoff between retries (with jitter)"
    )
    max_retry_after_s: float = Field(
        60.0, ge=0, description="a server's Retry-After is honoured up to this many seconds"
    )
    max_bytes: int = Field(
        2_000_000, ge=1, description="pages larger than this (decompressed) are abandoned as too_large"
    )
    min_arabic_share: float = Field(
        0.5,
        ge=0,
        le=1,
        description="extracted text whose Arabic letters / all letters is below this is dropped as low_arabic",
    )
    user_agent: str = Field(
        "seqlab/0.1 (+https://example.org/seqlab)",
        min_length=1,
        description="User-Agent header sent with every request and matched against robots.txt",
    )
    obey_robots: bool = Field(True, description="fetch and obey each host's robots.txt (keep this on)")

    @field_validator("seeds")
    @classmethod
    def _check_seeds(cls, seeds: list[str]) -> list[str]:
        for url in seeds:
            parts = urlsplit(url.strip())
            if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
                raise ValueError(f"seed {url!r} is not an http(s) URL with a host")
        return [url.strip() for url in seeds]

    @field_validator("allowed_domains")
    @classmethod
    def _clean_domains(cls, domains: list[str]) -> list[str]:
        cleaned = []
        for domain in domains:
            # Accept "https://example.org/x" by mistake as "example.org".
            host = _host(domain) if "://" in domain else domain.strip().lower().rstrip(".")
            if not host or "/" in host:
                raise ValueError(f"allowed domain {domain!r} is not a host name")
            cleaned.append(host)
        return cleaned

    @model_validator(mode="before")
    @classmethod
    def _default_domains(cls, data: Any) -> Any:
        # Fill in the seeds' hosts at construction so manifests show the domains actually used.
        if isinstance(data, dict) and not data.get("allowed_domains") and data.get("seeds"):
            seeds = data["seeds"]
            if isinstance(seeds, list) and all(isinstance(s, str) for s in seeds):
                hosts = [_host(s.strip()) for s in seeds]
                data = {**data, "allowed_domains": sorted({h for h in hosts if h})}
        return data

    @property
    def domains(self) -> list[str]:
        """The allowed domains, falling back to the seeds' hosts when none are set."""
        return self.allowed_domains or sorted({_host(s) for s in self.seeds})

    @classmethod
    def from_urls(cls, urls: list[str], **kw: Any) -> SourcesConfig:
        """Sources for ``seqlab scrape --out DIR URL...``: the URLs are the seeds, the rest defaults."""
        return cls(seeds=list(urls), **kw)


class SplitConfig(Config):
    """Fractions of documents held out (assigned by a stable hash of the URL)."""

    val: float = Field(0.1, ge=0, lt=1, description="fraction of documents in the validation split")
    test: float = Field(0.1, ge=0, lt=1, description="fraction of documents in the test split")

    @model_validator(mode="after")
    def _leave_some_train(self) -> SplitConfig:
        if self.val + self.test >= 1:
            raise ValueError(f"val + test must be < 1 (got {self.val} + {self.test})")
        return self


class ScrapeJobConfig(Config):
    """``jobs/scrape.yaml``: crawl the sources, extract, normalize, label and write the Parquet corpus."""

    sources: SourcesConfig = Field(default_factory=SourcesConfig, description="what to crawl and how")
    out: str = Field("out/corpus", min_length=1, description="output directory or URI (s3://, gs://, ...)")
    labels: str | None = Field(
        None, description="CSV of url,score labels to join; None = the weak labeler scores documents"
    )
    normalize: NormalizeConfig = Field(
        default_factory=NormalizeConfig, description="Arabic normalization switches for text_norm"
    )
    split: SplitConfig = Field(default_factory=SplitConfig, description="validation/test fractions")
    num_crawl_tasks: int = Field(
        1, ge=1, description="crawl shards (Ray tasks); hosts are divided among them, never split"
    )
    smoke_test: bool = Field(False, description="tiny run that exercises every step (CI, laptops)")


class CorpusArgs(Config):
    """The flags of ``seqlab corpus`` (and the corpus half of ``seqlab site``), checked before any work.

    Numbers must be finite and in range: ``--noise-sd nan`` used to zero every label and exit 0.
    """

    n_docs: int = Field(3000, ge=1, le=MAX_GENERATED_DOCS, description="documents to generate")
    seed: int = Field(0, ge=0, description="random seed of the documents (and the site's faults)")
    noise_sd: float = Field(
        0.5, ge=0.0, le=10.0, allow_inf_nan=False, description="sd of the label noise (score points)"
    )
    sentences: str | None = Field(None, description="sentence bank folder (default data/sentences)")
    base_url: str = Field("http://127.0.0.1:8765", description="site address the article URLs use")

    @field_validator("base_url")
    @classmethod
    def _http(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http(s) address such as http://127.0.0.1:9000")
        return value


class SiteArgs(CorpusArgs):
    """The flags of ``seqlab site``."""

    host: str = Field("127.0.0.1", min_length=1, description="address to bind")
    port: int = Field(8765, ge=0, le=65535, description="TCP port; 0 picks a free one")
    base_path: str = Field("", description="serve every page under this prefix, e.g. /news")
    latency_ms: float = Field(
        0.0, ge=0.0, le=60_000.0, allow_inf_nan=False, description="added to every response"
    )
    crawl_delay: float = Field(
        0.0, ge=0.0, le=3600.0, allow_inf_nan=False, description="robots.txt Crawl-delay (s)"
    )
    no_faults: bool = False

    @field_validator("base_path")
    @classmethod
    def _slash(cls, value: str) -> str:
        if value and not value.startswith("/"):
            raise ValueError("must start with '/'")
        return value
