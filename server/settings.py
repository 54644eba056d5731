"""Server configuration: one source of truth for `evalctl serve` options, serve.yaml and
environment variables (EVALCTL_*). Field descriptions become the CLI's help text."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class EngineConfig(BaseModel):
    """One base model: a vLLM engine (or several replicas of it), or external upstream URLs."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field("", description="Public model name clients send; defaults to `model` as given (like vLLM).")
    model: str | None = Field(None, description="Model path or hub id to start vLLM with.")
    upstream: list[str] = Field(
        default_factory=list,
        description="URLs of already running OpenAI-compatible servers to front instead of starting vLLM.",
    )
    urls: list[str] = Field(
        default_factory=list,
        description=(
            "URLs of vLLM servers started elsewhere (other hosts, Kubernetes pods) to use as this model's replicas. "
            "Unlike `upstream`, the gateway manages them like its own engines: health checks, adapters loaded on "
            "each; they must read the adapter store at the same path (a shared volume)."
        ),
    )
    discover: str | None = Field(
        None,
        description=(
            "HOST:PORT of a headless Service (Kubernetes) whose addresses are this model's vLLM replicas; "
            "re-resolved every engine_poll_interval, so scaling the Deployment adds or removes replicas."
        ),
    )
    aliases: list[str] = Field(default_factory=list, description="Extra names that route to this base model.")
    adapters: dict[str, str] = Field(default_factory=dict, description="LoRA adapters to load at start: NAME: PATH.")
    replicas: int = Field(1, ge=1, description="Number of vLLM processes to start for this model.")
    restart: bool = Field(
        True, description="Restart a started replica whose process exited (backoff from 5 s, doubling to 5 min).")
    runner: Literal["generate", "pooling"] = Field("generate", description="vLLM runner; `pooling` for embedding models.")
    convert: Literal["auto", "embed", "classify", "reward"] | None = Field(
        None, description="vLLM --convert: serve a generative architecture as a pooling model (e.g. embed).")
    tensor_parallel_size: int = Field(1, ge=1, description="vLLM --tensor-parallel-size.")
    max_model_len: int | None = Field(None, description="vLLM --max-model-len.")
    dtype: str = Field("auto", description="vLLM --dtype (auto, bfloat16, float16, float32).")
    quantization: str | None = Field(None, description="vLLM --quantization (awq, gptq, fp8, bitsandbytes, ...).")
    enable_lora: bool = Field(True, description="Start vLLM with LoRA and runtime adapter loading enabled.")
    max_num_seqs: int | None = Field(
        None, ge=1, description="vLLM --max-num-seqs: sequences the engine runs at once. /v1/models reports it "
        "(max_num_seqs), and evalctl run, sample and rag eval default their concurrency to it. Default: vLLM's "
        "own (its server on CPU: 128 per tensor-parallel rank).")
    max_lora_rank: int = Field(16, description="vLLM --max-lora-rank: the largest adapter rank accepted.")
    max_loras: int = Field(4, ge=1, description="vLLM --max-loras: adapters active in one batch.")
    base_via_zero_adapter: bool | None = Field(
        None,
        description=(
            "Route base-model traffic through an all-zero LoRA adapter (true), or not (false). vLLM (CPU, 0.32) "
            "once returned wrong tokens for base requests batched with LoRA requests; the zero adapter gives exact "
            "base outputs but puts every base request on the slower LoRA path. Default: a self-test at engine start "
            "compares greedy base outputs alone and batched among LoRA requests and turns it on only if they differ "
            "(/v1/engines says which and why)."
        ),
    )
    tool_call_parser: str | None = Field(
        None, description="vLLM --tool-call-parser: how the model's tool calls are parsed from its output "
        "(hermes for Qwen2.5, llama3_json, mistral, ...); turns on auto tool choice unless "
        "enable_auto_tool_choice is false.")
    enable_auto_tool_choice: bool | None = Field(
        None, description="vLLM --enable-auto-tool-choice: the model decides when to call a tool "
        "(tool_choice: auto). Needs tool_call_parser. Default: on when tool_call_parser is set.")
    reasoning_parser: str | None = Field(
        None, description="vLLM --reasoning-parser: split the model's reasoning into `reasoning_content` "
        "(deepseek_r1, qwen3, ...).")
    chat_template: str | None = Field(
        None, description="vLLM --chat-template: a Jinja chat template (file path or the template itself) "
        "instead of the tokenizer's.")
    extra_args: list[str] = Field(default_factory=list, description="More vLLM CLI arguments, passed as given.")
    env: dict[str, str] = Field(default_factory=dict, description="Environment variables for the vLLM processes.")
    replica_env: list[dict[str, str]] = Field(
        default_factory=list,
        description=("Per-replica additions to `env`, in replica order, e.g. one GPU each: "
                     "[{CUDA_VISIBLE_DEVICES: '0'}, {CUDA_VISIBLE_DEVICES: '1'}]."),
    )
    startup_timeout: float = Field(900.0, description="Seconds to wait for each engine to become healthy.")

    @model_validator(mode="after")
    def _check(self) -> "EngineConfig":
        external = bool(self.urls) + bool(self.discover)
        if not self.model and not self.upstream and not external:
            raise ValueError("an engine needs `model` (to start vLLM), `urls`/`discover` (vLLM replicas started "
                             "elsewhere) or `upstream` (URLs to front)")
        if self.upstream and (self.model or external):
            raise ValueError("give either `model` or `upstream` for an engine, not both")
        if len(self.replica_env) > self.replicas:
            raise ValueError(f"replica_env has {len(self.replica_env)} entries for {self.replicas} replicas")
        if self.enable_auto_tool_choice and not self.tool_call_parser:
            raise ValueError("enable_auto_tool_choice needs tool_call_parser (e.g. hermes for Qwen2.5)")
        if external > 1:
            raise ValueError("give either `urls` or `discover` for an engine, not both")
        if self.discover and ":" not in self.discover.rpartition("]")[2]:
            raise ValueError(f"discover must be HOST:PORT, got {self.discover!r}")
        if not self.name:
            if external and not self.model:
                raise ValueError("an engine with `urls` or `discover` needs a `name`")
            self.name = self.model or "upstream"
        return self

    @property
    def managed(self) -> bool:
        """The gateway manages the engines' adapters (its own processes, or external vLLM replicas)."""
        return not self.upstream

    @property
    def local(self) -> bool:
        """The gateway starts the vLLM processes itself."""
        return bool(self.model) and not self.urls and not self.discover


