"""Forwarding one OpenAI request to an engine: body limits, validation, routing,
streaming pass-through, and the bookkeeping every request needs on the way out."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass

import httpx
from fastapi import Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, ValidationError
from starlette.requests import ClientDisconnect

from .engine import EngineGroup, Replica, refused
from .errors import (BadRequest, EngineUnavailable, describe_validation_error, InvalidJSON, PayloadTooLarge,
                     RouteNotServed, UpstreamError)
from .extensions import SamplingExtensions, check as check_extensions
from .routing import Target

# Chat, completions and pooling count prompt/completion tokens; the Responses and Messages APIs input/output.
_USAGE = re.compile(rb'"(prompt|completion|input|output)_tokens":\s*(\d+)')


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body of {declared} bytes exceeds the limit of {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_request(body: bytes, schema: type[BaseModel], extensions: type[SamplingExtensions] | None = None) -> dict:
    """The JSON body as a dict, checked against `schema` (which allows extra fields) and the
    vLLM `extensions` the engine would otherwise fail on."""
    if not body.strip():
        raise InvalidJSON("request body is empty; expected a JSON object")
    try:
        payload = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InvalidJSON(f"request body is not valid JSON: {e}") from None
    if not isinstance(payload, dict):
        raise InvalidJSON("request body must be a JSON object")
    try:
        schema.model_validate(payload)
    except ValidationError as e:
        message, param = describe_validation_error(e.errors())
        raise BadRequest(message, param=param, code="invalid_value") from None
    if extensions is not None:
        check_extensions(payload, extensions)
    return payload


class _Renamer:
    """Rewrites the engine-side model name (e.g. `sft@v3`) back to the name the client sent."""

    def __init__(self, engine_name: str, public: str):
        self.pairs = [(f'"model":{sep}{json.dumps(engine_name)}'.encode(), f'"model":{sep}{json.dumps(public)}'.encode())
                      for sep in ("", " ")] if engine_name != public else []

    def __call__(self, data: bytes) -> bytes:
        for old, new in self.pairs:
            data = data.replace(old, new)
        return data


async def forward(request: Request, path: str, schema: type[BaseModel],
                  extensions: type[SamplingExtensions] | None = None) -> Response:
    state = request.app.state
    body = await read_body(request, state.settings.max_body_bytes)
    payload = parse_request(body, schema, extensions)
    target = state.router.resolve(payload["model"])
    try:
        return await _send(request, path, payload, target)
    except BaseException:
        state.router.release(target)
        raise


async def forward_to_owner(request: Request, path: str, endpoint: str) -> Response:
    """A request that names no model but an object one engine holds (a stored response's id):
    asked of every live generate replica in turn; the first that does not answer 404 owns it.
    When none does, the client gets the last engine's 404. `endpoint` is the metrics label."""
    state = request.app.state
    content = await read_body(request, state.settings.max_body_bytes) if request.method == "POST" else b""
    query = request.url.query
    stream = request.query_params.get("stream", "").lower() in ("1", "true")
    candidates = [(Target(g.name, g, g.name), r) for g in state.router.groups.values()
                  if g.config.runner == "generate" for r in g.live()]
    if not candidates:
        raise EngineUnavailable("no generate engine is available")
    t0, miss = time.perf_counter(), None
    for target, replica in candidates:
        replica.outstanding += 1
        try:
            reply = await _unless_disconnected(request, _attempt(
                replica, target.group.name, f"{path}?{query}" if query else path, content, stream,
                state.metrics, request.method))
        except _Dropped:
            replica.outstanding -= 1
            continue
        except BaseException:
            replica.outstanding -= 1
            raise
        if miss is not None:
            miss[1].outstanding -= 1
        if reply.resp.status_code != 404:
            return _respond(state, endpoint, target, replica, reply, t0)
        miss = (target, replica, reply)
    if miss is None:
        raise EngineUnavailable("no generate engine answered")
    return _respond(state, endpoint, *miss, t0)


# A timeout means the engine is slow, not gone: retrying would double the wait.
_NO_RETRY = (httpx.ReadTimeout, httpx.WriteTimeout, httpx.PoolTimeout)


class _Dropped(Exception):
    """The replica failed on a new connection before any byte reached the client, so another
    may take the request."""

    def __init__(self, message: str, refused: bool):
        super().__init__(message)
        self.refused = refused


@dataclass
class _Reply:
    resp: httpx.Response
    head: bytes  # the whole body, or a stream's first chunk
    rest: AsyncIterator[bytes] | None = None


def _why(e: httpx.TransportError) -> str:
    return type(e.__cause__ or e).__name__  # aiohttp's own error: httpx-aiohttp calls most ConnectTimeout


async def _exchange(client: httpx.AsyncClient, path: str, content: bytes, stream: bool,
                    method: str = "POST") -> _Reply:
    """Send on `client` and read up to the point of no return: the whole body, or the
    first chunk of a stream (until then nothing has been sent to the client)."""
    headers = {"content-type": "application/json"} if content else {}
    upstream = client.build_request(method, path, content=content or None, headers=headers)
    resp, keep = None, False
    try:
        resp = await client.send(upstream, stream=True)
        if stream and resp.status_code == 200:
            rest = resp.aiter_raw()
            reply = _Reply(resp, await anext(rest, b""), rest)
            keep = True  # the stream is handed on open
            return reply
        return _Reply(resp, await resp.aread())
    finally:
        if resp is not None and not keep:
            await resp.aclose()


async def _attempt(replica: Replica, group: str, path: str, content: bytes, stream: bool, metrics,
                   method: str = "POST") -> _Reply:
    """One request to one replica: on a pooled connection, then once more on a new one."""
    try:
        try:
            return await _exchange(replica.client, path, content, stream, method)
        except _NO_RETRY:
            raise
        except httpx.TransportError as e:
            if refused(e) or isinstance(e.__cause__, asyncio.TimeoutError):
                raise  # that was a new connection already
            # A pooled connection the engine closed a moment ago (uvicorn drops the connection
            # after a request that crashed vLLM, and idle ones at its keep-alive timeout) fails at
            # the first write; aiohttp retries only idempotent methods. That says nothing about the
            # replica: only a failure on a new connection counts against it.
            metrics.retry(group, "stale_connection")
        return await _exchange(replica.fresh_client(), path, content, stream, method)
    except _NO_RETRY as e:
        raise EngineUnavailable(f"engine {group!r} at {replica.url} timed out: {type(e).__name__}") from None
    except httpx.TransportError as e:
        raise _Dropped(f"engine {group!r} at {replica.url} is unavailable: {_why(e)}", refused(e)) from None


async def _disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _unless_disconnected(request: Request, work: Awaitable[_Reply]) -> _Reply:
    """`work`, cancelled if the client hangs up first. Cancelling closes the engine connection,
    and vLLM aborts a request whose connection closed instead of generating for nobody."""
    task, watch = asyncio.ensure_future(work), asyncio.ensure_future(_disconnected(request))
    try:
        done, _ = await asyncio.wait((task, watch), return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        task.cancel()
        raise
    finally:
        watch.cancel()
    if task in done:
        return task.result()
    task.cancel()
    await asyncio.wait((task,))
    if not task.cancelled() and task.exception() is None:  # it finished anyway: a stream left open
        await task.result().resp.aclose()
    raise ClientDisconnect()


async def _send(request: Request, path: str, payload: dict, target: Target) -> Response:
    state = request.app.state
    group = target.group
    if target.engine_model != target.public:
        payload["model"] = target.engine_model
    content, stream = json.dumps(payload).encode(), bool(payload.get("stream"))
    t0 = time.perf_counter()
    failed: Replica | None = None
    while True:  # at most twice: a second replica gets one try when the first fails early
        replica = group.pick(target.engine_model, exclude=failed)
        if replica is None:
            state.metrics.error(target.public, "engine_unavailable")
            raise EngineUnavailable(f"engine {group.name!r} is unavailable (no live replica)")
        replica.outstanding += 1
        replica.note_served(target.engine_model)
        try:
            reply = await _unless_disconnected(
                request, _attempt(replica, group.name, path, content, stream, state.metrics))
        except _Dropped as e:
            replica.outstanding -= 1
            group.request_failed(replica, str(e), e.refused)
            if failed is not None or group.pick(target.engine_model, exclude=replica) is None:
                state.metrics.error(target.public, "engine_unavailable")
                raise EngineUnavailable(str(e)) from None
            state.metrics.retry(group.name, "connection")
            failed = replica
            continue
        except BaseException as e:
            replica.outstanding -= 1
            if isinstance(e, EngineUnavailable):
                state.metrics.error(target.public, "engine_timeout")
            raise
        # It answered: an engine error is this request's, not a sign the replica is down.
        replica.request_strikes = 0
        if reply.resp.status_code >= 500 and failed is None \
                and group.pick(target.engine_model, exclude=replica) is not None:
            replica.outstanding -= 1
            state.metrics.retry(group.name, f"http_{reply.resp.status_code}")
            failed = replica
            continue
        return _respond(state, path, target, replica, reply, t0)


def _respond(state, path: str, target: Target, replica: Replica, reply: _Reply, t0: float) -> Response:
    resp, content = reply.resp, reply.head
    rename = _Renamer(target.engine_model, target.public)
    headers = {"x-evalctl-engine-model": target.engine_model, "x-evalctl-replica": replica.label or replica.url}
    if target.lease is not None and target.lease.version:
        headers["x-evalctl-adapter-version"] = str(target.lease.version)

    def finish(status: int, usage: bytes = b"") -> None:
        replica.outstanding -= 1
        state.router.release(target)
        state.metrics.observe(target.public, path, status, time.perf_counter() - t0, _USAGE.findall(usage))
        state.metrics.replica_requests.labels(target.group.name, replica.label or replica.url).inc()
        if status == 499:
            state.metrics.client_gone(path)

    if reply.rest is not None:
        return ClosingStreamingResponse(_stream(resp, reply, rename, target.group, replica, finish),
                                        media_type="text/event-stream", headers=headers)
    if resp.status_code >= 400 and not _is_openai_error(content):
        finish(resp.status_code)
        if resp.status_code in (404, 405):  # vLLM registers a route only for the tasks its model has
            raise RouteNotServed(f"model {target.public!r} (engine {target.group.name!r}) does not serve {path}: "
                                 f"the engine answered {resp.status_code} {content[:200].decode(errors='replace')}",
                                 status=resp.status_code)
        raise UpstreamError(f"engine {target.group.name!r} answered {resp.status_code}: {content[:300]!r}",
                            502 if resp.status_code >= 500 else resp.status_code)
    finish(resp.status_code, content)
    return Response(rename(content), status_code=resp.status_code, media_type="application/json", headers=headers)


class ClosingStreamingResponse(StreamingResponse):
    """Closes its generator however the response ends. Starlette cancels the send loop when the
    client leaves; if that lands while the loop awaits `send` rather than the next chunk, the
    generator stays suspended at its `yield` and only garbage collection would close it (and
    with it the engine connection whose closing makes vLLM abort): the engine generated up to
    the whole abandoned request for nobody in about one try in three under load."""

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self.body_iterator.aclose()


async def _chunks(reply: _Reply) -> AsyncIterator[bytes]:
    if reply.head:
        yield reply.head
    async for chunk in reply.rest:
        yield chunk


async def _stream(resp: httpx.Response, reply: _Reply, rename: _Renamer, group: EngineGroup, replica: Replica,
                  finish) -> AsyncIterator[bytes]:
    """Pass SSE through event by event. Only renaming needs whole events; nothing is held longer."""
    buf, usage, status = b"", b"", 200
    try:
        async for chunk in _chunks(reply):
            if not rename.pairs:
                yield chunk
                if b'"usage":{' in chunk:
                    usage = chunk
                continue
            buf += chunk
            *events, buf = buf.split(b"\n\n")
            for ev in events:
                if b'"usage":{' in ev:
                    usage = ev
                yield rename(ev + b"\n\n")
        if buf:
            yield rename(buf)
    except _NO_RETRY:
        status = 504
    except httpx.TransportError as e:
        status = 503  # the engine died mid-stream: the client sees a truncated stream
        group.request_failed(replica, f"stream dropped: {_why(e)}")
    except (asyncio.CancelledError, GeneratorExit):
        status = 499  # the client left; closing the engine's stream below makes vLLM abort it
        raise
    finally:
        await resp.aclose()
        finish(status, usage)


def _is_openai_error(content: bytes) -> bool:
    try:
        err = json.loads(content).get("error")
    except (ValueError, AttributeError):
        return False
    return isinstance(err, dict) and "message" in err
