"""Fine-tuning jobs through the official SDK against the real server: the tiny model is
trained by real TRL workers, the adapter is hot-loaded into the real vLLM engine and
answers chats; cancel mid-run; bad requests; and a restart that resumes a running job
from its checkpoint, still runs the queued one and serves the finished one again."""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import sys
import time

import openai
import pytest

from server.jobs.scheduler import Scheduler
from server.settings import ServeSettings
from tests.conftest import ADMIN_KEY, API_KEY, start_gateway

ROWS = [{"messages": [{"role": "user", "content": f"{n} has {i} pens. How many pens?"},
                      {"role": "assistant", "content": f"<answer> {i} </answer>"}]}
        for i, n in enumerate(["Ann", "Bob", "Carla", "Dev", "Emma", "Farid", "Gita", "Hugo"])]
PAIRS = [{"prompt": f"{i} + 1 =", "chosen": f" {i + 1}", "rejected": " banana"} for i in range(6)]


def upload(client: openai.OpenAI, rows: list[dict], name: str = "train.jsonl") -> str:
    data = "".join(json.dumps(r) + "\n" for r in rows).encode()
    return client.files.create(file=(name, io.BytesIO(data)), purpose="fine-tune").id


def sft(**hyper) -> dict:
    return {"type": "supervised", "supervised": {"hyperparameters": hyper}}


