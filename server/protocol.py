"""Pydantic mirror of the OpenAI types the gateway reads or writes.

Request models validate only what the gateway must understand (types and
ranges of the common fields) and allow every other field: the body is forwarded
to vLLM as sent, so vLLM's own sampling extensions (top_k, min_p, structured
outputs, ...) pass through untouched. Our extensions carry a Field description.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

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
    # validate_default: a missing content must reach the check below, as OpenAI refuses it
    content: StrictStr | list[dict[str, Any]] | None = Field(None, validate_default=True)

    @field_validator("content")
    @classmethod
    def _only_assistant_may_omit_content(cls, value: Any, info: ValidationInfo) -> Any:
        role = info.data.get("role")
        if value is None and role is not None and role != "assistant":
            raise PydanticCustomError("missing", "a {role} message needs content; only assistant messages "
                                      "(e.g. with tool_calls) may omit it", {"role": role})
        return value


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


class RoutedRequest(BaseModel):
    """A request the gateway only routes: `model` picks the engine, the rest is the engine's to check."""

    model_config = ConfigDict(extra="allow")

    model: StrictStr = Field(min_length=1)
    stream: StrictBool | None = None


class ResponsesRequest(RoutedRequest):
    input: StrictStr | list[dict[str, Any]] | None = None
    instructions: StrictStr | None = None
    max_output_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)


class MessagesRequest(RoutedRequest):
    """Anthropic's Messages API, as vLLM serves it."""

    messages: list[dict[str, Any]] = Field(min_length=1)
    max_tokens: int = Field(ge=1)


class CountTokensRequest(RoutedRequest):
    messages: list[dict[str, Any]] = Field(min_length=1)


class TokenizeRequest(RoutedRequest):
    prompt: StrictStr | None = None
    messages: list[ChatMessage] | None = None


class DetokenizeRequest(RoutedRequest):
    tokens: list[Annotated[int, Field(ge=0, le=2**63 - 1)]]


class RerankRequest(RoutedRequest):
    query: StrictStr | dict[str, Any]
    documents: list[Any] | dict[str, Any]
    top_n: int | None = Field(None, ge=0)


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = Field(default_factory=lambda: int(time.time()))
    owned_by: str = "evalctl"
    root: str | None = None
    parent: str | None = None
    max_model_len: int | None = None
    # evalctl's extension: sequences the engine behind this model runs at once, summed over its
    # replicas, so a client can keep it full (None where unknown, e.g. an upstream server).
    max_num_seqs: int | None = None
    version: int | None = Field(None, description=(
        "evalctl's extension: for an adapter, the version now served under this id (each load under "
        "the name makes a new one; `created` is when it was loaded). None for base models."))


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


# -- our extension: evaluation runs, read-only, for the web page ------------------------
class RunInfo(BaseModel):
    id: str = Field(description="The run dir's path relative to the results dir; used in the runs URLs.")
    object: Literal["evalctl.run"] = "evalctl.run"
    task: str | None = None
    model: str | None = None
    primary: str | None = Field(None, description="The task's main metric.")
    num_examples: int = Field(description="Samples written so far (results.jsonl lines for an unfinished run).")
    num_failed: int | None = None
    complete: bool = Field(description="summary.json exists; false for a run still writing (or killed).")
    metrics: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="summary.json's metrics: name -> {field, mean, stderr, n}.")
    updated_at: str | None = None


class RunList(BaseModel):
    object: Literal["list"] = "list"
    data: list[RunInfo]
    results_dir: str = Field(description="The directory scanned (the server's `results_dir` setting).")


class SampleList(BaseModel):
    object: Literal["list"] = "list"
    data: list[dict[str, Any]] = Field(description="results.jsonl records, one per sample, as written.")
    total: int = Field(description="Records matching the filters, before paging.")
    offset: int
    limit: int
# -- Files and fine-tuning jobs (OpenAI's shapes; our additions carry a description) ------------

Auto = Literal["auto"]