class ServeSettings(BaseSettings):
    """Gateway settings. Every field is also an EVALCTL_<NAME> environment variable."""

    model_config = SettingsConfigDict(env_prefix="EVALCTL_", extra="forbid")

    host: str = Field("127.0.0.1", description="Address the gateway listens on.")
    port: int = Field(8000, description="Port the gateway listens on (0 picks a free one).")
    api_key: str | None = Field(None, description="Bearer key required for /v1 traffic (none: open).")
    admin_key: str | None = Field(
        None, description="Bearer key required for adapter operations (none: the api key, if any, suffices)."
    )
    engines: list[EngineConfig] = Field(default_factory=list, description="Base models served (see serve.yaml).")
    adapter_store: Path | None = Field(
        None, description="Directory for the server's immutable adapter snapshots (default: a temporary directory)."
    )
    log_dir: Path | None = Field(None, description="Directory for engine logs (default: inside the adapter store; "
                                 "kept when a start fails).")
    cpu_kv_cache_gib: float | None = Field(
        None, gt=0, description="vLLM CPU engines: GiB of KV cache each engine process reserves (vLLM's "
        "--kv-cache-memory-bytes). Default: sized from the model (16 sequences of max_model_len, at least 1 GiB) "
        "and capped at half the memory available at start, shared among the engines, instead of vLLM's 92% of "
        "the machine, which fails when other processes or page cache hold more than 8%. An engine's own "
        "--kv-cache-memory-bytes or --gpu-memory-utilization (vllm_arg) or VLLM_CPU_KVCACHE_SPACE (env) wins.")
    max_body_bytes: int = Field(16 * 1024 * 1024, description="Largest request body accepted (larger: 413).")
    request_timeout: float = Field(600.0, description="Seconds an upstream request may take before it is abandoned.")
    engine_poll_interval: float = Field(2.0, description="Seconds between engine liveness checks.")
    results_dir: Path = Field(
        Path("runs"), description="Directory of evaluation run dirs the web page's Results tab reads "
        "(evalctl run's default output root).")
    jobs_dir: Path | None = Field(
        None, description="Directory for fine-tuning jobs: the SQLite database, uploaded files, job outputs "
        "(default: ~/.cache/evalctl/jobs). Jobs survive a restart with the same directory.",
    )
    max_concurrent_jobs: int = Field(1, ge=0, description="Fine-tuning jobs trained at once (0: queue only).")
    max_file_bytes: int = Field(512 * 1024 * 1024, description="Largest file accepted by /v1/files (larger: 413).")
    job_cpu_threads: int = Field(1, ge=0, description="Torch CPU threads per training worker (0: torch's default; "
                                 "1 is far faster beside a vLLM CPU engine on the same cores).")
    python_graders: bool = Field(
        False, description="Allow OpenAI `python` graders (graders/run, reinforcement jobs). Each batch runs in a "
        "child interpreter with an empty environment, a wall-clock limit per grade() call and a memory limit; "
        "that limits runaway graders but is no sandbox for hostile code, hence off by default.")
    python_grader_timeout: float = Field(10.0, gt=0, description="Seconds one python grade() call may take.")
    python_grader_memory_mb: int = Field(512, ge=64, description="Address-space limit of a python grader's "
                                         "process, MiB.")

    def jobs_path(self) -> Path:
        return Path(self.jobs_dir or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "evalctl" / "jobs")

    @model_validator(mode="after")
    def _unique_names(self) -> "ServeSettings":
        seen: set[str] = set()
        for e in self.engines:
            for n in [e.name, *e.aliases]:
                if n in seen:
                    raise ValueError(f"model name {n!r} is used twice")
                seen.add(n)
        return self


class ConfigError(ValueError):
    """A serve.yaml or option set that cannot be used; the message is one line."""


def load_settings(config: Path | None = None, **overrides) -> ServeSettings:
    """Merge serve.yaml (if any) with explicit overrides; errors become one-line ConfigError."""
    data: dict = {}
    if config is not None:
        try:
            data = yaml.safe_load(Path(config).read_text()) or {}
        except FileNotFoundError:
            raise ConfigError(f"config file {config} not found") from None
        except yaml.YAMLError as e:
            raise ConfigError(f"config file {config} is not valid YAML: {e}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"config file {config} must hold a mapping")
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return ServeSettings(**data)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "config"
        raise ConfigError(f"{where}: {err['msg']}") from None
