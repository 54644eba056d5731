"""Typed errors and the one place that maps them to HTTP responses in the OpenAI shape
`{"error": {"message", "type", "param", "code"}}`."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

log = logging.getLogger("evalctl.server")


class EvalctlError(Exception):
    status = 500
    type = "server_error"
    code: str | None = None

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code


class BadRequest(EvalctlError):
    status, type, code = 400, "invalid_request_error", "invalid_request"


class InvalidJSON(BadRequest):
    code = "invalid_json"


class AdapterInvalid(BadRequest):
    code = "invalid_adapter"


class Unauthorized(EvalctlError):
    status, type, code = 401, "authentication_error", "invalid_api_key"


class Forbidden(EvalctlError):
    status, type, code = 403, "permission_error", "admin_key_required"


class ModelNotFound(EvalctlError):
    status, type, code = 404, "invalid_request_error", "model_not_found"


class AdapterNotFound(ModelNotFound):
    code = "adapter_not_found"


class RunNotFound(EvalctlError):
    status, type, code = 404, "invalid_request_error", "run_not_found"


class RunUnreadable(EvalctlError):
    """A run dir whose files cannot be parsed: the request was fine, the data on disk is not."""

    status, type, code = 422, "invalid_request_error", "run_unreadable"


class ResourceNotFound(EvalctlError):
    """An unknown file, job or other object id."""

    status, type, code = 404, "invalid_request_error", "not_found"


class PayloadTooLarge(EvalctlError):
    status, type, code = 413, "invalid_request_error", "request_too_large"


class EngineUnavailable(EvalctlError):
    status, type, code = 503, "service_unavailable", "engine_unavailable"


class EngineStartError(RuntimeError):
    """An engine process did not become healthy; the message quotes its log."""


class UpstreamError(EvalctlError):
    """A non-2xx answer from an engine that did not come in the OpenAI shape."""

    type, code = "upstream_error", "upstream_error"

    def __init__(self, message: str, status: int = 502):
        super().__init__(message)
        self.status = status


class RouteNotServed(UpstreamError):
    """The engine behind the model does not serve this route (vLLM registers routes per task:
    no rerank on a generate model, no Responses API on an embedder)."""

    type, code = "invalid_request_error", "unsupported_route"

    def __init__(self, message: str, status: int = 404):
        super().__init__(message, status)


def error_body(message: str, type_: str, param: str | None = None, code: str | int | None = None) -> dict:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


_TYPE_TAGS = {"str", "int", "float", "bool", "list", "dict", "none", "body"}


def describe_validation_error(errors: list[dict]) -> tuple[str, str | None]:
    """The first pydantic error as (message, param). Union members appear in `loc` as
    type tags (`prompt.str`, `stop.list[str]`); the client only needs the field path."""
    first = errors[0] if errors else {}
    where = list(first.get("loc", ()))
    if where and where[0] in ("query", "path"):  # where FastAPI found it, not part of the parameter's name
        where = where[1:]
    param = ""
    for p in where:  # OpenAI's spelling of a path: messages[0].content
        if isinstance(p, int):
            param += f"[{p}]"
        elif str(p).isidentifier() and str(p) not in _TYPE_TAGS:
            param += f".{p}" if param else str(p)
    return f"{param or 'body'}: {first.get('msg', 'invalid value')}", param or None


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(EvalctlError)
    async def _evalctl(_: Request, exc: EvalctlError):
        return JSONResponse(error_body(exc.message, exc.type, exc.param, exc.code), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError):
        message, param = describe_validation_error(exc.errors())
        return JSONResponse(error_body(message, "invalid_request_error", param, "invalid_value"), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException):
        type_ = "invalid_request_error" if exc.status_code < 500 else "server_error"
        return JSONResponse(error_body(str(exc.detail), type_, None, exc.status_code), status_code=exc.status_code)

    @app.exception_handler(ClientDisconnect)
    async def _gone(request: Request, _: ClientDisconnect):
        # The client hung up before its answer: nothing is wrong here and nobody reads the reply.
        request.app.state.metrics.client_gone(request.url.path)
        log.info("client disconnected during %s %s", request.method, request.url.path)
        return Response(status_code=499)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(error_body("internal server error", "server_error", None, "internal_error"), status_code=500)