class FileObject(BaseModel):
    id: str
    object: Literal["file"] = "file"
    bytes: int
    created_at: int
    filename: str
    purpose: str
    status: Literal["uploaded", "processed", "error"] = "processed"
    expires_at: int | None = None
    status_details: str | None = None
    format: str | None = Field(None, description="evalctl extension: the data format detected on upload "
                               "(alpaca, sharegpt, messages, prompt, preference).")
    records: int | None = Field(None, description="evalctl extension: the number of records in the file.")


class FileList(BaseModel):
    object: Literal["list"] = "list"
    data: list[FileObject]
    has_more: bool = False
    first_id: str | None = None
    last_id: str | None = None


class FileDeleted(BaseModel):
    id: str
    object: Literal["file"] = "file"
    deleted: bool = True


class _Hyper(BaseModel):
    model_config = ConfigDict(extra="forbid")

    batch_size: Auto | Annotated[int, Field(ge=1)] = "auto"
    learning_rate_multiplier: Auto | Annotated[float, Field(gt=0)] = "auto"
    n_epochs: Auto | Annotated[int, Field(ge=1)] = "auto"
    max_steps: int | None = Field(None, ge=1, description="evalctl extension: stop after this many optimizer "
                                  "steps (overrides n_epochs).")
    lora_rank: int | None = Field(None, ge=1, description="evalctl extension: LoRA rank (default: the smaller "
                                  "of 16 and the engine's max_lora_rank).")
    lora_alpha: float | None = Field(None, gt=0, description="evalctl extension: LoRA alpha (default: 2 x rank).")
    max_length: int | None = Field(None, ge=8, description="evalctl extension: truncate tokenized samples "
                                   "to this length (default 1024).")
    checkpoint_steps: int | None = Field(None, ge=1, description="evalctl extension: save a resumable "
                                         "checkpoint every N steps (default 50; one is also saved at each "
                                         "epoch end).")


class SupervisedHyperparameters(_Hyper):
    pass


class DpoHyperparameters(_Hyper):
    beta: Auto | Annotated[float, Field(gt=0)] = "auto"


class SupervisedMethod(BaseModel):
    model_config = ConfigDict(extra="forbid")
    hyperparameters: SupervisedHyperparameters | None = None


class DpoMethod(BaseModel):
    model_config = ConfigDict(extra="forbid")
    hyperparameters: DpoHyperparameters | None = None


class ReinforcementHyperparameters(BaseModel):
    """OpenAI's fields, mapped onto `evalctl train grpo` (docs/jobs-and-ui.md), and GRPO's as extensions."""

    model_config = ConfigDict(extra="forbid")

    batch_size: Auto | Annotated[int, Field(ge=1)] = "auto"
    learning_rate_multiplier: Auto | Annotated[float, Field(gt=0)] = "auto"
    n_epochs: Auto | Annotated[int, Field(ge=1)] = "auto"
    eval_interval: Auto | Annotated[int, Field(ge=1)] = "auto"
    eval_samples: Auto | Annotated[int, Field(ge=1, le=16)] = "auto"
    compute_multiplier: Auto | Annotated[float, Field(gt=0, le=16)] = "auto"
    reasoning_effort: Literal["default", "low", "medium", "high"] | None = Field(
        None, description="Accepted for OpenAI compatibility; only `default` applies (the model's own behaviour).")
    max_steps: int | None = Field(None, ge=1, description="evalctl extension: stop after this many GRPO steps "
                                  "(overrides n_epochs).")
    num_generations: int | None = Field(None, ge=2, le=64, description="evalctl extension: the group size G "
                                        "(overrides compute_multiplier).")
    max_tokens: int | None = Field(None, ge=1, description="evalctl extension: completion length cap of the "
                                   "rollouts and evaluations (default 256).")
    temperature: float | None = Field(None, gt=0, le=2, description="evalctl extension: rollout temperature "
                                      "(default 1.0).")
    beta: float | None = Field(None, ge=0, description="evalctl extension: KL coefficient (default 0.04).")
    loss_type: Literal["grpo", "dr_grpo", "dapo", "bnpo", "cispo", "sapo"] | None = Field(
        None, description="evalctl extension: TRL's loss aggregation (default grpo).")
    micro_batch_size: int | None = Field(None, ge=1, description="evalctl extension: sequences per "
                                         "forward/backward (default 16).")
    lora_rank: int | None = Field(None, ge=1, description="evalctl extension: LoRA rank (default: the smaller "
                                  "of 16 and the engine's max_lora_rank).")
    lora_alpha: float | None = Field(None, gt=0, description="evalctl extension: LoRA alpha (default: 2 x rank).")


