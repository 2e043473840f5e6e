"""Config models of the synthetic data: the generated corpus (``seqlab corpus``) and the local site
(``seqlab site``, :class:`SiteConfig`). Their flags are made from these fields."""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import Field, field_validator

from seqlab.config import Config
from seqlab.synth.corpus import DEFAULT_BASE_URL, DEFAULT_N_DOCS, DEFAULT_NOISE_SD, DEFAULT_SEED

__all__ = ["CorpusArgs", "SiteArgs", "SiteConfig"]

MAX_GENERATED_DOCS = 1_000_000  # about 1 GB of Python objects; beyond that generation would swap, not finish


class CorpusArgs(Config):
    """The flags of ``seqlab corpus`` (and the corpus half of ``seqlab site``), checked before any work.

    Numbers must be finite and in range: ``--noise-sd nan`` used to zero every label and exit 0.
    """

    n_docs: int = Field(DEFAULT_N_DOCS, ge=1, le=MAX_GENERATED_DOCS, description="documents to generate")
    seed: int = Field(DEFAULT_SEED, ge=0, description="random seed of the documents (and the site's faults)")
    noise_sd: float = Field(
        DEFAULT_NOISE_SD,
        ge=0.0,
        le=10.0,
        allow_inf_nan=False,
        description="sd of the label noise (score points)",
    )
    sentences: str | None = Field(None, description="sentence bank folder (default data/sentences)")
    base_url: str = Field(DEFAULT_BASE_URL, description="site address the article URLs use")

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

    def site_config(self) -> SiteConfig:
        """What the site serves, from these flags."""
        return SiteConfig(
            base_path=self.base_path,
            latency_s=self.latency_ms / 1000.0,
            faults=not self.no_faults,
            seed=self.seed,
            crawl_delay=self.crawl_delay,
        )


class SiteConfig(Config):
    """How the local site behaves (what :func:`seqlab.synth.plan.plan_site`, the aiohttp app and
    :class:`seqlab.synth.site.LocalSite` share)."""

    base_path: str = Field(
        "", description="a prefix for every page, e.g. /news; robots.txt stays at the root"
    )
    latency_s: float = Field(
        0.0, ge=0.0, le=60.0, allow_inf_nan=False, description="delay added to every response (a 'network')"
    )
    faults: bool = Field(True, description="serve the fault pages (404, 5xx, timeouts, redirects, ...)")
    encodings: bool | None = Field(
        None, description="serve windows-1256 and charset-less variants; None: the same as faults"
    )
    seed: int = Field(0, ge=0, description="which articles get which fault and encoding")
    crawl_delay: float = Field(
        0.0, ge=0.0, le=3600.0, allow_inf_nan=False, description="robots.txt Crawl-delay (s)"
    )
    link_titles: bool = Field(
        True,
        description="article links show the article's title; False: they all say 'read more' (a site whose "
        "links carry no topical text, where a focused crawler has little to go on)",
    )

    @field_validator("base_path")
    @classmethod
    def _slash(cls, value: str) -> str:
        if value and not value.startswith("/"):
            raise ValueError("must start with '/'")
        return value.rstrip("/")

    @property
    def serves_encodings(self) -> bool:
        return self.faults if self.encodings is None else self.encodings
