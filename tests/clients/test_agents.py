"""The OpenAI Agents SDK (`openai-agents`) running a trivial agent on the session gateway, through
both of its model kinds: Chat Completions and the Responses API. The tiny model's text is random:
the agent's final output must be the greedy reply the openai SDK gets for the same instructions and
input. Tracing is off (it would upload traces to OpenAI)."""

from __future__ import annotations

import openai
import pytest
from agents import Agent, ModelSettings, OpenAIChatCompletionsModel, OpenAIResponsesModel, Runner, set_tracing_disabled

pytestmark = pytest.mark.engine

INSTRUCTIONS, QUESTION, MAX_TOKENS = "Answer in one short sentence.", "How many pens does Ann have?", 8


@pytest.fixture(scope="module", autouse=True)
def no_tracing():
    set_tracing_disabled(True)
    yield
    set_tracing_disabled(False)


def agent(gateway, kind: str, model: str = "tiny", **settings) -> Agent:
    client = openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key=gateway.api_key, max_retries=0)
    cls = OpenAIChatCompletionsModel if kind == "chat" else OpenAIResponsesModel
    return Agent(name="pens", instructions=INSTRUCTIONS, model=cls(model=model, openai_client=client),
                 model_settings=ModelSettings(temperature=0, max_tokens=MAX_TOKENS, **settings))


def test_chat_completions_agent_answers_greedily(gateway):
    result = Runner.run_sync(agent(gateway, "chat"), QUESTION)
    reply = gateway.openai().chat.completions.create(
        model="tiny", messages=[{"role": "system", "content": INSTRUCTIONS}, {"role": "user", "content": QUESTION}],
        temperature=0, max_tokens=MAX_TOKENS)
    assert result.final_output == reply.choices[0].message.content and result.final_output
    usage = result.context_wrapper.usage
    assert usage.requests == 1 and 0 < usage.output_tokens <= MAX_TOKENS


def first_new_char(text: str) -> int:
    return next(i for i in range(1, len(text)) if text[i] not in text[:i])


def test_responses_agent_answers_greedily(gateway):
    # The SDK fails a run whose response is `incomplete`, and the random model never ends on its own
    # within MAX_TOKENS: a stop string (vLLM's `stop`, sent as extra_body) taken from its own greedy
    # reply ends the response `completed` after a known prefix.
    def respond(**kw):
        return gateway.openai().responses.create(model="tiny", instructions=INSTRUCTIONS, input=QUESTION,
                                                 temperature=0, max_output_tokens=MAX_TOKENS, **kw)

    free = respond().output_text
    cut = first_new_char(free)
    stopped = respond(extra_body={"stop": [free[cut]]})
    assert stopped.status == "completed" and stopped.output_text == free[:cut]
    result = Runner.run_sync(agent(gateway, "responses", extra_body={"stop": [free[cut]]}), QUESTION)
    assert result.final_output == free[:cut]
    assert 0 < result.context_wrapper.usage.output_tokens <= MAX_TOKENS


def test_unknown_model_fails_the_run_with_the_gateways_404(gateway):
    with pytest.raises(openai.NotFoundError, match="nope"):
        Runner.run_sync(agent(gateway, "chat", model="nope"), QUESTION)