def wait(client: openai.OpenAI, job_id: str, until, timeout: float = 300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.fine_tuning.jobs.retrieve(job_id)
        if until(job):
            return job
        time.sleep(1)
    events = [e.message for e in client.fine_tuning.jobs.list_events(job_id, limit=50)]
    raise AssertionError(f"job {job_id} still {job.status} after {timeout}s; events: {events}")


def finished(job) -> bool:
    return job.status in ("succeeded", "failed", "cancelled")


def metrics(client: openai.OpenAI, job_id: str) -> list[dict]:
    return [e.data for e in client.fine_tuning.jobs.list_events(job_id, limit=1000) if e.type == "metrics"]


# -- restart recovery on the store alone (no engine) ----------------------------------------------
def test_recovery_never_leaves_a_job_running(tmp_path):
    sched = Scheduler(ServeSettings(jobs_dir=tmp_path), adapters=None, router=None)
    store = sched.store
    for job_id in ("ftjob-ckpt", "ftjob-fresh", "ftjob-lost", "ftjob-queued"):
        store.add_job(job_id, {"fine_tuned_model": f"ft:tiny::{job_id}"})
    ckpt = tmp_path / "checkpoint-6"
    ckpt.mkdir()
    store.add_checkpoint("ftjob-ckpt", 6, {"step": 6}, ckpt)
    store.update_job("ftjob-ckpt", status="running", step=7)
    store.update_job("ftjob-fresh", status="running", step=None)
    store.update_job("ftjob-lost", status="running", step=3)
    store.update_job("ftjob-queued", status="queued")
    sched._recover()
    got = {j: store.get_job(j) for j in ("ftjob-ckpt", "ftjob-fresh", "ftjob-lost", "ftjob-queued")}
    assert (got["ftjob-ckpt"]["status"], got["ftjob-ckpt"]["resume_from"]) == ("queued", str(ckpt))
    assert (got["ftjob-fresh"]["status"], got["ftjob-fresh"]["resume_from"]) == ("queued", None)
    assert got["ftjob-lost"]["status"] == "failed" and got["ftjob-lost"]["error"]["code"] == "job_interrupted"
    assert "after step 3" in got["ftjob-lost"]["error"]["message"] and got["ftjob-lost"]["finished_at"]
    assert got["ftjob-queued"]["status"] == "queued"
    assert "checkpoint at step 6" in store.list_events("ftjob-ckpt", None, 5)[0][0]["message"]


def test_worker_failure_fills_error(tmp_path):
    """A real worker that cannot load its base exits 1 with the reason; the job fails with it."""
    sched = Scheduler(ServeSettings(jobs_dir=tmp_path), adapters=None, router=None)
    spec = {"base_path": str(tmp_path / "no-such-model"), "method_type": "supervised", "learning_rate": 1e-4,
            "seed": 0, "hyperparameters": {"n_epochs": 1, "max_steps": 1, "batch_size": 1, "lora_rank": 4,
                                           "lora_alpha": 8, "max_length": 64, "checkpoint_steps": 1}}
    sched.store.add_job("ftjob-bad", spec)
    sched.store.update_job("ftjob-bad", status="running")
    job_dir = sched.job_dir("ftjob-bad")
    job_dir.mkdir(parents=True)
    (job_dir / "train.jsonl").write_text(json.dumps(ROWS[0]) + "\n")
    code = subprocess.run([sys.executable, "-m", "server.jobs.worker", str(sched.store.path), "ftjob-bad"],
                          capture_output=True, timeout=300).returncode
    assert code == 1
    asyncio.run(sched._finish("ftjob-bad", code))
    job = sched.store.get_job("ftjob-bad")
    assert job["status"] == "failed" and job["error"]["code"] == "training_failed"
    assert "no-such-model" in job["error"]["message"]


def test_crash_without_message_quotes_the_log_and_deleted_file_fails_validation(tmp_path):
    sched = Scheduler(ServeSettings(jobs_dir=tmp_path), adapters=None, router=None)
    sched.store.add_job("ftjob-crash", {})
    sched.store.update_job("ftjob-crash", status="running")
    sched.job_dir("ftjob-crash").mkdir(parents=True)
    (sched.job_dir("ftjob-crash") / "worker.log").write_text("Traceback...\nMemoryError: out of memory\n")
    asyncio.run(sched._finish("ftjob-crash", -9))
    err = sched.store.get_job("ftjob-crash")["error"]
    assert err["code"] == "training_failed" and "code -9: MemoryError: out of memory" in err["message"]

    sched.store.add_file("file-gone", "gone.jsonl", 1, "fine-tune", tmp_path / "gone.jsonl", "messages", 1)
    job = sched.store.add_job("ftjob-nofile", {"training_file": "file-gone", "validation_file": None})
    sched._validate(job)
    job = sched.store.get_job("ftjob-nofile")
    assert job["status"] == "failed" and job["error"]["param"] == "training_file"
    assert "file-gone was deleted" in job["error"]["message"]


@pytest.fixture(scope="module")
def admin(gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=gateway.admin_key, max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def train_file(admin) -> str:
    return upload(admin, ROWS)


def test_cancel_mid_run_stops_training(admin, train_file):
    job = admin.fine_tuning.jobs.create(model="tiny", training_file=train_file,
                                        method=sft(max_steps=5000, checkpoint_steps=1000))
    wait(admin, job.id, lambda j: j.status == "running" and (j.model_extra["progress"]["step"] or 0) >= 2)
    cancelled = admin.fine_tuning.jobs.cancel(job.id)
    assert cancelled.status == "cancelled" and cancelled.finished_at is not None
    steps = len(metrics(admin, job.id))
    time.sleep(3)
    assert len(metrics(admin, job.id)) == steps  # the worker is gone: no step after the cancel
    again = admin.fine_tuning.jobs.retrieve(job.id)
    assert again.status == "cancelled" and again.fine_tuned_model is None
    assert "Fine-tuning job cancelled" in [e.message for e in admin.fine_tuning.jobs.list_events(job.id)]
    with pytest.raises(openai.BadRequestError) as e:
        admin.fine_tuning.jobs.cancel(job.id)
    assert e.value.body["code"] == "job_not_cancellable"


def unload(gateway, name: str) -> None:
    """Leave the shared session server with the adapters it had."""
    with gateway.admin() as http:
        assert http.post("/v1/unload_lora_adapter", json={"lora_name": name}).status_code == 200


def test_sft_job_trains_loads_and_answers(gateway, admin, train_file):
    job = admin.fine_tuning.jobs.create(model="tiny-alias", training_file=train_file, validation_file=train_file,
                                        suffix="unit", seed=7,
                                        method=sft(max_steps=4, checkpoint_steps=2, learning_rate_multiplier=50))
    assert job.object == "fine_tuning.job" and job.status in ("validating_files", "queued")
    assert (job.model, job.seed, job.training_file, job.hyperparameters.n_epochs) == ("tiny-alias", 7, train_file, 3)
    assert job.method.type == "supervised" and job.method.supervised.hyperparameters.learning_rate_multiplier == 50
    done = wait(admin, job.id, finished)
    assert done.status == "succeeded", done.error
    assert done.fine_tuned_model == f"ft:tiny:unit:{job.id}" and done.trained_tokens > 0 and done.finished_at

    steps = metrics(admin, job.id)
    train_steps = sorted(m["step"] for m in steps if "loss" in m)
    assert train_steps == [1, 2, 3, 4]
    assert all(m["learning_rate"] > 0 and m["epoch"] > 0 and m["total_steps"] == 4 for m in steps if "loss" in m)
    assert any("valid_loss" in m for m in steps)  # the validation file is evaluated at checkpoints
    messages = [e.message for e in admin.fine_tuning.jobs.list_events(job.id, limit=100)]
    for expected in ("Files validated, moving job to queued state", "Fine-tuning job started",
                     "The job has successfully completed"):
        assert expected in messages
    ckpts = admin.fine_tuning.jobs.checkpoints.list(job.id).data
    assert sorted(c.step_number for c in ckpts) == [2, 4]
    assert ckpts[0].fine_tuned_model_checkpoint == f"{done.fine_tuned_model}:ckpt-step-4"
    assert ckpts[0].metrics.train_loss == pytest.approx([m for m in steps if m["step"] == 4 and "loss" in m][0]["loss"])

    assert done.fine_tuned_model in [m.id for m in admin.models.list()]
    chat = admin.chat.completions.create(model=done.fine_tuned_model, max_tokens=8, temperature=0, logprobs=True,
                                         messages=[{"role": "user", "content": "Ann has 3 pens. How many pens?"}])
    base = admin.chat.completions.create(model="tiny", max_tokens=8, temperature=0, logprobs=True,
                                         messages=[{"role": "user", "content": "Ann has 3 pens. How many pens?"}])
    assert chat.model == done.fine_tuned_model
    first = [c.logprob for c in chat.choices[0].logprobs.content][:1]
    assert first != [c.logprob for c in base.choices[0].logprobs.content][:1]  # the trained weights answer

    results = admin.files.content(done.result_files[0]).text.splitlines()
    assert results[0].startswith("step,epoch,train_loss") and len(results) >= 5
    assert job.id in [j.id for j in admin.fine_tuning.jobs.list(limit=100)]
    unload(gateway, done.fine_tuned_model)


def test_dpo_job_succeeds(gateway, admin):
    pairs = upload(admin, PAIRS, "pairs.jsonl")
    job = admin.fine_tuning.jobs.create(model="tiny", training_file=pairs,
                                        method={"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.2,
                                                                                          "max_steps": 2}}})
    done = wait(admin, job.id, finished)
    assert done.status == "succeeded", done.error
    assert done.method.dpo.hyperparameters.beta == 0.2 and done.fine_tuned_model == f"ft:tiny::{job.id}"
    assert sorted(m["step"] for m in metrics(admin, job.id) if "loss" in m) == [1, 2]
    # the served adapter is the trained policy: its log-probs on a training prompt are not the base's
    assert done.fine_tuned_model in [m.id for m in admin.models.list()]
    tuned, base = (admin.completions.create(model=m, prompt=PAIRS[0]["prompt"], max_tokens=2, temperature=0,
                                            logprobs=1) for m in (done.fine_tuned_model, "tiny"))
    assert tuned.model == done.fine_tuned_model and tuned.choices[0].text
    assert tuned.choices[0].logprobs.token_logprobs != base.choices[0].logprobs.token_logprobs
    unload(gateway, done.fine_tuned_model)


