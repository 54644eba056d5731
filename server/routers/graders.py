"""OpenAI's grader endpoints for trying a grader before a reinforcement job:
POST /v1/fine_tuning/alpha/graders/validate and /run. The API key suffices (grading reads, it
trains nothing); judge calls go through this gateway's own routes with the caller's key."""

from __future__ import annotations

import time

import httpx
from fastapi import APIRouter, Depends, Request

from evaluators.graders import error_object, grade_batch

from ..auth import require_user
from ..errors import BadRequest
from ..graders import checked_grader, embedder, http_context, python_limits
from ..protocol import GraderRunRequest, GraderRunResponse, GraderValidateRequest
from ..proxy import parse_request, read_body

router = APIRouter(prefix="/v1/fine_tuning/alpha/graders", dependencies=[Depends(require_user)])


async def _body(request: Request, model):
    raw = await read_body(request, request.app.state.settings.max_body_bytes)
    return model(**parse_request(raw, model))


@router.post("/validate")
async def validate(request: Request) -> dict:
    body = await _body(request, GraderValidateRequest)
    grader = checked_grader(body.grader, request.app.state.router, request.app.state.settings)
    return {"grader": grader.model_dump(exclude_none=True)}


@router.post("/run", response_model=GraderRunResponse)
async def run(request: Request) -> GraderRunResponse:
    state = request.app.state
    body = await _body(request, GraderRunRequest)
    grader = checked_grader(body.grader, state.router, state.settings)
    item = body.item if body.item is not None else {}
    if not isinstance(item, dict):
        raise BadRequest("item must be a JSON object (the `item` namespace of the templates)", param="item")
    headers = {k: v for k, v in request.headers.items() if k.lower() in ("authorization", "x-api-key")}
    transport = httpx.ASGITransport(app=request.app)
    t0 = time.perf_counter()
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway", headers=headers,
                                 timeout=state.settings.request_timeout) as client:
        ctx = http_context(client, embedder(state.router), python_limits(state.settings))
        outcome = (await grade_batch(grader, [(body.model_sample, item)], ctx))[0]
    return result_object(grader, outcome, time.perf_counter() - t0)


def result_object(grader, outcome, seconds: float) -> GraderRunResponse:
    scores = outcome.sub if outcome.sub else {grader.name: outcome.score}
    usage = {m: {"total_tokens": t} for m, t in outcome.tokens.items()}
    meta = {"name": grader.name, "type": grader.type, "errors": error_object(outcome.errors),
            "execution_time": seconds, "scores": scores, "sampled_model_name": None,
            "token_usage": sum(outcome.tokens.values()) if outcome.tokens else None}
    return GraderRunResponse(reward=outcome.score, metadata=meta, sub_rewards=outcome.sub,
                             model_grader_token_usage_per_model=usage)
