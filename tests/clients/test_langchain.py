"""LangChain's OpenAI integration against the session gateway, as a user would point it there:
`ChatOpenAI` (invoke, stream, batch) on the tiny LM and `OpenAIEmbeddings` on the pooling engine.
The tiny model's text is random, so each answer is checked against the greedy reply the openai
SDK gets for the same messages: LangChain must send what it is given and return what it got."""

from __future__ import annotations

import langchain_openai  # the `clients` extra (make test installs it)
import numpy as np
import openai
import pytest

pytestmark = pytest.mark.engine

PROMPTS = ["Ann has 3 pens and", "Bob buys 2 apples,", "The sum of 4 and 5 is"]
MAX_TOKENS = 8


def chat_model(gateway, **kw):
    return langchain_openai.ChatOpenAI(model="tiny", base_url=f"{gateway.url}/v1", api_key=gateway.api_key,
                                       temperature=0, max_tokens=MAX_TOKENS, max_retries=0, **kw)


def greedy(gateway, prompt: str) -> str:
    reply = gateway.openai().chat.completions.create(model="tiny", messages=[{"role": "user", "content": prompt}],
                                                     temperature=0, max_tokens=MAX_TOKENS)
    return reply.choices[0].message.content


def test_invoke_is_the_greedy_reply(gateway):
    msg = chat_model(gateway).invoke(PROMPTS[0])
    assert msg.content == greedy(gateway, PROMPTS[0]) and msg.content
    assert msg.response_metadata["model_name"] == "tiny"
    assert msg.usage_metadata["output_tokens"] <= MAX_TOKENS and msg.usage_metadata["input_tokens"] > 0


def test_stream_adds_up_to_the_greedy_reply(gateway):
    chunks = list(chat_model(gateway, stream_usage=True).stream(PROMPTS[1]))
    assert len(chunks) > 2  # arrived piece by piece, not as one message
    assert "".join(c.content for c in chunks) == greedy(gateway, PROMPTS[1])
    usage = [c.usage_metadata for c in chunks if c.usage_metadata]
    assert usage and 0 < usage[-1]["output_tokens"] <= MAX_TOKENS


def test_batch_answers_each_prompt(gateway):
    replies = chat_model(gateway).batch(PROMPTS, config={"max_concurrency": 3})
    assert [r.content for r in replies] == [greedy(gateway, p) for p in PROMPTS]


def test_unknown_model_raises_the_gateways_404(gateway):
    model = langchain_openai.ChatOpenAI(model="nope", base_url=f"{gateway.url}/v1", api_key=gateway.api_key,
                                        max_retries=0)
    with pytest.raises(openai.NotFoundError, match="nope"):
        model.invoke("hi")


def test_embeddings_match_the_sdks(gateway):
    # check_embedding_ctx_length=False: otherwise LangChain tokenizes with tiktoken's OpenAI encodings
    # (downloaded, and not this model's tokenizer) and sends token ids
    emb = langchain_openai.OpenAIEmbeddings(model="tiny-embed", base_url=f"{gateway.url}/v1",
                                            api_key=gateway.api_key, check_embedding_ctx_length=False,
                                            max_retries=0)
    docs = ["apples are red", "pens write", "apples are red"]
    vectors = np.asarray(emb.embed_documents(docs))
    sdk = gateway.openai().embeddings.create(model="tiny-embed", input=docs)
    assert vectors.shape == (3, 128)
    np.testing.assert_allclose(vectors, [d.embedding for d in sdk.data], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(vectors[0], vectors[2], rtol=1e-5, atol=1e-6)
    assert not np.allclose(vectors[0], vectors[1])
    np.testing.assert_allclose(emb.embed_query("pens write"), vectors[1], rtol=1e-4, atol=1e-5)