def test_list_paginates_newest_first(admin, train_file):
    # Two jobs of its own (cancelled at once): the listing must not depend on earlier tests' jobs.
    mine = [admin.fine_tuning.jobs.create(model="tiny", training_file=train_file,
                                          method=sft(max_steps=5000, checkpoint_steps=1000)).id for _ in range(2)]
    for job_id in mine:
        wait(admin, job_id, lambda j: j.status != "validating_files")  # validated: 2 events, the cancel a third
        admin.fine_tuning.jobs.cancel(job_id)
        wait(admin, job_id, finished)
    ids = [j.id for j in admin.fine_tuning.jobs.list(limit=100)]
    assert ids[:2] == mine[::-1]
    page = admin.fine_tuning.jobs.list(limit=1)
    assert [j.id for j in page.data] == ids[:1] and page.has_more
    assert [j.id for j in admin.fine_tuning.jobs.list(limit=1, after=ids[0]).data] == ids[1:2]
    newest, older = admin.fine_tuning.jobs.list_events(ids[0], limit=2), None
    older = admin.fine_tuning.jobs.list_events(ids[0], limit=2, after=newest.data[-1].id)
    assert int(older.data[0].id.split("-")[1]) < int(newest.data[-1].id.split("-")[1])


BAD_CREATE = {
    "unknown-model": (dict(model="tinny"), 404, "model", "Did you mean 'tiny'"),
    "adapter-as-base": (dict(model="ft:tiny::nope"), 404, "model", "does not exist"),
    "missing-file": (dict(training_file="file-nope"), 400, "training_file", "does not exist"),
    "dpo-on-sft-file": (dict(method={"type": "dpo"}), 400, "training_file", "preference pairs"),
    "reinforcement-without-grader": (dict(method={"type": "reinforcement"}), 400, "method.reinforcement", "grader"),
    "rank-too-big": (dict(method=sft(lora_rank=64)), 400, "method.supervised.hyperparameters.lora_rank", "max_lora_rank"),
    "unknown-hyper": (dict(method=sft(n_epoch=2)), 400, "method.supervised.hyperparameters.n_epoch", "Extra inputs"),
    "bad-suffix": (dict(suffix="a:b"), 400, "suffix", "pattern"),
    "embedder": (dict(model="tiny-embed"), 400, "model", "cannot be fine-tuned"),
}


