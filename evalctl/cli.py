"""`evalctl`: the command line. Each command is a thin layer over a package function."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click
from pydantic import ValidationError

from clients.cli_options import field_options, pick
from server.settings import ConfigError, EngineConfig, ServeSettings, load_settings

SERVE_FIELDS = ["host", "port", "api_key", "admin_key", "adapter_store", "log_dir", "cpu_kv_cache_gib",
                "max_body_bytes", "request_timeout", "results_dir", "jobs_dir", "max_concurrent_jobs",
                "max_file_bytes", "job_cpu_threads", "python_graders", "python_grader_timeout",
                "python_grader_memory_mb"]
ENGINE_FIELDS = ["name", "replicas", "max_model_len", "max_num_seqs", "dtype", "quantization",
                 "tensor_parallel_size", "max_lora_rank", "max_loras", "base_via_zero_adapter", "startup_timeout",
                 "tool_call_parser", "enable_auto_tool_choice", "reasoning_parser", "chat_template"]


class CLIError(click.ClickException):
    """A one-line error and exit code 1 (click prints `Error: ...`)."""


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def main(verbose: bool) -> None:
    """evalctl: an OpenAI-compatible inference and evaluation server for post-trained LLMs."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(asctime)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")


def _one_line(e: ValidationError) -> str:
    err = e.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    return f"{where}: {err['msg']}" if where else err["msg"]


def _parse_adapters(values: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for v in values:
        name, sep, path = v.partition("=")
        if not sep or not name or not path:
            raise CLIError(f"--adapter expects NAME=PATH, got {v!r}")
        out[name] = path
    return out


def build_serve_settings(config: Path | None, model: str | None, upstream: tuple[str, ...], adapter: tuple[str, ...],
                         alias: tuple[str, ...], vllm_arg: tuple[str, ...], values: dict) -> ServeSettings:
    engine = None
    if model or upstream:
        fields = pick(values, ENGINE_FIELDS)
        try:
            engine = EngineConfig(model=model, upstream=list(upstream), adapters=_parse_adapters(adapter),
                                  aliases=list(alias), extra_args=list(vllm_arg), **fields)
        except ValidationError as e:
            raise CLIError(_one_line(e)) from None
    elif adapter or alias or vllm_arg:
        raise CLIError("--adapter/--alias/--vllm-arg need --model or --upstream")
    try:
        settings = load_settings(config, **pick(values, SERVE_FIELDS))
    except ConfigError as e:
        raise CLIError(str(e)) from None
    if engine is not None:
        settings.engines.append(engine)
    if not settings.engines:
        raise CLIError("nothing to serve: give --model PATH_OR_HUB_ID, --upstream URL or --config serve.yaml")
    try:
        return ServeSettings(**settings.model_dump())  # re-validate: unique names across config + options
    except ValidationError as e:
        raise CLIError(_one_line(e)) from None


@main.command()
@click.option("--config", type=click.Path(path_type=Path), help="serve.yaml with several base models.")
@click.option("--model", help="Model path or hub id to serve with vLLM.")
@click.option("--upstream", multiple=True, help="Front an already running OpenAI-compatible server at URL.")
@click.option("--adapter", multiple=True, metavar="NAME=PATH", help="LoRA adapter to load at start (repeatable).")
@click.option("--alias", multiple=True, help="Another name for the model (repeatable).")
@click.option("--vllm-arg", multiple=True, help="Extra argument passed to vLLM as given (repeatable).")
@field_options(ServeSettings, SERVE_FIELDS)
@field_options(EngineConfig, ENGINE_FIELDS)
def serve(config, model, upstream, adapter, alias, vllm_arg, **values) -> None:
    """Start vLLM engine(s) and the OpenAI-compatible gateway in front of them."""
    from server.errors import EngineStartError
    from server.launcher import serve as run

    settings = build_serve_settings(config, model, upstream, adapter, alias, vllm_arg, values)
    try:
        run(settings)
    except EngineStartError as e:
        click.echo(f"Error: {e}", err=True)
        sys.exit(1)


@main.command()
@click.option("--workdir", type=click.Path(path_type=Path), default=Path(".cache/demo"), show_default=True,
              help="Where the demo builds its model and writes its outputs.")
@click.option("--port", type=int, default=0, help="Gateway port (0: a free one).")
@click.option("--fast", is_flag=True, help="A smaller, quicker run (used by the tests).")
def demo(workdir: Path, port: int, fast: bool) -> None:
    """Offline base -> SFT -> GRPO demo on a small model pretrained here (no GPU, no internet)."""
    from .demo import run_demo
    from .process import ServerStartError

    try:
        run_demo(workdir, port, fast)
    except ServerStartError as e:
        raise CLIError(str(e)) from None


from evaluators.cli import COMMANDS as _EVAL_COMMANDS  # noqa: E402 - run, score, ls, compare

for _command in _EVAL_COMMANDS:
    main.add_command(_command)

from trainers.cli import COMMANDS as _TRAIN_COMMANDS  # noqa: E402 - train, sample, distill, lora

for _command in _TRAIN_COMMANDS:
    main.add_command(_command)

from rag.cli import COMMANDS as _RAG_COMMANDS  # noqa: E402 - rag (chromadb is imported inside the commands)

for _command in _RAG_COMMANDS:
    main.add_command(_command)

from .recipes import recipe  # noqa: E402 - recipe ls / run (stages invoke the commands above in-process)

main.add_command(recipe)

from .service import COMMANDS as _SERVICE_COMMANDS  # noqa: E402 - files upload, ft create, chat (OpenAI SDK)

for _command in _SERVICE_COMMANDS:
    main.add_command(_command)

from .doctor import doctor  # noqa: E402 - torch, vLLM and the trainers are imported when it runs

main.add_command(doctor)

if __name__ == "__main__":
    main()
