"""`evalctl files upload`, `evalctl ft create`, `evalctl chat`: the gateway's Files and Fine-tuning
APIs and a chat, through the official OpenAI SDK (what a user of the service runs; the recipe
lora-service chains them). `--out FILE.json` keeps each answer; a recipe reads a stage's
`outputs.json` keys as `${STAGE.KEY}`."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

FINISHED = ("succeeded", "failed", "cancelled")


def _client(base_url: str, key: str | None, timeout: float = 120):
    import openai

    return openai.OpenAI(base_url=f"{base_url.rstrip('/')}/v1", api_key=key or "none", max_retries=0, timeout=timeout)


def _endpoint(fn):
    fn = click.option("--admin-key", envvar="EVALCTL_ADMIN_KEY", help="Admin key (env EVALCTL_ADMIN_KEY; "
                      "default: the API key): uploads and jobs need it where the gateway has one.")(fn)
    fn = click.option("--api-key", envvar="EVALCTL_API_KEY", help="Bearer key (env EVALCTL_API_KEY).")(fn)
    return click.option("--base-url", envvar="EVALCTL_BASE_URL", default="http://127.0.0.1:8000", show_default=True,
                        help="The evalctl gateway (env EVALCTL_BASE_URL).")(fn)


def _write(out: Path | None, obj: dict) -> None:
    click.echo(json.dumps(obj, ensure_ascii=False))
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(obj, indent=2, ensure_ascii=False))


def _api_error(e: Exception) -> click.ClickException:
    """The SDK's error in one line: the gateway's own message, else the transport's."""
    import openai

    if isinstance(e, openai.APIStatusError):
        body = e.body if isinstance(e.body, dict) else {}
        msg = (body.get("error") or body).get("message") if isinstance(body.get("error", body), dict) else None
        return click.ClickException(f"{e.status_code}: {msg or e.message}")
    if isinstance(e, openai.APIConnectionError):
        return click.ClickException(f"cannot reach the gateway ({e.__cause__ or e})")
    return click.ClickException(str(e).splitlines()[0])


@click.group("files")
def files() -> None:
    """The gateway's Files API (OpenAI's shape)."""


@files.command("upload")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--purpose", default="fine-tune", show_default=True)
@click.option("--out", type=click.Path(path_type=Path), help="Write the file object here as JSON.")
@_endpoint
def upload_cmd(path: Path, purpose: str, out: Path | None, base_url: str, api_key: str | None,
               admin_key: str | None) -> None:
    """Upload PATH (Alpaca, ShareGPT, messages, prompt/completion or preference JSONL/JSON)."""
    import openai

    client = _client(base_url, admin_key or api_key)
    try:
        with open(path, "rb") as f:
            obj = client.files.create(file=(path.name, f), purpose=purpose)
    except openai.OpenAIError as e:
        raise _api_error(e) from None
    _write(out, {"id": obj.id, "filename": obj.filename, "bytes": obj.bytes, "purpose": obj.purpose})


def _method(kind: str, hyper: dict) -> dict:
    hyper = {k: v for k, v in hyper.items() if v is not None}
    return {"type": kind, kind: {"hyperparameters": hyper}}


def follow_job(client, job_id: str, timeout: float, poll: float = 1.0):
    """Echo each new event (progress, metrics) until the job finishes; returns the final job."""
    seen: set[str] = set()
    deadline = time.monotonic() + timeout
    while True:
        job = client.fine_tuning.jobs.retrieve(job_id)
        events = list(client.fine_tuning.jobs.list_events(job_id, limit=100))
        for ev in reversed(events):  # the API lists newest first
            if ev.id not in seen:
                seen.add(ev.id)
                click.echo(f"{job_id}: {ev.message}")
        if job.status in FINISHED:
            return job
        if time.monotonic() > deadline:
            raise click.ClickException(f"job {job_id} still {job.status} after {timeout:.0f}s")
        time.sleep(poll)


@click.group("ft")
def ft() -> None:
    """The gateway's Fine-tuning jobs API (OpenAI's shape)."""


@ft.command("create")
@click.option("--model", required=True, help="Served base model to fine-tune.")
@click.option("--training-file", required=True, help="File id from `evalctl files upload`.")
@click.option("--validation-file", help="File id of a validation set.")
@click.option("--method", "kind", type=click.Choice(["supervised", "dpo"]), default="supervised", show_default=True)
@click.option("--suffix", help="Part of the fine-tuned model's name.")
@click.option("--n-epochs", type=click.IntRange(min=1))
@click.option("--max-steps", type=click.IntRange(min=1), help="evalctl extension: stop after N optimizer steps.")
@click.option("--learning-rate-multiplier", type=float)
@click.option("--seed", type=int)
@click.option("--follow/--no-follow", default=True, show_default=True, help="Print events until the job finishes; "
              "a job that does not succeed is an error.")
@click.option("--timeout", type=float, default=3600, show_default=True, help="Seconds --follow waits.")
@click.option("--out", type=click.Path(path_type=Path), help="Write the job (id, status, fine_tuned_model) as JSON.")
@_endpoint
def create_cmd(model, training_file, validation_file, kind, suffix, n_epochs, max_steps, learning_rate_multiplier,
               seed, follow: bool, timeout: float, out, base_url, api_key, admin_key) -> None:
    """Start a fine-tuning job and (by default) follow it to the end."""
    import openai

    client = _client(base_url, admin_key or api_key)
    hyper = {"n_epochs": n_epochs, "max_steps": max_steps, "learning_rate_multiplier": learning_rate_multiplier}
    extra = {k: v for k, v in (("validation_file", validation_file), ("suffix", suffix), ("seed", seed)) if v}
    try:
        job = client.fine_tuning.jobs.create(model=model, training_file=training_file,
                                             method=_method(kind, hyper), **extra)
        click.echo(f"{job.id}: {job.status}")
        if follow:
            job = follow_job(client, job.id, timeout)
    except openai.OpenAIError as e:
        raise _api_error(e) from None
    obj = {"id": job.id, "status": job.status, "model": job.model, "fine_tuned_model": job.fine_tuned_model,
           "trained_tokens": job.trained_tokens, "error": job.error.model_dump() if job.error else None}
    _write(out, obj)
    if follow and job.status != "succeeded":
        why = f": {job.error.message}" if job.error else ""
        raise click.ClickException(f"job {job.id} {job.status}{why}")


@click.command("chat")
@click.argument("model")
@click.argument("message")
@click.option("--max-tokens", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--temperature", type=float, default=0.0, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), help="Write the reply as JSON.")
@_endpoint
def chat_cmd(model: str, message: str, max_tokens: int, temperature: float, out, base_url, api_key,
             admin_key) -> None:
    """One chat turn with MODEL (a base, an adapter or an `ft:...` model) through the gateway."""
    import openai

    client = _client(base_url, api_key)
    try:
        r = client.chat.completions.create(model=model, messages=[{"role": "user", "content": message}],
                                           max_tokens=max_tokens, temperature=temperature)
    except openai.OpenAIError as e:
        raise _api_error(e) from None
    reply = r.choices[0].message.content or ""
    _write(out, {"model": r.model, "reply": reply, "finish_reason": r.choices[0].finish_reason,
                 "completion_tokens": r.usage.completion_tokens if r.usage else None})


COMMANDS = [files, ft, chat_cmd]
