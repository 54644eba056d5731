"""Graders on the server side: the checks that need what is served (a score_model judge must be a
model this gateway serves, cosine needs a served embedder, python graders need --python-graders),
and the `GradeContext` whose judge and embedder calls go through the gateway's own routes (auth,
routing, metrics and adapters included), in-process for /graders/run, over HTTP from a job worker."""

from __future__ import annotations

import httpx

from evaluators.graders import GradeContext, GraderError, PythonLimits, parse_grader, walk
from evaluators.graders.text import missing_metric_support

from .errors import BadRequest
from .routing import ModelRouter
from .settings import ServeSettings

PYTHON_OFF = ("python graders are disabled on this server: start it with `evalctl serve --python-graders` "
              "(EVALCTL_PYTHON_GRADERS=1) to run them, each in a child process with time and memory limits")


def embedder(router: ModelRouter) -> str | None:
    """The served embedding model cosine similarity uses (the first pooling engine)."""
    for name, group in sorted(router.base.items()):
        if group.config.runner == "pooling":
            return name
    return None


def check_served(grader, router: ModelRouter, settings: ServeSettings, prefix: str = "grader") -> None:
    """Raise the 400/404 a grader gets when this server cannot run it."""
    for path, g in walk(grader, prefix):
        if g.type == "python" and not settings.python_graders:
            raise BadRequest(PYTHON_OFF, param=f"{path}.type", code="python_graders_disabled")
        if g.type == "score_model" and g.model not in router.names():
            err = router.not_found(g.model)
            err.param = f"{path}.model"
            raise err
        if g.type == "text_similarity":
            why = missing_metric_support(g.evaluation_metric)
            if g.evaluation_metric == "cosine" and embedder(router) is None:
                why = "evaluation_metric cosine needs an embedding model served here (an engine with runner pooling)"
            if why:
                raise BadRequest(why, param=f"{path}.evaluation_metric", code="unsupported_metric")


def checked_grader(data: dict, router: ModelRouter, settings: ServeSettings, prefix: str = "grader"):
    """The parsed grader, or the OpenAI-shaped 400/404 that names the field under `prefix`."""
    try:
        grader = parse_grader(data, prefix)
    except GraderError as e:
        raise BadRequest(e.message, param=e.param, code="invalid_grader") from None
    check_served(grader, router, settings, prefix)
    return grader


def python_limits(settings: ServeSettings) -> PythonLimits | None:
    if not settings.python_graders:
        return None
    return PythonLimits(timeout=settings.python_grader_timeout, memory_mb=settings.python_grader_memory_mb)


def http_context(client: httpx.AsyncClient, embed_model: str | None, python: PythonLimits | None) -> GradeContext:
    """Judge and embedder calls as requests on `client` (its base URL and auth set by the caller)."""

    async def chat(model: str, messages: list[dict], params: dict) -> tuple[str, int]:
        r = await client.post("/v1/chat/completions", json={"model": model, "messages": messages, **params})
        if r.status_code != 200:
            raise RuntimeError(f"{model} answered {r.status_code}: {r.text[:300]}")
        data = r.json()
        text = data["choices"][0]["message"].get("content") or ""
        return text, int((data.get("usage") or {}).get("total_tokens") or 0)

    async def embed(texts: list[str]) -> list[list[float]]:
        r = await client.post("/v1/embeddings", json={"model": embed_model, "input": texts})
        if r.status_code != 200:
            raise RuntimeError(f"{embed_model} answered {r.status_code}: {r.text[:300]}")
        return [d["embedding"] for d in sorted(r.json()["data"], key=lambda d: d["index"])]

    return GradeContext(chat=chat, embed=embed if embed_model else None, python=python)
