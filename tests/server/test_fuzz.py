"""Malformed bodies never reach vLLM's crash paths: a seeded fuzz over the OpenAI and vLLM
fields gets 4xx in the OpenAI shape only, and the gateway stays healthy; the vLLM fields it
checks still reach the engine when they are valid."""

from __future__ import annotations

import collections

import httpx
import pytest

from tests.server.fuzzing import CHAT, COMP, bodies, problem, send

MSG = [{"role": "user", "content": "hi"}]
TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
NAMED = {"type": "function", "function": {"name": "f"}}


@pytest.mark.engine
def test_fuzzed_bodies_get_openai_shaped_4xx_and_the_gateway_stays_healthy(gateway):
    headers = {"Authorization": f"Bearer {gateway.api_key}"}
    seen, problems = collections.Counter(), []
    with httpx.Client(base_url=gateway.url, headers=headers, timeout=120) as c:
        for path, body in bodies(seed=20, n=300, model="tiny"):
            r = send(c, path, body)
            seen[r.status_code] += 1
            if (why := problem(r)) is not None:
                problems.append((path, body, why))
        assert problems == []
        assert seen[400] > 200 and seen[200] > 0, seen  # the fuzz reached both the checks and the engine
        assert c.get("/health").json() == {"status": "ok", "engines_down": []}
        ok = c.post(COMP, json={"model": "tiny", "prompt": "hi", "max_tokens": 2})
        assert ok.status_code == 200, ok.text


# Each crashed vLLM 0.32 with a 500 (and took the connection with it) before the gateway checked it.
ENGINE_500 = [
    ("structured-outputs-empty-string", COMP, {"structured_outputs": ""}, "structured_outputs"),
    ("structured-outputs-string", CHAT, {"structured_outputs": "x"}, "structured_outputs"),
    ("structured-outputs-float", COMP, {"structured_outputs": 3.5}, "structured_outputs"),
    ("structured-outputs-bool", CHAT, {"structured_outputs": True}, "structured_outputs"),
    ("structured-outputs-list", COMP, {"structured_outputs": [1, "a"]}, "structured_outputs"),
    ("tool-without-function", CHAT, {"tools": [{"type": "function"}], "tool_choice": NAMED}, "tools[0].function"),
    ("top-k-past-int64", COMP, {"top_k": 2**64}, "top_k"),
    ("stream-interval-past-int64", CHAT, {"stream_interval": 10**30}, "stream_interval"),
]
# vLLM answers these with a 400 of its own, but without naming the field.
UNNAMED = [
    ("structured-outputs-json-int", COMP, {"structured_outputs": {"json": 3}}, "structured_outputs.json"),
    ("guided-choice-string", COMP, {"guided_choice": "ab"}, "guided_choice"),
    ("response-format-type", CHAT, {"response_format": {"type": "xml"}}, "response_format.type"),
    ("response-format-string", COMP, {"response_format": "json"}, "response_format"),
    ("logit-bias-list", COMP, {"logit_bias": [1]}, "logit_bias"),
    ("logit-bias-value", CHAT, {"logit_bias": {"5": "a"}}, "logit_bias"),
    ("stream-options-string", COMP, {"stream": True, "stream_options": "x"}, "stream_options"),
    ("stream-options-usage", CHAT, {"stream": True, "stream_options": {"include_usage": "x"}},
     "stream_options.include_usage"),
    ("min-p-string", COMP, {"min_p": "x"}, "min_p"),
    ("min-tokens-null", COMP, {"min_tokens": None}, "min_tokens"),
    ("repetition-penalty-list", CHAT, {"repetition_penalty": [1]}, "repetition_penalty"),
    ("priority-fraction", COMP, {"priority": 1.5}, "priority"),
    ("return-token-ids-string", COMP, {"return_token_ids": "x"}, "return_token_ids"),
    ("tools-string", CHAT, {"tools": "x"}, "tools"),
    ("tool-name-int", CHAT, {"tools": [{"function": {"name": 3}}]}, "tools[0].function.name"),
]
# vLLM names these itself; the gateway's check, which answers first now, must name them the same.
NAMED_BY_VLLM = [
    ("tool-choice-unknown", CHAT, {"tools": [TOOL], "tool_choice": "sometimes"}, "tool_choice"),
    ("tool-choice-name-int", CHAT, {"tools": [TOOL], "tool_choice": {"function": {"name": 3}}},
     "tool_choice.function.name"),
]
CASES = ENGINE_500 + UNNAMED + NAMED_BY_VLLM


@pytest.mark.engine
@pytest.mark.parametrize("path,extra,param", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_malformed_vllm_field_is_a_400_naming_it(gateway, path, extra, param):
    body = {"model": "tiny", "max_tokens": 2, **({"messages": MSG} if path == CHAT else {"prompt": "hi"}), **extra}
    r = httpx.post(f"{gateway.url}{path}", json=body, headers={"Authorization": f"Bearer {gateway.api_key}"},
                   timeout=60)
    assert r.status_code == 400, r.text
    assert problem(r) is None
    assert r.json()["error"]["param"] == param, r.json()


@pytest.mark.engine
def test_checked_vllm_fields_still_reach_the_engine(gateway):
    """The checks only refuse: valid values are forwarded as sent and take effect."""
    client = gateway.openai()
    r = client.completions.create(model="tiny", prompt="Ann has", max_tokens=4, temperature=1.0, extra_body={
        "structured_outputs": {"choice": ["yes", "no"]}, "return_token_ids": True, "top_k": 5, "min_p": 0.05,
        "min_tokens": 1, "repetition_penalty": 1.1, "priority": 0, "logit_bias": {"5": 0.5}, "guided_regex": "a"})
    assert r.choices[0].text in ("yes", "no")
    assert r.choices[0].token_ids  # return_token_ids reached vLLM
    chat = client.chat.completions.create(model="tiny", messages=MSG, max_tokens=3, stream=True,
                                          stream_options={"include_usage": True},
                                          extra_body={"structured_outputs": {"regex": "[0-9]+"}})
    chunks = list(chat)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.isdigit() and chunks[-1].usage is not None