class ReinforcementMethod(BaseModel):
    model_config = ConfigDict(extra="forbid")
    grader: dict[str, Any] = Field(description="One grader object (types in evaluators/graders/types.py).")
    hyperparameters: ReinforcementHyperparameters | None = None


class JobMethod(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["supervised", "dpo", "reinforcement"]
    supervised: SupervisedMethod | None = None
    dpo: DpoMethod | None = None
    reinforcement: ReinforcementMethod | None = None


class GraderValidateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    grader: dict[str, Any]


class GraderRunRequest(GraderValidateRequest):
    model_sample: StrictStr
    item: Any = None


class GraderRunResponse(BaseModel):
    reward: float
    metadata: dict[str, Any] = Field(description="name, type, errors (OpenAI's flags), execution_time, scores, "
                                     "token_usage, sampled_model_name.")
    sub_rewards: dict[str, float]
    model_grader_token_usage_per_model: dict[str, Any]


class CreateJobRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: StrictStr = Field(min_length=1)
    training_file: StrictStr = Field(min_length=1)
    validation_file: StrictStr | None = None
    method: JobMethod | None = None
    hyperparameters: SupervisedHyperparameters | None = Field(
        None, description="Deprecated by OpenAI in favour of `method`; applies to supervised jobs.")
    suffix: StrictStr | None = Field(None, max_length=64, pattern=r"^[A-Za-z0-9._\-]*$")
    seed: int | None = None
    metadata: dict[str, StrictStr] | None = None
    integrations: list[dict[str, Any]] | None = None


class JobError(BaseModel):
    code: str
    message: str
    param: str | None = None


class FineTuningJob(BaseModel):
    id: str
    object: Literal["fine_tuning.job"] = "fine_tuning.job"
    created_at: int
    error: JobError | None = None
    fine_tuned_model: str | None = None
    finished_at: int | None = None
    hyperparameters: dict[str, Any]
    model: str
    organization_id: str = "evalctl"
    result_files: list[str] = Field(default_factory=list)
    seed: int
    status: Literal["validating_files", "queued", "running", "succeeded", "failed", "cancelled"]
    trained_tokens: int | None = None
    training_file: str
    validation_file: str | None = None
    estimated_finish: int | None = None
    integrations: list[dict[str, Any]] | None = None
    metadata: dict[str, str] | None = None
    method: dict[str, Any]
    user_provided_suffix: str | None = None
    progress: dict[str, int | None] | None = Field(
        None, description="evalctl extension: {step, total_steps} of the running (or last) training run.")


class FineTuningJobList(BaseModel):
    object: Literal["list"] = "list"
    data: list[FineTuningJob]
    has_more: bool


class FineTuningJobEvent(BaseModel):
    id: str
    object: Literal["fine_tuning.job.event"] = "fine_tuning.job.event"
    created_at: int
    level: Literal["info", "warn", "error"]
    message: str
    data: dict[str, Any] | None = Field(
        None, description="For `metrics` events: step, total_steps, epoch, loss (also as OpenAI's "
        "train_loss), learning_rate, and whatever else the trainer logged (grad_norm, valid_loss, ...).")
    type: Literal["message", "metrics"] = "message"


class FineTuningJobEventList(BaseModel):
    object: Literal["list"] = "list"
    data: list[FineTuningJobEvent]
    has_more: bool


class FineTuningJobCheckpoint(BaseModel):
    id: str
    object: Literal["fine_tuning.job.checkpoint"] = "fine_tuning.job.checkpoint"
    created_at: int
    fine_tuned_model_checkpoint: str
    fine_tuning_job_id: str
    metrics: dict[str, float | None]
    step_number: int


class FineTuningJobCheckpointList(BaseModel):
    object: Literal["list"] = "list"
    data: list[FineTuningJobCheckpoint]
    has_more: bool
    first_id: str | None = None
    last_id: str | None = None
