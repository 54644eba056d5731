"""vLLM's request extensions (and the OpenAI fields vLLM reads before it type-checks them),
checked with vLLM's own types before a body is forwarded.

vLLM 0.32 runs several `mode="before"` validators on the raw JSON: `structured_outputs: "x"`
reaches `.get()` and named `tool_choice` with a tool lacking `function` reaches `["function"]`.
Those end as an unhandled 500 whose traceback makes uvicorn drop the connection. Integers past
int64 (`top_k: 2**64`) fail later, when the request is encoded for the engine core, also as a 500.
The types below mirror vLLM's (`vllm/entrypoints/openai/*/protocol.py`), so nothing vLLM accepts
is refused, and a malformed value gets a 400 naming the field instead. Unknown fields and
unknown keys inside these objects pass through as sent, as they do to vLLM.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr, ValidationError

from .errors import BadRequest, describe_validation_error

# What the engine core can encode; vLLM bounds seed and priority the same way.
Int64 = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class StructuredOutputs(_Open):
    json_: str | dict[str, Any] | None = Field(None, alias="json")
    regex: str | None = None
    choice: list[str] | None = None
    grammar: str | None = None
    json_object: bool | None = None
    disable_any_whitespace: bool = False
    disable_additional_properties: bool = False
    whitespace_pattern: str | None = None
    structural_tag: str | None = None


class ResponseFormat(_Open):
    # vLLM's three shapes (text/json_object/json_schema, and two structural-tag forms) share `type`;
    # each is validated further by vLLM without crashing, so only the part it reads raw is checked.
    type: Literal["text", "json_object", "json_schema", "structural_tag"]
    json_schema: dict[str, Any] | None = None


class StreamOptions(_Open):
    include_usage: bool | None = False
    continuous_usage_stats: bool | None = False


class _Function(_Open):
    name: StrictStr
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(_Open):
    type: Literal["function"] = "function"
    function: _Function


class _NamedFunction(_Open):
    name: StrictStr


class NamedToolChoice(_Open):
    type: Literal["function"] = "function"
    function: _NamedFunction


class SamplingExtensions(_Open):
    """Fields both /v1/completions and /v1/chat/completions forward."""

    logit_bias: dict[str, float] | None = None
    response_format: ResponseFormat | None = None
    stream_options: StreamOptions | None = None
    structured_outputs: StructuredOutputs | None = None
    top_k: Int64 | None = None
    min_p: float | None = None
    min_tokens: Int64 = 0
    repetition_penalty: float | None = None
    length_penalty: float = 1.0
    priority: Int64 = 0
    stream_interval: Annotated[int, Field(ge=1, le=2**63 - 1)] | None = None
    return_token_ids: bool | None = None
    return_tokens_as_token_ids: bool | None = None
    prompt_logprobs: Int64 | None = None
    truncate_prompt_tokens: Annotated[int, Field(ge=-1, le=2**63 - 1)] | None = None
    stop_token_ids: list[Int64] | None = None
    allowed_token_ids: list[Int64] | None = None
    logprob_token_ids: list[Int64] | None = None
    bad_words: list[str] = []
    ignore_eos: bool = False
    include_stop_str_in_output: bool = False
    skip_special_tokens: bool = True
    use_beam_search: bool = False
    # Removed from vLLM (it ignores them now, with a warning), still sent by older clients.
    guided_json: str | dict[str, Any] | None = None
    guided_regex: str | None = None
    guided_choice: list[str] | None = None
    guided_grammar: str | None = None
    guided_decoding_backend: str | None = None
    guided_whitespace_pattern: str | None = None


class CompletionExtensions(SamplingExtensions):
    suffix: str | None = None


class ChatExtensions(SamplingExtensions):
    tools: list[Tool] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None


# Model names pydantic puts in an error's location for union members; not part of the field's path.
_MODEL_TAGS = {"NamedToolChoice"}
_NOT_AN_OBJECT = {"model_type", "model_attributes_type", "dict_type"}


def check(payload: dict, extensions: type[SamplingExtensions]) -> None:
    """Raise BadRequest (param = the field's path) for an extension field vLLM would choke on."""
    try:
        extensions.model_validate(payload)
    except ValidationError as e:
        message, param = _describe(e.errors())
        raise BadRequest(message, param=param, code="invalid_value") from None


def _describe(errors: list[dict]) -> tuple[str, str | None]:
    # For a union (tool_choice: a string or an object) the deepest error is the one that says
    # what is wrong inside the object the client sent, not that it is not one of the strings.
    field = errors[0]["loc"][:1]
    err = max((e for e in errors if e["loc"][:1] == field), key=lambda e: len(e["loc"]))
    loc = tuple(p for p in err["loc"] if p not in _MODEL_TAGS)
    msg = "Input should be an object" if err["type"] in _NOT_AN_OBJECT else err["msg"]
    return describe_validation_error([{**err, "loc": loc, "msg": msg}])