@pytest.mark.parametrize("case", sorted(BAD_CREATE))
def test_bad_create_is_a_clear_error(admin, train_file, case):
    body, status, param, text = BAD_CREATE[case]
    with pytest.raises(openai.APIStatusError) as e:
        admin.fine_tuning.jobs.create(**{"model": "tiny", "training_file": train_file, **body})
    assert e.value.status_code == status
    assert e.value.body["param"] == param and text in e.value.body["message"]


def test_job_operations_need_the_admin_key(gateway, admin, train_file):
    user = gateway.openai()
    with pytest.raises(openai.PermissionDeniedError):
        user.fine_tuning.jobs.create(model="tiny", training_file=train_file)
    with pytest.raises(openai.PermissionDeniedError):
        user.fine_tuning.jobs.list()
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="nope", max_retries=0).fine_tuning.jobs.list()
    for call in (admin.fine_tuning.jobs.retrieve, admin.fine_tuning.jobs.cancel, admin.fine_tuning.jobs.list_events):
        with pytest.raises(openai.NotFoundError):
            call("ftjob-nope")


# -- restart survival: a gateway of its own, restarted over the same jobs directory ---------------------
def test_restart_resumes_running_runs_queued_and_serves_finished(tiny_model, tmp_path):
    jobs_dir = tmp_path / "jobs"
    args = ("--api-key", API_KEY, "--admin-key", ADMIN_KEY, "--jobs-dir", str(jobs_dir))
    gw = start_gateway(tiny_model, tmp_path / "gw1.log", *args)
    try:
        client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=ADMIN_KEY, max_retries=0, timeout=120)
        file_id = upload(client, ROWS)
        first = client.fine_tuning.jobs.create(model="tiny", training_file=file_id, suffix="first",
                                               method=sft(max_steps=2))
        long = client.fine_tuning.jobs.create(model="tiny", training_file=file_id, suffix="long",
                                              method=sft(max_steps=40, checkpoint_steps=2))
        queued = client.fine_tuning.jobs.create(model="tiny", training_file=file_id, suffix="queued",
                                                method=sft(max_steps=2))
        assert wait(client, first.id, finished).status == "succeeded"
        wait(client, long.id, lambda j: j.status == "running" and (j.model_extra["progress"]["step"] or 0) >= 3)
        assert client.fine_tuning.jobs.retrieve(queued.id).status == "queued"
    finally:
        gw.stop()
    gw = start_gateway(tiny_model, tmp_path / "gw2.log", *args)
    try:
        client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=ADMIN_KEY, max_retries=0, timeout=120)
        served = [m.id for m in client.models.list()]
        assert f"ft:tiny:first:{first.id}" in served  # reloaded from the job's adapter
        resumed = wait(client, long.id, finished, timeout=400)
        assert resumed.status == "succeeded", resumed.error
        messages = [e.message for e in client.fine_tuning.jobs.list_events(long.id, limit=200)]
        assert any("queued to resume from its checkpoint at step" in m for m in messages)
        restart = [m for m in messages if "resuming at step" in m]
        assert restart and int(restart[0].rsplit(" ", 1)[1]) >= 2  # from a checkpoint, not from scratch
        assert sorted({m["step"] for m in metrics(client, long.id) if "loss" in m}) == list(range(1, 41))
        assert wait(client, queued.id, finished).status == "succeeded"
        served = [m.id for m in client.models.list()]
        assert {f"ft:tiny:long:{long.id}", f"ft:tiny:queued:{queued.id}"} <= set(served)
    finally:
        gw.stop()
