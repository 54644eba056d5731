"""vLLM's POST /tokenize and /detokenize (outside /v1, as vLLM serves them), routed by `model`:
an adapter or alias reaches its base engine's tokenizer."""

from fastapi import APIRouter, Depends, Request

from ..auth import require_user
from ..protocol import DetokenizeRequest, TokenizeRequest
from ..proxy import forward

router = APIRouter(dependencies=[Depends(require_user)])


@router.post("/tokenize")
async def tokenize(request: Request):
    return await forward(request, "/tokenize", TokenizeRequest)


@router.post("/detokenize")
async def detokenize(request: Request):
    return await forward(request, "/detokenize", DetokenizeRequest)
