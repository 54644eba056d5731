"""vLLM's scoring and pooling routes, routed by `model` at the paths vLLM serves them:
rerank (/rerank, /v1/rerank, /v2/rerank, Jina/Cohere-shaped), score (/score, /v1/score),
/pooling and /classify on pooling engines; /generative_scoring on generate engines.
vLLM registers each only for models whose task supports it; elsewhere the engine's 404
comes back as an OpenAI-shaped `unsupported_route` error."""

from fastapi import APIRouter, Depends, Request

from ..auth import require_user
from ..protocol import RerankRequest, RoutedRequest
from ..proxy import forward

router = APIRouter(dependencies=[Depends(require_user)])

RERANK = ("/rerank", "/v1/rerank", "/v2/rerank")
OTHERS = ("/score", "/v1/score", "/pooling", "/classify", "/generative_scoring")


def _route(path: str, schema):
    async def handler(request: Request):
        return await forward(request, path, schema)

    handler.__name__ = "post" + path.replace("/", "_")
    return handler


for _path in RERANK:
    router.add_api_route(_path, _route(_path, RerankRequest), methods=["POST"])
for _path in OTHERS:
    router.add_api_route(_path, _route(_path, RoutedRequest), methods=["POST"])
