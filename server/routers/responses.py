"""The Responses API: POST /v1/responses (plain and streamed) routed by `model` like chat;
GET /v1/responses/{id} and POST /v1/responses/{id}/cancel, which name no model, asked of the
engine holding that response (vLLM keeps them only with VLLM_ENABLE_RESPONSES_API_STORE=1 in
the engine's `env`; otherwise every engine answers its own 404)."""

from fastapi import APIRouter, Depends, Request

from ..auth import require_user
from ..protocol import ResponsesRequest
from ..proxy import forward, forward_to_owner

router = APIRouter(prefix="/v1", dependencies=[Depends(require_user)])


@router.post("/responses")
async def create_response(request: Request):
    return await forward(request, "/v1/responses", ResponsesRequest)


@router.get("/responses/{response_id}")
async def retrieve_response(request: Request, response_id: str):
    return await forward_to_owner(request, f"/v1/responses/{response_id}", "/v1/responses/{response_id}")


@router.post("/responses/{response_id}/cancel")
async def cancel_response(request: Request, response_id: str):
    return await forward_to_owner(request, f"/v1/responses/{response_id}/cancel",
                                  "/v1/responses/{response_id}/cancel")
