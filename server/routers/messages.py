"""Anthropic's Messages API as vLLM serves it: POST /v1/messages (plain and streamed) and
/v1/messages/count_tokens, routed by `model`. The engine's own errors keep Anthropic's shape
(`{"type": "error", "error": {"type", "message"}}`); the gateway's are OpenAI's."""

from fastapi import APIRouter, Depends, Request

from ..auth import require_user
from ..protocol import CountTokensRequest, MessagesRequest
from ..proxy import forward

router = APIRouter(prefix="/v1", dependencies=[Depends(require_user)])


@router.post("/messages")
async def messages(request: Request):
    return await forward(request, "/v1/messages", MessagesRequest)


@router.post("/messages/count_tokens")
async def count_tokens(request: Request):
    return await forward(request, "/v1/messages/count_tokens", CountTokensRequest)
