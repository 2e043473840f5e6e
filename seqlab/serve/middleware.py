"""The ingress app's own middleware: auth and body size before any route, and ``/metrics``' counts.

(Serve's proxy runs :mod:`seqlab.serve.edge` before this, in another process.)
"""

import asyncio
import hmac
import time
from dataclasses import dataclass
from typing import Any

from fastapi.responses import JSONResponse

from seqlab.serve import metrics
from seqlab.serve.errors import ApiError

__all__ = ["EDGE", "OPEN_PATHS", "EdgeMiddleware", "configure_edge", "guard"]

# answered without the API key: load balancers probe /healthz; the playground page holds no secret (it asks
# for the key and sends it with its own API calls), and / only redirects to it
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/playground", "/"})


@dataclass
class _EdgeSettings:
    """What the edge middleware checks, set by the ingress when its replica starts.

    A module global, set through :func:`configure_edge`.
    """

    api_key: str | None = None
    max_body_bytes: int | None = None


EDGE = _EdgeSettings()


class EdgeMiddleware:
    """Auth and body size, before any route: a refused request never reaches the models.

    A plain ASGI middleware (Starlette's ``@app.middleware("http")`` wraps every request in extra tasks
    and streams, a cost that shows at hundreds of requests per second on a small machine). Request ids
    and access logs are Serve's own: the proxy answers with ``x-request-id`` and every replica log line,
    the access line included, carries that id.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), [500]

        async def send_and_note(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}
            refusal = guard(scope, headers, EDGE)
            if refusal is not None:
                await refusal(scope, receive, send_and_note)
                return
            await self.app(scope, receive, send_and_note)
        except asyncio.CancelledError:  # the client left before an answer: nginx's 499, not a server error
            if status[0] == 500:
                status[0] = 499
            raise
        finally:
            metrics.METRICS.observe(_route_path(scope), status[0], time.perf_counter() - started)


def configure_edge(api_key: str | None, max_body_bytes: int) -> None:
    """Set what :class:`EdgeMiddleware` checks (called by each ingress replica as it starts).

    A function of this module on purpose: Serve pickles the ingress class by value, globals included, so
    only a call into the imported module reaches the object the middleware reads.
    """
    EDGE.api_key = api_key
    EDGE.max_body_bytes = max_body_bytes


def _route_path(scope: dict) -> str:
    """The request's path inside the app (without the route prefix it may live under)."""
    path, root = scope.get("path", ""), scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :] or "/"
    return path


def guard(scope: dict, headers: dict[str, str], state: _EdgeSettings) -> JSONResponse | None:
    """The refusal for a request that must not reach a route (no/invalid key, oversized body), or None."""
    key = state.api_key
    path = _route_path(scope)
    if key and path not in OPEN_PATHS:
        header = headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if not header or scheme.lower() != "bearer" or not token:
            return ApiError(401, "missing API key: send 'Authorization: Bearer <key>'").response()
        if not hmac.compare_digest(token.strip().encode(), key.encode()):
            return ApiError(401, "invalid API key").response()
    limit = state.max_body_bytes
    length = headers.get("content-length")
    if limit and length is not None:
        if not length.isdigit():
            return ApiError(400, "invalid Content-Length header").response()
        if int(length) > limit:
            return ApiError(413, f"the request body is {int(length)} bytes; the limit is {limit}").response()
    return None
