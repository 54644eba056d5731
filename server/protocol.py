"""Pydantic mirror of the OpenAI types the gateway reads or writes.

Request models validate only what the gateway must understand (types and
ranges of the common fields) and allow every other field: the body is forwarded
to vLLM as sent, so vLLM's own sampling extensions (top_k, min_p, structured
outputs, ...) pass through untouched. Our extensions carry a Field description.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr

NonNegFloat = Annotated[float, Field(ge=0)]


class _Request(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: StrictStr = Field(min_length=1)
    stream: StrictBool | None = None
    n: int | None = Field(None, ge=1, le=256)
    max_tokens: int | None = Field(None, ge=0)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    seed: int | None = None
    stop: StrictStr | list[StrictStr] | None = None
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    user: StrictStr | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: StrictStr | list[dict[str, Any]] | None = None


class ChatCompletionRequest(_Request):
    messages: list[ChatMessage] = Field(min_length=1)
    logprobs: StrictBool | None = None
    top_logprobs: int | None = Field(None, ge=0, le=20)
    max_completion_tokens: int | None = Field(None, ge=0)


class CompletionRequest(_Request):
    prompt: StrictStr | list[StrictStr] | list[int] | list[list[int]]
    logprobs: int | None = Field(None, ge=0, le=20)
    echo: StrictBool | None = None


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: StrictStr = Field(min_length=1)
    input: StrictStr | list[StrictStr] | list[int] | list[list[int]]
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: int | None = Field(None, ge=1)


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = Field(default_factory=lambda: int(time.time()))
    owned_by: str = "evalctl"
    root: str | None = None
    parent: str | None = None
    max_model_len: int | None = None


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class LoadLoRAAdapterRequest(BaseModel):
    """vLLM's body for POST /v1/load_lora_adapter, plus `base_model`."""

    lora_name: StrictStr = Field(min_length=1, pattern=r"^[A-Za-z0-9._:/\-]+$")
    lora_path: StrictStr = Field(min_length=1)
    load_inplace: StrictBool = Field(
        False,
        description="Accepted for vLLM compatibility. evalctl always loads a new immutable version, "
        "so reloading an existing name replaces it whether or not this is set.",
    )
    base_model: StrictStr | None = Field(
        None,
        description="evalctl extension: the base model (name or alias) to attach the adapter to. "
        "Optional when one engine serves LoRA or the adapter's base_model_name_or_path matches one.",
    )


class UnloadLoRAAdapterRequest(BaseModel):
    lora_name: StrictStr = Field(min_length=1)
    lora_int_id: int | None = Field(None, description="Accepted for vLLM compatibility; ignored.")


class AdapterReplicaStatus(BaseModel):
    replica: str = Field(description="The replica's label (`base[i]` for engines evalctl started, else `base@url`).")
    url: str
    state: Literal["starting", "syncing", "up", "down"] = Field(
        description="Only `up` replicas get traffic; one that (re)joins is `syncing` until it holds every adapter.")
    loaded: bool = Field(description="This adapter version is registered on the replica.")


class AdapterInfo(BaseModel):
    name: str
    base: str = Field(description="The base model (engine) this adapter runs on.")
    path: str = Field(description="The path it was loaded from (the user's directory).")
    version: int = Field(description="Increments on every load of the same name.")
    loaded_at: float = Field(description="Unix time the current version became active.")
    engine_name: str = Field(description="The versioned name the engine knows this version by.")
    snapshot: str = Field(description="The server's immutable copy the engine reads.")
    inflight: int = Field(description="Requests currently running on this version.")
    replicas: list[AdapterReplicaStatus] = Field(
        default_factory=list, description="evalctl extension: where this version is loaded, per engine replica.")


class AdapterList(BaseModel):
    object: Literal["list"] = "list"
    data: list[AdapterInfo]
