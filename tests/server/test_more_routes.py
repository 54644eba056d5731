"""The routes beyond chat against the session gateway's real vLLM engines: the Responses API
(openai SDK, plain and streamed, base and adapter), Messages, tokenize/detokenize, rerank, score
and pooling, with auth, routing, metrics and OpenAI-shaped errors. The tiny model's text is
random: the tests assert on structure, not content."""

from __future__ import annotations

import httpx
import openai
import pytest

ADAPTER = "routes-lora"


def post(gateway, path: str, body: dict, key: str | None = "user") -> httpx.Response:
    headers = {"Authorization": f"Bearer {gateway.api_key}"} if key else {}
    return httpx.post(f"{gateway.url}{path}", json=body, headers=headers, timeout=120)


def openai_error(r: httpx.Response) -> dict:
    err = r.json()["error"]
    assert {"message", "type", "param", "code"} <= set(err) and err["message"], r.text
    return err


@pytest.fixture(scope="module")
def lora(gateway):
    with gateway.admin() as admin:
        r = admin.post("/v1/load_lora_adapter", json={"lora_name": ADAPTER, "lora_path": str(gateway.adapters["A"])})
        assert r.status_code == 200, r.text
    yield ADAPTER
    with gateway.admin() as admin:
        assert admin.post("/v1/unload_lora_adapter", json={"lora_name": ADAPTER}).status_code == 200


# -- Responses API ---------------------------------------------------------------------------------
@pytest.mark.parametrize("model", ["tiny", "adapter"])
def test_responses_create(gateway, lora, model):
    model = lora if model == "adapter" else model
    raw = gateway.openai().responses.with_raw_response.create(model=model, input="Ann has 3 pens and",
                                                               max_output_tokens=8, temperature=0)
    resp = raw.parse()
    assert resp.object == "response" and resp.model == model and resp.status in ("completed", "incomplete")
    assert resp.output and isinstance(resp.output_text, str)
    assert resp.usage.input_tokens > 0 and 0 < resp.usage.output_tokens <= 8
    if model == lora:
        assert int(raw.headers["x-evalctl-adapter-version"]) >= 1
        assert raw.headers["x-evalctl-engine-model"].startswith(f"{lora}@")


@pytest.mark.parametrize("model", ["tiny", "adapter"])
def test_responses_stream(gateway, lora, model):
    model = lora if model == "adapter" else model
    events = list(gateway.openai().responses.create(model=model, input="Bob has 2 pens and", max_output_tokens=8,
                                                    stream=True))
    types = [e.type for e in events]
    assert types[0] == "response.created" and types[-1] == "response.completed", types
    assert "response.output_text.delta" in types
    assert events[0].response.model == model and events[-1].response.model == model
    assert [e.sequence_number for e in events] == sorted(e.sequence_number for e in events)
    assert events[-1].response.usage.output_tokens > 0


def test_responses_retrieve_unknown_is_the_engines_404(gateway):
    with pytest.raises(openai.NotFoundError) as e:
        gateway.openai().responses.retrieve("resp_does_not_exist")
    assert openai_error(e.value.response)["param"] == "response_id"


def test_responses_unknown_model_is_404_in_openai_shape(gateway):
    with pytest.raises(openai.NotFoundError) as e:
        gateway.openai().responses.create(model="nope", input="hi", max_output_tokens=4)
    err = openai_error(e.value.response)
    assert err["code"] == "model_not_found" and "tiny" in err["message"]


