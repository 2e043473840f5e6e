"""Config models of the scrape stage: what to crawl and how politely (:class:`SourcesConfig`), and the
whole ``jobs/scrape.yaml`` job (:class:`ScrapeJobConfig`)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from seqlab.config import Config, JobConfig
from seqlab.text.config import NormalizeConfig

__all__ = ["FocusConfig", "ScrapeJobConfig", "SourcesConfig", "SplitConfig"]


def _host(url: str) -> str:
    return (urlsplit(url).hostname or "").lower()


class FocusConfig(Config):
    """A focused crawl: a trained scorer orders the frontier (``seqlab scrape --focus SCORER_DIR``).

    A link's priority is ``(1 - blend) * score(what the link shows) + blend * score(the linking page)``,
    where what the link shows is its title attribute, anchor text and the page text around it; the
    highest priority is fetched first. Seeds (and pages listed by sitemaps and feeds) still come first.
    """

    scorer: str = Field(..., min_length=1, description="scorer artifact directory (or URI) from seqlab tune")
    blend: float = Field(
        0.3,
        ge=0,
        le=1,
        allow_inf_nan=False,
        description="weight of the linking page's score in a link's priority (0: the link's own text only; "
        "it carries links whose text says nothing, such as a listing's page 2)",
    )
    threshold: float = Field(
        5.0,
        ge=0,
        le=10,
        allow_inf_nan=False,
        description="a fetched page the scorer rates at least this counts as a harvest (the progress line's "
        "harvest rate)",
    )

    @model_validator(mode="before")
    @classmethod
    def _path_alone(cls, data: Any) -> Any:
        return {"scorer": data} if isinstance(data, str) else data  # focus: runs/tune/best


class SourcesConfig(Config):
    """Which sites to crawl and the politeness rules the crawler keeps while doing it."""

    seeds: list[str] = Field(
        default_factory=list, description="start URLs (http or https); the crawl begins at depth 0 here"
    )
    sitemaps: list[str] = Field(
        default_factory=list,
        description="sitemap URLs (a sitemap, a sitemap index, gzipped or not, or a text list): the pages "
        "they list are crawled as seeds",
    )
    feeds: list[str] = Field(
        default_factory=list, description="RSS or Atom feed URLs: the entries' pages are crawled as seeds"
    )
    robots_sitemaps: bool = Field(
        True,
        description="also read the Sitemap: lines of each seed host's robots.txt (as news crawlers do; "
        "not when obey_robots is off, which never asks for robots.txt)",
    )
    allowed_domains: list[str] = Field(
        default_factory=list,
        description="hosts whose links are followed (a domain also admits its subdomains); "
        "empty = the hosts of the seeds, sitemaps and feeds",
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
    focus: FocusConfig | None = Field(
        None,
        description="order the frontier by a trained scorer (a scorer directory, or {scorer, blend, "
        "threshold}); None: breadth-first",
    )

    @field_validator("seeds", "sitemaps", "feeds")
    @classmethod
    def _check_urls(cls, urls: list[str], info) -> list[str]:
        what = {"seeds": "seed", "sitemaps": "sitemap", "feeds": "feed"}[info.field_name]
        for url in urls:
            parts = urlsplit(url.strip())
            if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
                raise ValueError(f"{what} {url!r} is not an http(s) URL with a host")
        return [url.strip() for url in urls]

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
        # Fill in the start URLs' hosts at construction so manifests show the domains actually used.
        if isinstance(data, dict) and not data.get("allowed_domains"):
            starts = [u for key in ("seeds", "sitemaps", "feeds") for u in (data.get(key) or [])]
            if starts and all(isinstance(s, str) for s in starts):
                hosts = [_host(s.strip()) for s in starts]
                data = {**data, "allowed_domains": sorted({h for h in hosts if h})}
        return data

    @property
    def start_urls(self) -> list[str]:
        """Seeds, sitemaps and feeds: every URL a crawl of these sources starts from."""
        return [*self.seeds, *self.sitemaps, *self.feeds]

    @property
    def domains(self) -> list[str]:
        """The allowed domains, falling back to the start URLs' hosts when none are set."""
        return self.allowed_domains or sorted({_host(s) for s in self.start_urls})

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


class ScrapeJobConfig(JobConfig):
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
    smoke_test: bool = Field(False, description="crawl at most 50 pages, 2 hops deep (CI, laptops)")

    def _smoke_reduced(self) -> ScrapeJobConfig:
        sources = {"max_pages": min(self.sources.max_pages, 50), "max_depth": min(self.sources.max_depth, 2)}
        return type(self).model_validate(
            {**self.model_dump(), "sources": {**self.sources.model_dump(), **sources}}
        )
