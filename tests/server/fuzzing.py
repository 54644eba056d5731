"""Seeded request fuzzing: valid chat/completions bodies with one to three OpenAI or vLLM
fields set to a wrong type or an extreme value, and the checks every reply must pass."""

from __future__ import annotations

import json
import random

import httpx

CHAT, COMP = "/v1/chat/completions", "/v1/completions"

# Fields both endpoints forward (OpenAI's, then vLLM's extensions).
COMMON = ["model", "max_tokens", "temperature", "top_p", "n", "stream", "stop", "seed", "presence_penalty",
          "frequency_penalty", "logit_bias", "user", "response_format", "stream_options", "top_k", "min_p",
          "min_tokens", "repetition_penalty", "priority", "return_token_ids", "structured_outputs",
          "guided_json", "guided_regex", "guided_choice", "guided_grammar", "ignore_eos", "stop_token_ids",
          "include_stop_str_in_output", "skip_special_tokens", "bad_words", "allowed_token_ids",
          "prompt_logprobs", "truncate_prompt_tokens", "length_penalty", "use_beam_search", "cache_salt",
          "vllm_xargs", "add_special_tokens", "request_id", "logprob_token_ids", "thinking_token_budget",
          "repetition_detection", "stream_interval", "spaces_between_special_tokens",
          "return_tokens_as_token_ids", "kv_transfer_params", "echo", "logprobs"]
ONLY = {
    CHAT: ["messages", "max_completion_tokens", "top_logprobs", "tools", "tool_choice", "parallel_tool_calls",
           "chat_template", "chat_template_kwargs", "add_generation_prompt", "continue_final_message",
           "documents", "mm_processor_kwargs", "reasoning_effort", "include_reasoning"],
    COMP: ["prompt", "suffix"],
}

# Wrong types and extremes; a few valid-looking values too, so combinations reach deeper checks.
BAD = [None, True, False, 0, -1, 1.5, 2**31, 2**63, 2**64, 10**30, -(10**30), 1e308, -1e308, "", "x", "1",
       "auto", "none", "\U0001f642" * 3, [], [1, "a"], ["x"], [[1]], [None], {}, {"a": 1}, {"type": "x"},
       {"type": "function"}, {"function": "f"}, {"json": 3}, {"type": "json_schema"},
       [{"type": "function", "function": "f"}], [{"function": {"name": 3}}]]


TOOL = {"type": "function", "function": {"name": "f", "description": "d", "parameters": {"type": "object"}}}
# A valid value per field, so that mutating one key inside it reaches the checks behind the first.
VALID = {
    "max_tokens": 4, "temperature": 0.5, "top_p": 0.9, "n": 2, "stream": True, "stop": ["\n"], "seed": 1,
    "presence_penalty": 0.1, "frequency_penalty": 0.1, "logit_bias": {"5": 1.0}, "user": "u",
    "response_format": {"type": "json_schema", "json_schema": {"name": "n", "schema": {"type": "object"}}},
    "stream_options": {"include_usage": True, "continuous_usage_stats": False}, "top_k": 5, "min_p": 0.1,
    "min_tokens": 1, "repetition_penalty": 1.1, "priority": 0, "return_token_ids": True,
    "structured_outputs": {"choice": ["a", "b"], "disable_any_whitespace": False},
    "guided_json": {"type": "object"}, "guided_regex": "a+", "guided_choice": ["a"], "guided_grammar": "root ::= a",
    "stop_token_ids": [1], "bad_words": ["x"], "allowed_token_ids": [1, 2, 3], "prompt_logprobs": 1,
    "truncate_prompt_tokens": 2, "cache_salt": "salt", "vllm_xargs": {"a": 1}, "logprob_token_ids": [1],
    "thinking_token_budget": 5, "stream_interval": 2, "kv_transfer_params": {"a": 1},
    "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": [{"type": "text", "text": "hi"}]}],
    "max_completion_tokens": 4, "top_logprobs": 2, "tools": [TOOL],
    "tool_choice": {"type": "function", "function": {"name": "f"}}, "chat_template_kwargs": {"a": 1},
    "documents": [{"title": "t", "text": "x"}], "prompt": [[1, 2]], "suffix": "x",
}


def mutate(value, rng: random.Random):
    """A wrong value, or `value` with one key or element somewhere inside it made wrong or missing."""
    if isinstance(value, dict) and value and rng.random() < 0.7:
        key = rng.choice([*value, "extra"])
        if rng.random() < 0.25:
            return {k: v for k, v in value.items() if k != key}
        return {**value, key: mutate(value.get(key), rng)}
    if isinstance(value, list) and value and rng.random() < 0.7:
        i = rng.randrange(len(value))
        return [*value[:i], mutate(value[i], rng), *value[i + 1:]]
    return rng.choice(BAD)


def bodies(seed: int, n: int, model: str) -> list[tuple[str, dict]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        path = rng.choice((CHAT, COMP))
        body: dict = {"model": model, "max_tokens": 4}
        body.update({"messages": [{"role": "user", "content": "hi"}]} if path == CHAT else {"prompt": "hi"})
        for field in rng.sample(COMMON + ONLY[path], rng.randint(1, 3)):
            body[field] = mutate(VALID[field], rng) if field in VALID and rng.random() < 0.6 else rng.choice(BAD)
        out.append((path, body))
    return out


def problem(r: httpx.Response) -> str | None:
    """Why this reply is not acceptable, or None: a 5xx, or an error not in the OpenAI shape."""
    if r.status_code >= 500:
        return f"HTTP {r.status_code}: {r.text[:300]}"
    if r.status_code < 400:
        return None
    try:
        err = r.json()["error"]
    except (ValueError, KeyError, TypeError):
        return f"HTTP {r.status_code}, not an OpenAI error: {r.text[:300]}"
    if not isinstance(err, dict) or set(err) != {"message", "type", "param", "code"}:
        return f"HTTP {r.status_code}, error keys {sorted(err) if isinstance(err, dict) else err!r}"
    if not isinstance(err["message"], str) or not err["message"] or "Traceback" in err["message"]:
        return f"HTTP {r.status_code}, bad message: {err['message']!r}"
    return None


def send(client: httpx.Client, path: str, body: dict) -> httpx.Response:
    # json.dumps, not httpx's json=: it writes 1e308 and huge ints as given (allow_nan stays on).
    with client.stream("POST", path, content=json.dumps(body).encode(),
                       headers={"content-type": "application/json"}) as r:
        r.read()
    return r
