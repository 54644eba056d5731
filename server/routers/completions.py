"""POST /v1/chat/completions and /v1/completions: validated, routed, forwarded as sent."""

from fastapi import APIRouter, Depends, Request

from ..auth import require_user
from ..extensions import ChatExtensions, CompletionExtensions
from ..protocol import ChatCompletionRequest, CompletionRequest
from ..proxy import forward

router = APIRouter(prefix="/v1", dependencies=[Depends(require_user)])


@router.post("/chat/completions")
async def chat_completions(request: Request):
    return await forward(request, "/v1/chat/completions", ChatCompletionRequest, ChatExtensions)


@router.post("/completions")
async def completions(request: Request):
    return await forward(request, "/v1/completions", CompletionRequest, CompletionExtensions)
