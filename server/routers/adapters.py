"""Adapter hot-swap with vLLM's bodies: load, unload, list. Admin key required."""

from fastapi import APIRouter, Depends, Request
from fastapi.responses import PlainTextResponse

from ..auth import require_admin
from ..adapters import AdapterVersion
from ..protocol import AdapterInfo, AdapterList, LoadLoRAAdapterRequest, UnloadLoRAAdapterRequest
from ..proxy import parse_request, read_body

router = APIRouter(prefix="/v1", dependencies=[Depends(require_admin)])


def info(v: AdapterVersion, replicas: list[dict]) -> AdapterInfo:
    return AdapterInfo(name=v.name, base=v.group.name, path=v.source, version=v.version, loaded_at=v.loaded_at,
                       engine_name=v.engine_name, snapshot=str(v.snapshot), inflight=v.inflight, replicas=replicas)


async def _body(request: Request, schema):
    return schema(**parse_request(await read_body(request, request.app.state.settings.max_body_bytes), schema))


@router.post("/load_lora_adapter", response_class=PlainTextResponse)
async def load_lora_adapter(request: Request) -> str:
    body = await _body(request, LoadLoRAAdapterRequest)
    state = request.app.state
    v = await state.adapters.load(body.lora_name, body.lora_path, body.base_model, state.router.aliases)
    return f"Success: LoRA adapter '{v.name}' added successfully (version {v.version} on {v.group.name})."


@router.post("/unload_lora_adapter", response_class=PlainTextResponse)
async def unload_lora_adapter(request: Request) -> str:
    body = await _body(request, UnloadLoRAAdapterRequest)
    v = await request.app.state.adapters.unload(body.lora_name)
    return f"Success: LoRA adapter '{v.name}' removed successfully."


@router.get("/adapters", response_model=AdapterList)
async def list_adapters(request: Request) -> AdapterList:
    manager = request.app.state.adapters
    return AdapterList(data=[info(v, manager.status(v)) for _, v in sorted(manager.current.items())])
