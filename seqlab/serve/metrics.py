"""``GET /metrics``: the ingress replica's counters in Prometheus' text format (version 0.0.4).

Kept by each ingress replica (a Prometheus scrape reaches one of them; with several replicas, scrape each
or read Serve's own metrics, which Ray exports on its metrics port). Series:

- ``seqlab_requests_total{route,status}`` and ``seqlab_request_seconds{route}`` (a histogram): every
  request, routed or refused at the edge (auth, body size), by route and HTTP status;
- ``seqlab_tokens_total{direction="prompt"|"completion"}``: tokens the generator read and wrote;
- ``seqlab_generator_waiting`` and ``seqlab_generator_running_rows``: the generator replica's queue and
  running batch when scraped.

Hand-written rather than ``prometheus_client``: a few counters, no global registry for Serve to pickle.
"""

from __future__ import annotations

import bisect
import collections

__all__ = ["METRICS", "ROUTES", "Metrics"]

# Routes get their own label; anything else (404s, typos, scanners) is "other", so labels stay few.
ROUTES = frozenset(
    {
        "/",
        "/healthz",
        "/readyz",
        "/metrics",
        "/playground",
        "/tokenize",
        "/detokenize",
        "/v1/models",
        "/v1/score",
        "/v1/generate",
        "/v1/completions",
        "/docs",
        "/openapi.json",
    }
)
BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    """Counters of one ingress replica."""

    def __init__(self) -> None:
        self.requests: collections.Counter[tuple[str, int]] = collections.Counter()
        self.buckets: dict[str, list[int]] = collections.defaultdict(lambda: [0] * (len(BUCKETS_S) + 1))
        self.seconds: collections.Counter[str] = collections.Counter()
        self.tokens: collections.Counter[str] = collections.Counter()

    def observe(self, path: str, status: int, seconds: float) -> None:
        route = path if path in ROUTES else "other"
        self.requests[(route, status)] += 1
        self.buckets[route][bisect.bisect_left(BUCKETS_S, seconds)] += 1
        self.seconds[route] += seconds

    def count_tokens(self, prompt: int, completion: int) -> None:
        self.tokens["prompt"] += prompt
        self.tokens["completion"] += completion

    def render(self, gauges: dict[str, float] | None = None) -> str:
        lines = [
            "# HELP seqlab_requests_total HTTP requests by route and status.",
            "# TYPE seqlab_requests_total counter",
        ]
        lines += [
            f'seqlab_requests_total{{route="{route}",status="{status}"}} {n}'
            for (route, status), n in sorted(self.requests.items())
        ]
        lines += ["# HELP seqlab_request_seconds Request latency.", "# TYPE seqlab_request_seconds histogram"]
        for route, counts in sorted(self.buckets.items()):
            running = 0
            for bound, n in zip([*BUCKETS_S, float("inf")], counts, strict=True):
                running += n
                le = "+Inf" if bound == float("inf") else f"{bound:g}"
                lines.append(f'seqlab_request_seconds_bucket{{route="{route}",le="{le}"}} {running}')
            lines.append(f'seqlab_request_seconds_sum{{route="{route}"}} {self.seconds[route]:.6f}')
            lines.append(f'seqlab_request_seconds_count{{route="{route}"}} {running}')
        lines += [
            "# HELP seqlab_tokens_total Tokens the generator read (prompt) and wrote (completion).",
            "# TYPE seqlab_tokens_total counter",
        ]
        lines += [
            f'seqlab_tokens_total{{direction="{d}"}} {self.tokens[d]}' for d in ("prompt", "completion")
        ]
        for name, value in sorted((gauges or {}).items()):
            lines += [f"# TYPE seqlab_{name} gauge", f"seqlab_{name} {value:g}"]
        return "\n".join(lines) + "\n"


METRICS = (
    Metrics()
)  # this replica's; read and written through the module (Serve pickles the ingress by value)
