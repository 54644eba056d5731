"""The routes beyond chat (Responses, Messages, tokenize, rerank/score/pooling) without vLLM: a fake
engine behind the gateway, and the tool-calling and reasoning settings on the vLLM command line.
The same routes against a real engine: test_more_routes.py."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.testclient import TestClient

from evalctl.cli import build_serve_settings
from server.app import create_app
from server.engine import EngineProcess, free_port
from server.lifecycle import Runtime
from server.settings import EngineConfig, ServeSettings

KEY = {"Authorization": "Bearer k"}


def fake_engine() -> FastAPI:
    """vLLM's generate routes as a generate model serves them: no rerank, score or pooling."""
    app = FastAPI()

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": "gen", "object": "model"}]}

    @app.post("/v1/responses")
    async def responses(request: Request):
        body = await request.json()
        done = {"id": "resp_1", "object": "response", "model": body["model"], "status": "completed",
                "usage": {"input_tokens": 3, "output_tokens": 2, "total_tokens": 5}}
        if not body.get("stream"):
            return done

        async def events():
            yield f"event: response.created\ndata: {json.dumps({'type': 'response.created'})}\n\n"
            yield f"event: response.completed\ndata: {json.dumps({'type': 'response.completed', 'response': done})}\n\n"
        return StreamingResponse(events(), media_type="text/event-stream")

    @app.get("/v1/responses/{rid}")
    async def retrieve(rid: str):
        return JSONResponse({"error": {"message": f"Response with id '{rid}' not found.", "type": "invalid_request_error",
                                       "param": "response_id", "code": 404}}, status_code=404)

    @app.post("/tokenize")
    async def tokenize(request: Request):
        body = await request.json()
        return {"count": 2, "max_model_len": 512, "tokens": [5, 6], "model_seen": body["model"]}

    return app


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(fake_engine(), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    store = tmp_path_factory.mktemp("store")
    settings = ServeSettings(api_key="k", adapter_store=store, jobs_dir=store / "jobs", engines=[
        EngineConfig(name="gen", upstream=[f"http://127.0.0.1:{port}"], aliases=["gen-alias"])])
    with TestClient(create_app(settings)) as c:
        yield c
    server.should_exit = True
    thread.join(5)


def test_responses_routed_by_alias_and_renamed(client):
    r = client.post("/v1/responses", json={"model": "gen-alias", "input": "hi"}, headers=KEY)
    assert r.status_code == 200 and r.json()["model"] == "gen-alias"
    metrics = client.get("/metrics").text
    assert 'evalctl_requests_total{endpoint="/v1/responses",model="gen-alias",status="200"}' in metrics
    assert 'evalctl_tokens_total{kind="completion",model="gen-alias"} 2.0' in metrics


def test_responses_stream_event_by_event(client):
    with client.stream("POST", "/v1/responses", json={"model": "gen-alias", "input": "hi", "stream": True},
                       headers=KEY) as r:
        text = r.read().decode()
    events = [e for e in text.split("\n\n") if e]
    assert [e.splitlines()[0] for e in events] == ["event: response.created", "event: response.completed"]
    assert '"model": "gen-alias"' in events[1]


def test_a_route_the_engine_does_not_serve_is_an_openai_error(client):
    r = client.post("/v1/rerank", json={"model": "gen", "query": "q", "documents": ["a", "b"]}, headers=KEY)
    assert r.status_code == 404
    err = r.json()["error"]
    assert err["code"] == "unsupported_route" and "/v1/rerank" in err["message"]


def test_retrieve_asks_the_engines_and_returns_their_404(client):
    r = client.get("/v1/responses/resp_x", headers=KEY)
    assert r.status_code == 404 and r.json()["error"]["param"] == "response_id"
    assert 'endpoint="/v1/responses/{response_id}"' in client.get("/metrics").text


@pytest.mark.parametrize("path,body", [
    ("/tokenize", {"prompt": "hi"}), ("/v1/responses", {"input": "hi"}), ("/v1/score", {}),
    ("/v1/messages", {"max_tokens": 4, "messages": [{"role": "user", "content": "hi"}]}),
])
def test_new_routes_need_a_key_and_a_model(client, path, body):
    assert client.post(path, json={"model": "gen", **body}).status_code == 401
    r = client.post(path, json={"model": "nope", **body}, headers=KEY)
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
    r = client.post(path, json=body, headers=KEY)
    assert r.status_code == 400 and r.json()["error"]["param"] == "model"


def test_anthropic_clients_key_header(client):
    r = client.post("/tokenize", json={"model": "gen", "prompt": "hi"}, headers={"x-api-key": "k"})
    assert r.status_code == 200 and r.json()["tokens"] == [5, 6]


def test_body_limit_applies(client):
    limit = client.app.state.settings.max_body_bytes
    r = client.post("/tokenize", content=b"x" * (limit + 1), headers={**KEY, "content-type": "application/json"})
    assert r.status_code == 413


# -- tool calling and reasoning as engine settings ---------------------------------------------
def command(**fields) -> list[str]:
    return EngineProcess(EngineConfig(model="m", **fields), 0, Path("/tmp/x.log")).command()


def flag(cmd: list[str], name: str) -> str | None:
    return cmd[cmd.index(name) + 1] if name in cmd else None


def test_tool_and_reasoning_settings_reach_the_vllm_command_line():
    cmd = command(tool_call_parser="hermes", reasoning_parser="qwen3", chat_template="/t/chat.jinja")
    assert flag(cmd, "--tool-call-parser") == "hermes" and "--enable-auto-tool-choice" in cmd
    assert flag(cmd, "--reasoning-parser") == "qwen3" and flag(cmd, "--chat-template") == "/t/chat.jinja"
    cmd = command(tool_call_parser="hermes", enable_auto_tool_choice=False)
    assert flag(cmd, "--tool-call-parser") == "hermes" and "--enable-auto-tool-choice" not in cmd
    cmd = command()
    assert not {"--tool-call-parser", "--enable-auto-tool-choice", "--reasoning-parser", "--chat-template"} & set(cmd)


def test_auto_tool_choice_needs_a_parser():
    with pytest.raises(ValueError, match="needs tool_call_parser"):
        EngineConfig(model="m", enable_auto_tool_choice=True)


def test_tool_settings_are_serve_options():
    values = {"tool_call_parser": "hermes", "enable_auto_tool_choice": True, "reasoning_parser": "deepseek_r1",
              "chat_template": "t.jinja"}
    engine = build_serve_settings(None, "Qwen/Qwen2.5-7B-Instruct", (), (), (), (), values).engines[0]
    cmd = EngineProcess(engine, 0, Path("/tmp/x.log")).command()
    assert flag(cmd, "--tool-call-parser") == "hermes" and "--enable-auto-tool-choice" in cmd
    assert flag(cmd, "--reasoning-parser") == "deepseek_r1" and flag(cmd, "--chat-template") == "t.jinja"
