"""Bad input gets a 4xx in the OpenAI error shape, and the server stays healthy."""

from __future__ import annotations

import json

import httpx
import pytest

CHAT, COMP, EMB = "/v1/chat/completions", "/v1/completions", "/v1/embeddings"
LOAD, UNLOAD = "/v1/load_lora_adapter", "/v1/unload_lora_adapter"
MSG = [{"role": "user", "content": "hi"}]

CASES = [
    # (id, path, raw body or json, expected status, expected param or None)
    ("invalid-json", CHAT, b"{not json", 400, None),
    ("empty-body", CHAT, b"", 400, None),
    ("array-body", CHAT, [1, 2], 400, None),
    ("missing-model", CHAT, {"messages": MSG}, 400, "model"),
    ("model-not-string", CHAT, {"model": 3, "messages": MSG}, 400, "model"),
    ("unknown-model", CHAT, {"model": "tinny", "messages": MSG}, 404, "model"),
    ("missing-messages", CHAT, {"model": "tiny"}, 400, "messages"),
    ("messages-string", CHAT, {"model": "tiny", "messages": "hi"}, 400, "messages"),
    ("messages-empty", CHAT, {"model": "tiny", "messages": []}, 400, "messages"),
    ("bad-role", CHAT, {"model": "tiny", "messages": [{"role": "robot", "content": "x"}]}, 400, "messages[0].role"),
    ("user-no-content", CHAT, {"model": "tiny", "messages": [{"role": "user"}]}, 400, "messages[0].content"),
    ("user-null-content", CHAT, {"model": "tiny", "messages": [{"role": "system", "content": "x"},
                                                               {"role": "user", "content": None}]},
     400, "messages[1].content"),
    ("content-int", CHAT, {"model": "tiny", "messages": [{"role": "user", "content": 5}]}, 400, None),
    ("n-zero", CHAT, {"model": "tiny", "messages": MSG, "n": 0}, 400, "n"),
    ("n-string", CHAT, {"model": "tiny", "messages": MSG, "n": "two"}, 400, "n"),
    ("temperature-negative", CHAT, {"model": "tiny", "messages": MSG, "temperature": -1}, 400, "temperature"),
    ("temperature-string", CHAT, {"model": "tiny", "messages": MSG, "temperature": "hot"}, 400, "temperature"),
    ("top-p-zero", CHAT, {"model": "tiny", "messages": MSG, "top_p": 0}, 400, "top_p"),
    ("max-tokens-negative", CHAT, {"model": "tiny", "messages": MSG, "max_tokens": -5}, 400, "max_tokens"),
    ("stream-string", CHAT, {"model": "tiny", "messages": MSG, "stream": "yes"}, 400, "stream"),
    ("stop-int", CHAT, {"model": "tiny", "messages": MSG, "stop": 5}, 400, "stop"),
    ("top-logprobs-too-many", CHAT, {"model": "tiny", "messages": MSG, "logprobs": True, "top_logprobs": 99},
     400, "top_logprobs"),
    ("prompt-missing", COMP, {"model": "tiny"}, 400, "prompt"),
    ("prompt-dict", COMP, {"model": "tiny", "prompt": {"a": 1}}, 400, "prompt"),
    ("prompt-too-long-for-engine", COMP, {"model": "tiny", "prompt": "apples " * 2000, "max_tokens": 4}, 400, None),
    ("embeddings-missing-input", EMB, {"model": "tiny"}, 400, "input"),
    ("load-missing-path", LOAD, {"lora_name": "x", "lora_path": "/nonexistent/adapter"}, 400, "lora_path"),
    ("load-no-name", LOAD, {"lora_path": "/tmp"}, 400, "lora_name"),
    ("load-bad-name", LOAD, {"lora_name": "a b", "lora_path": "/tmp"}, 400, "lora_name"),
    ("load-base-name", LOAD, {"lora_name": "tiny", "lora_path": "/tmp"}, 400, "lora_name"),
    ("load-alias-name", LOAD, {"lora_name": "tiny-alias", "lora_path": "/tmp"}, 400, "lora_name"),
    ("load-reserved-name", LOAD, {"lora_name": "__evalctl_base__", "lora_path": "ADAPTER_A"}, 400, "lora_name"),
    ("load-unknown-base", LOAD, {"lora_name": "x", "lora_path": "ADAPTER_A", "base_model": "nope"}, 400, "base_model"),
    ("unload-unknown", UNLOAD, {"lora_name": "never-loaded"}, 404, "lora_name"),
]


