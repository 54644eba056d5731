"""The gateway: `create_app(settings)` builds a FastAPI app whose lifespan starts the
engines; long-lived objects live on `app.state`."""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI

from .errors import install_error_handlers
from .jobs.scheduler import Scheduler
from .lifecycle import Runtime
from .metrics import Metrics
from .routers import (adapters, completions, embeddings, files, fine_tuning, graders, health, messages, models,
                      responses, runs, scoring, tokenize, ui)
from .routing import ModelRouter
from .settings import ServeSettings


def create_app(settings: ServeSettings, runtime: Runtime | None = None) -> FastAPI:
    """Build the gateway. Pass a started `runtime` to own the engines' lifetime yourself
    (the CLI does, so engine start-up errors reach the user before uvicorn starts);
    otherwise the app starts and stops its engines in its lifespan."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        own = runtime is None
        rt = Runtime(settings) if own else runtime
        if own:
            await rt.start()
        router = ModelRouter(rt.groups, rt.adapters)
        for g in rt.groups.values():
            if not g.config.managed:
                router.add_upstream_models(g, g.discovered)
        app.state.runtime = rt
        app.state.router = router
        app.state.adapters = rt.adapters
        app.state.jobs = Scheduler(settings, rt.adapters, router)
        await app.state.jobs.start()
        try:
            yield
        finally:
            await app.state.jobs.stop()  # workers checkpoint before the engines go
            if own:
                await rt.stop()

    app = FastAPI(title="evalctl", version="0.1.0", lifespan=lifespan,
                  description="OpenAI-compatible gateway in front of vLLM engines, with LoRA hot-swap.")
    app.state.settings = settings
    app.state.metrics = Metrics()
    install_error_handlers(app)
    for module in (completions, responses, messages, tokenize, scoring, embeddings, models, adapters, files,
                   fine_tuning, graders, health, runs, ui):
        app.include_router(module.router)
    return app
