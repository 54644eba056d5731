"""/health (open), /metrics (Prometheus) and /v1/engines (admin: processes and replicas)."""

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from ..auth import require_admin

router = APIRouter()


@router.get("/health")
async def health(request: Request):
    groups = request.app.state.router.groups
    down = [g.name for g in groups.values() if g.pick() is None]
    body = {"status": "degraded" if down else "ok", "engines_down": down}
    return JSONResponse(body, status_code=503 if down and len(down) == len(groups) else 200)


@router.get("/metrics")
async def metrics(request: Request):
    return Response(request.app.state.metrics.render(), media_type="text/plain; version=0.0.4")


@router.get("/v1/engines", dependencies=[Depends(require_admin)])
async def engines(request: Request):
    data = [{"engine": g.name, **r.describe(), "max_num_seqs": g.max_num_seqs,
             "zero_adapter": g.zero_adapter.describe() if g.zero_adapter else None}
            for g in request.app.state.router.groups.values() for r in g.replicas]
    return {"object": "list", "data": data}