def _send(gateway, path, body):
    key = gateway.admin_key if path in (LOAD, UNLOAD) else gateway.api_key
    headers = {"Authorization": f"Bearer {key}", "content-type": "application/json"}
    raw = body if isinstance(body, bytes) else json.dumps(body).replace("ADAPTER_A", str(gateway.adapters["A"])).encode()
    return httpx.post(f"{gateway.url}{path}", content=raw, headers=headers, timeout=60)


def assert_openai_error(r: httpx.Response, status: int, param: str | None = None) -> dict:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert isinstance(err["message"], str) and err["message"] and "Traceback" not in err["message"]
    if param is not None:
        assert err["param"] == param, err
    return err


@pytest.mark.parametrize("path,body,status,param", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_request(gateway, path, body, status, param):
    assert_openai_error(_send(gateway, path, body), status, param)


def test_unknown_model_names_alternatives(gateway):
    err = assert_openai_error(_send(gateway, CHAT, {"model": "tinny", "messages": MSG}), 404, "model")
    assert "Did you mean 'tiny'" in err["message"] and "tiny-alias" in err["message"]


def test_oversize_body_is_413(gateway):
    big = {"model": "tiny", "messages": [{"role": "user", "content": "x" * (17 * 1024 * 1024)}]}
    assert_openai_error(_send(gateway, CHAT, big), 413)


def test_corrupt_adapter_rejected_and_engine_keeps_serving(gateway, tmp_path):
    bad = tmp_path / "corrupt"
    bad.mkdir()
    (bad / "adapter_config.json").write_text('{"peft_type": "LORA", "r": 8, "target_modules": ["q_proj"]}')
    (bad / "adapter_model.safetensors").write_bytes(b"\x00" * 64)
    err = assert_openai_error(_send(gateway, LOAD, {"lora_name": "corrupt", "lora_path": str(bad)}), 400, "lora_path")
    assert "safetensors" in err["message"]
    (bad / "adapter_config.json").write_text("{broken")
    assert_openai_error(_send(gateway, LOAD, {"lora_name": "corrupt", "lora_path": str(bad)}), 400, "lora_path")


def test_adapter_rank_above_engine_max_rejected(gateway, tmp_path):
    from server.lora_files import write_lora_adapter

    path = write_lora_adapter(gateway.model_dir, tmp_path / "r16", rank=16, scale=0.1)
    err = assert_openai_error(_send(gateway, LOAD, {"lora_name": "r16", "lora_path": str(path)}), 400, "lora_path")
    assert "max_lora_rank" in err["message"]


@pytest.mark.parametrize("method,path,status", [("GET", "/v1/nothing", 404), ("GET", CHAT, 405)])
def test_unknown_routes_in_openai_shape(gateway, method, path, status):
    r = httpx.request(method, f"{gateway.url}{path}", headers={"Authorization": f"Bearer {gateway.api_key}"})
    assert_openai_error(r, status)


def test_user_key_cannot_manage_adapters(gateway):
    headers = {"Authorization": f"Bearer {gateway.api_key}"}
    r = httpx.post(f"{gateway.url}{LOAD}", json={"lora_name": "x", "lora_path": "/tmp"}, headers=headers)
    assert_openai_error(r, 403)
    assert_openai_error(httpx.get(f"{gateway.url}/v1/adapters", headers=headers), 403)
    assert_openai_error(httpx.get(f"{gateway.url}/v1/adapters"), 401)


def test_server_healthy_after_bad_requests(gateway):
    for _, path, body, _, _ in CASES:
        _send(gateway, path, body)
    assert httpx.get(f"{gateway.url}/health").json()["status"] == "ok"
    r = gateway.openai().chat.completions.create(model="tiny", messages=MSG, max_tokens=3)
    assert r.usage.completion_tokens == 3
