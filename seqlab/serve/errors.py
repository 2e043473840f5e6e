"""The API's errors: one JSON shape for every answer other than 2xx, and what each failure maps to.

Every error, ours or FastAPI's, leaves as :class:`~seqlab.serve.schemas.ErrorResponse`
(``{"error": {"message", "type", "param", "code"}}``) and no input yields a 500: a model failure becomes
a 500 with a short message (never a traceback), an overloaded model 503/429 with ``Retry-After``.
"""

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from seqlab.lm.requests import PromptError
from seqlab.serve.schemas import ErrorResponse

__all__ = [
    "ERROR_RESPONSES",
    "ERROR_TYPES",
    "ApiError",
    "install_error_handlers",
    "serve_failure",
    "unexpected_failure",
]

log = logging.getLogger("ray.serve")  # Serve writes this logger to the replica logs, with request ids

ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    413: "request_too_large",
    422: "invalid_request_error",
    429: "overloaded_error",
    500: "server_error",
    503: "overloaded_error",
}
# what every route declares in the OpenAPI schema
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {code: {"model": ErrorResponse} for code in ERROR_TYPES}


class ApiError(Exception):
    """An answer other than 2xx: status, message, and the field at fault (when one is)."""

    def __init__(self, status: int, message: str, param: str | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.retry_after = status, message, param, retry_after

    def body(self) -> dict[str, Any]:
        kind = ERROR_TYPES.get(self.status, "error")
        return {"error": {"message": self.message, "type": kind, "param": self.param, "code": self.status}}

    def response(self) -> JSONResponse:
        headers = {}
        if self.retry_after is not None:
            headers["Retry-After"] = str(max(1, round(self.retry_after)))
        if self.status == 401:
            headers["WWW-Authenticate"] = "Bearer"
        return JSONResponse(self.body(), status_code=self.status, headers=headers)


def serve_failure(
    exc: BaseException, what: str, overload_status: int, retry_after_s: float
) -> ApiError | None:
    """The answer for Serve's own failures: overload -> 503/429, a lost replica -> 503, a prompt the
    model cannot take -> its 4xx (else None)."""
    from ray.exceptions import RayActorError
    from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError

    cause = getattr(exc, "cause", exc)  # a replica's exception arrives wrapped in a RayTaskError
    if isinstance(cause, PromptError):
        return ApiError(cause.status, str(cause), "prompt")
    if isinstance(exc, BackPressureError):
        return ApiError(overload_status, f"the {what} is overloaded; retry later", retry_after=retry_after_s)
    if isinstance(exc, (RayActorError, DeploymentUnavailableError)):
        return ApiError(
            503, f"the {what} replica is unavailable (restarting); retry", retry_after=retry_after_s
        )
    return None


def unexpected_failure(exc: BaseException, what: str) -> ApiError:
    """A 500 for a failure nobody foresaw (logged with its traceback; the client gets its type only)."""
    log.exception("%s failed", what)
    return ApiError(500, f"the {what} failed ({type(exc).__name__}); see the server log")


async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
    return exc.response()


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    first = errors[0] if errors else {}
    loc = [str(p) for p in first.get("loc", ()) if p != "body"]
    param = ".".join(loc) or None
    if first.get("type") == "json_invalid":
        return ApiError(400, f"the request body is not valid JSON: {first.get('msg', '')}").response()
    if not loc and first.get("type") == "missing":
        return ApiError(
            400, "the request body is empty; send a JSON object (Content-Type: application/json)"
        ).response()
    if first.get("type") == "model_attributes_type" or (not loc and first.get("type") == "dict_type"):
        return ApiError(400, "the request body must be a JSON object").response()
    parts = []
    for err in errors[:5]:
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        parts.append(f"{where}: {msg}")
    return ApiError(422, "; ".join(parts), param).response()


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    return ApiError(exc.status_code, str(exc.detail)).response()


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s", request.url.path)
    return ApiError(500, f"internal error ({type(exc).__name__}); see the server log").response()


def install_error_handlers(app: FastAPI) -> None:
    """Make every error ``app`` answers, FastAPI's and Starlette's included, one :class:`ApiError` shape."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