# -- Messages ----------------------------------------------------------------------------------------
def test_messages_plain_and_streamed(gateway, lora):
    body = {"model": lora, "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}
    r = post(gateway, "/v1/messages", body)
    assert r.status_code == 200, r.text
    msg = r.json()
    assert msg["type"] == "message" and msg["model"] == lora and msg["role"] == "assistant"
    assert msg["usage"]["output_tokens"] > 0
    with httpx.stream("POST", f"{gateway.url}/v1/messages", json={**body, "stream": True}, timeout=120,
                      headers={"x-api-key": gateway.api_key}) as s:
        assert s.status_code == 200
        kinds = [line.removeprefix("event: ") for line in s.iter_lines() if line.startswith("event: ")]
    assert kinds[0] == "message_start" and "message_stop" in kinds, kinds


# -- tokenize / detokenize -----------------------------------------------------------------------------
def test_tokenize_detokenize_round_trip_through_an_alias(gateway):
    text = "ann has three pens"
    r = post(gateway, "/tokenize", {"model": "tiny-alias", "prompt": text, "add_special_tokens": False})
    assert r.status_code == 200, r.text
    tok = r.json()
    assert tok["count"] == len(tok["tokens"]) > 0 and tok["max_model_len"] == 512
    r = post(gateway, "/detokenize", {"model": "tiny-alias", "tokens": tok["tokens"]})
    assert r.status_code == 200, r.text
    assert r.json()["prompt"].strip() == text
    chat = post(gateway, "/tokenize", {"model": "tiny", "messages": [{"role": "user", "content": text}]})
    assert chat.status_code == 200 and chat.json()["count"] > tok["count"]  # the chat template's tokens


def test_tokenize_on_an_adapter(gateway, lora):
    r = post(gateway, "/tokenize", {"model": lora, "prompt": "pens"})
    assert r.status_code == 200 and r.json()["tokens"], r.text


@pytest.mark.parametrize("path,body", [
    ("/tokenize", {"model": "tiny", "prompt": "x"}),
    ("/detokenize", {"model": "tiny", "tokens": [1]}),
    ("/v1/responses", {"model": "tiny", "input": "x"}),
    ("/v1/messages", {"model": "tiny", "max_tokens": 2, "messages": [{"role": "user", "content": "x"}]}),
    ("/v1/rerank", {"model": "tiny-embed", "query": "q", "documents": ["a"]}),
])
def test_new_routes_require_the_key(gateway, path, body):
    r = post(gateway, path, body, key=None)
    assert r.status_code == 401 and openai_error(r)["type"] == "authentication_error"


@pytest.mark.parametrize("path,body", [
    ("/tokenize", {"prompt": "x"}), ("/detokenize", {"tokens": [1]}), ("/pooling", {"input": "x"}),
    ("/v1/rerank", {"query": "q", "documents": ["a"]}), ("/v1/score", {"queries": "q", "documents": "a"}),
])
def test_unknown_model_is_404_in_openai_shape(gateway, path, body):
    r = post(gateway, path, {"model": "nope", **body})
    assert r.status_code == 404 and openai_error(r)["code"] == "model_not_found"


# -- rerank, score, pooling -----------------------------------------------------------------------------
DOCS = ["apples are red", "pens write", "apples grow on trees"]


@pytest.mark.parametrize("path", ["/v1/rerank", "/rerank"])
def test_rerank_on_the_embedder(gateway, path):
    r = post(gateway, path, {"model": "tiny-embed", "query": "apples", "documents": DOCS, "top_n": 2})
    if r.status_code != 200:
        openai_error(r)
        pytest.skip(f"the tiny embedder does not rerank: {r.text[:200]}")
    body = r.json()
    assert body["model"] == "tiny-embed" and len(body["results"]) == 2
    assert all({"index", "relevance_score"} <= set(x) for x in body["results"])


def test_score_on_the_embedder(gateway):
    r = post(gateway, "/v1/score", {"model": "tiny-embed", "queries": "apples", "documents": DOCS})
    if r.status_code != 200:
        openai_error(r)
        pytest.skip(f"the tiny embedder does not score: {r.text[:200]}")
    assert [d["index"] for d in r.json()["data"]] == [0, 1, 2]


def test_pooling_on_the_embedder(gateway):
    r = post(gateway, "/pooling", {"model": "tiny-embed", "input": ["apples", "pens"]})
    if r.status_code != 200:
        openai_error(r)
        pytest.skip(f"the tiny embedder does not pool: {r.text[:200]}")
    assert len(r.json()["data"]) == 2


@pytest.mark.parametrize("path,body", [
    ("/v1/rerank", {"query": "q", "documents": DOCS}), ("/v1/score", {"queries": "q", "documents": DOCS}),
    ("/pooling", {"input": "x"}),
])
def test_a_route_the_generate_engine_lacks_is_an_openai_error(gateway, path, body):
    r = post(gateway, path, {"model": "tiny", **body})
    assert r.status_code == 404 and openai_error(r)["code"] == "unsupported_route"


def test_responses_on_the_embedder_is_an_openai_error(gateway):
    r = post(gateway, "/v1/responses", {"model": "tiny-embed", "input": "x"})
    assert r.status_code == 404 and openai_error(r)["code"] == "unsupported_route"


# -- metrics -----------------------------------------------------------------------------------------------
def test_metrics_count_the_new_routes(gateway):
    gateway.openai().responses.create(model="tiny-alias", input="x", max_output_tokens=2)
    post(gateway, "/tokenize", {"model": "tiny-alias", "prompt": "x"})
    post(gateway, "/v1/rerank", {"model": "tiny", "query": "q", "documents": DOCS})
    text = httpx.get(f"{gateway.url}/metrics").text
    assert 'evalctl_requests_total{endpoint="/v1/responses",model="tiny-alias",status="200"}' in text
    assert 'evalctl_requests_total{endpoint="/tokenize",model="tiny-alias",status="200"}' in text
    assert 'evalctl_requests_total{endpoint="/v1/rerank",model="tiny",status="404"}' in text
    assert 'evalctl_tokens_total{kind="completion",model="tiny-alias"}' in text
