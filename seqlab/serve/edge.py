"""ASGI middleware for Serve's HTTP proxy (the edge, before any deployment sees a request).

Serve's proxy reads ``x-request-timeout-seconds`` from the client and, when it is 0 or negative, turns
the request timeout off for that request, so any client could hold a replica for ever. This middleware
deletes the header before the proxy reads it. Ray 2.60 takes proxy middlewares only from the environment
variable ``RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH=seqlab.serve.edge:proxy_middlewares`` of the proxy's
process: :func:`seqlab.ray_utils.init_ray` sets it before it starts a local Ray (``seqlab serve``, the demo);
on a cluster set it in the nodes' environment before ``ray start``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["DROPPED_HEADERS", "DropClientTimeoutOverride", "proxy_middlewares"]

DROPPED_HEADERS = frozenset({b"x-request-timeout-seconds"})


class DropClientTimeoutOverride:
    """Remove headers a client must not set (:data:`DROPPED_HEADERS`) from every HTTP request."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope.get("type") == "http":
            headers = scope.get("headers") or []
            if any(name.lower() in DROPPED_HEADERS for name, _ in headers):
                scope = {**scope, "headers": [(n, v) for n, v in headers if n.lower() not in DROPPED_HEADERS]}
        await self.app(scope, receive, send)


def proxy_middlewares() -> list[Any]:
    """The proxy middlewares seqlab needs, as ``HTTPOptions.middlewares`` takes them."""
    from starlette.middleware import Middleware

    return [Middleware(DropClientTimeoutOverride)]
