"""Bearer-key checks: `api_key` guards /v1 traffic, `admin_key` guards adapter operations.
A request without an Authorization header may send the key as `x-api-key`, as Anthropic's SDK does.

The checks are async on purpose: FastAPI runs a sync dependency in a worker thread,
a thread hop per request that cost ~13% of the gateway's CPU on the proxy path."""

from __future__ import annotations

import hmac

from fastapi import Request

from .errors import Forbidden, Unauthorized


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    if not header:  # Anthropic's clients send the key as `x-api-key` (for /v1/messages)
        return request.headers.get("x-api-key", "").strip() or None
    return None


def _eq(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and hmac.compare_digest(a.encode(), b.encode())


async def require_user(request: Request) -> None:
    s = request.app.state.settings
    if s.api_key is None:
        return
    token = _bearer(request)
    if token is None:
        raise Unauthorized("missing API key: send `Authorization: Bearer <key>`")
    if not (_eq(token, s.api_key) or _eq(token, s.admin_key)):
        raise Unauthorized("invalid API key")


async def require_admin(request: Request) -> None:
    s = request.app.state.settings
    required = s.admin_key or s.api_key
    if required is None:
        return
    token = _bearer(request)
    if token is None:
        raise Unauthorized("missing admin key: send `Authorization: Bearer <admin key>`")
    if _eq(token, required):
        return
    if _eq(token, s.api_key):
        raise Forbidden("this operation needs the admin key; the API key is not enough")
    raise Unauthorized("invalid admin key")
