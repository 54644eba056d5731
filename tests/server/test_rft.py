"""Graders and reinforcement fine-tuning through the official SDK against the real server: the
grader endpoints (validate, run with a served judge and a served embedder, the errors), and
reinforcement jobs trained by the real TRL GRPO worker with rollouts from the real vLLM engine,
ending in a hot-loaded fine-tuned model that answers."""

from __future__ import annotations

import io
import json

import openai
import pytest

from tests.conftest import ADMIN_KEY, API_KEY, start_gateway
from tests.server.test_fine_tuning import finished, metrics, wait

OUT = "{{sample.output_text}}"
CHECK = {"type": "string_check", "name": "exact", "input": OUT, "reference": "{{item.answer}}", "operation": "eq"}
JUDGE = {"type": "score_model", "name": "judge", "model": "tiny", "range": [0, 10],
         "input": [{"role": "user", "content": "Question: {{item.question}}\nAnswer: " + OUT}]}


@pytest.fixture(scope="module")
def client(gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=gateway.api_key, max_retries=0, timeout=120)


def error_of(call, **kw) -> openai.APIStatusError:
    with pytest.raises(openai.APIStatusError) as e:
        call(**kw)
    return e.value


def test_validate_returns_the_grader_and_names_bad_fields(client):
    multi = {"type": "multi", "name": "m", "calculate_output": "0.5 * exact + 0.5 * sim",
             "graders": {"exact": CHECK, "sim": {"type": "text_similarity", "name": "sim", "input": OUT,
                                                 "reference": "{{item.answer}}", "evaluation_metric": "rouge_l"}}}
    got = client.fine_tuning.alpha.graders.validate(grader=multi)
    assert got.grader.model_dump(exclude_none=True)["graders"]["exact"]["operation"] == "eq"
    bad = error_of(client.fine_tuning.alpha.graders.validate, grader={**CHECK, "operation": "equals"})
    assert bad.status_code == 400 and bad.body["param"] == "grader.operation"
    bad = error_of(client.fine_tuning.alpha.graders.validate,
                   grader={**multi, "calculate_output": "exact + simm"})
    assert bad.status_code == 400 and bad.body["param"] == "grader.calculate_output" and "simm" in bad.body["message"]
    missing = error_of(client.fine_tuning.alpha.graders.validate,
                       grader={**multi, "graders": {"exact": CHECK, "sim": {**JUDGE, "model": "tinny"}}})
    assert missing.status_code == 404 and missing.body["param"] == "grader.graders.sim.model"
    assert "Did you mean 'tiny'" in missing.body["message"]


def test_python_graders_are_refused_without_the_flag(client):
    src = "def grade(sample, item):\n    return 1.0\n"
    for call, kw in ((client.fine_tuning.alpha.graders.validate, {}),
                     (client.fine_tuning.alpha.graders.run, {"model_sample": "x"})):
        e = error_of(call, grader={"type": "python", "name": "p", "source": src}, **kw)
        assert e.status_code == 400 and e.body["param"] == "grader.type" and "--python-graders" in e.body["message"]


def test_run_string_check_and_task_grader(client):
    run = client.fine_tuning.alpha.graders.run
    assert run(grader=CHECK, model_sample="42", item={"answer": "42"}).reward == 1.0
    near = run(grader=CHECK, model_sample="42 ", item={"answer": "42"})
    assert near.reward == 0.0 and not near.metadata.errors.invalid_variable_error
    lost = run(grader=CHECK, model_sample="42", item={"gold": "42"})
    assert lost.reward == 0.0 and lost.metadata.errors.invalid_variable_error
    task = {"type": "evalctl_task", "name": "r1", "task": "gsm8k"}
    assert run(grader=task, model_sample="</think> <answer> 18 </answer>", item={"answer": "18"}).reward == 1.0
    assert run(grader=task, model_sample="</think> <answer> 17 </answer>", item={"answer": "18"}).reward == 0.0


def test_run_score_model_uses_the_served_judge(client):
    got = client.fine_tuning.alpha.graders.run(grader=JUDGE, model_sample="4", item={"question": "2+2?"})
    assert not got.metadata.errors.model_grader_server_error and not got.metadata.errors.model_grader_parse_error
    assert 0.0 <= got.reward <= 10.0 and got.metadata.token_usage > 0
    assert got.model_extra["model_grader_token_usage_per_model"]["tiny"]["total_tokens"] > 0
    again = client.fine_tuning.alpha.graders.run(grader=JUDGE, model_sample="4", item={"question": "2+2?"})
    assert again.reward == got.reward  # temperature 0: a job grading the same sample gets the same score


def test_run_cosine_uses_the_served_embedder(client):
    cos = {"type": "text_similarity", "name": "cos", "input": OUT, "reference": "{{item.answer}}",
           "evaluation_metric": "cosine"}
    same = client.fine_tuning.alpha.graders.run(grader=cos, model_sample="the cat sat", item={"answer": "the cat sat"})
    other = client.fine_tuning.alpha.graders.run(grader=cos, model_sample="zebra 9 !!", item={"answer": "the cat sat"})
    assert same.reward == pytest.approx(1.0, abs=1e-4) and other.reward < same.reward


# -- reinforcement jobs -------------------------------------------------------------------------
NAMES = ["Ann", "Bob", "Carla", "Dev", "Emma", "Farid"]
PROMPTS = [{"messages": [{"role": "user", "content": f"{n} has {i} pens and buys one more. How many pens?"}],
            "answer": str(i + 1), "letter": "e"} for i, n in enumerate(NAMES)]
FUZZY = {"type": "text_similarity", "name": "fuzzy", "input": OUT, "reference": "{{item.answer}} pens",
         "evaluation_metric": "fuzzy_match"}
MULTI = {"type": "multi", "name": "pens", "calculate_output": "0.5 * has_e + 0.5 * fuzzy",
         "graders": {"has_e": {"type": "string_check", "name": "has_e", "input": OUT, "reference": "{{item.letter}}",
                               "operation": "ilike"}, "fuzzy": FUZZY}}
FAST = {"max_steps": 2, "batch_size": 2, "eval_interval": 1, "max_tokens": 12, "lora_rank": 4,
        "learning_rate_multiplier": 50}


def rft(grader: dict, **hyper) -> dict:
    return {"type": "reinforcement", "reinforcement": {"grader": grader, "hyperparameters": {**FAST, **hyper}}}


def upload(client: openai.OpenAI, rows: list[dict], name: str) -> str:
    data = "".join(json.dumps(r) + "\n" for r in rows).encode()
    return client.files.create(file=(name, io.BytesIO(data)), purpose="fine-tune").id


@pytest.fixture(scope="module")
def admin(gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=gateway.admin_key, max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def files(admin) -> tuple[str, str]:
    return upload(admin, PROMPTS[:4], "rft-train.jsonl"), upload(admin, PROMPTS[4:5], "rft-valid.jsonl")


def test_bad_reinforcement_jobs_name_the_field(admin, files):
    train, valid = files
    create = admin.fine_tuning.jobs.create
    e = error_of(create, model="tiny", training_file=train, method=rft({**CHECK, "operation": "eqq"}))
    assert e.status_code == 400 and e.body["param"] == "method.reinforcement.grader.operation"
    e = error_of(create, model="tiny", training_file=train, method=rft({**JUDGE, "model": "tinyy"}))
    assert e.status_code == 404 and e.body["param"] == "method.reinforcement.grader.model"
    assert "Did you mean 'tiny'" in e.body["message"]
    e = error_of(create, model="tiny", training_file=train, method=rft({"type": "python", "name": "p",
                                                                        "source": "def grade(s, i): return 1"}))
    assert e.status_code == 400 and "--python-graders" in e.body["message"]
    e = error_of(create, model="tiny", training_file=train, method=rft(CHECK, batch_size=9))
    assert e.status_code == 400 and e.body["param"] == "method.reinforcement.hyperparameters.batch_size"
    sft_rows = [{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}]
    e = error_of(create, model="tiny", training_file=upload(admin, sft_rows, "sft.jsonl"), method=rft(CHECK))
    assert e.status_code == 400 and e.body["param"] == "training_file" and "user turn" in e.body["message"]
    e = error_of(create, model="tiny", training_file=train, method={"type": "supervised"})
    assert e.status_code == 400 and e.body["param"] == "training_file" and "reinforcement" in e.body["message"]


def test_string_check_job_succeeds_serves_the_best_checkpoint_and_matches_graders_run(gateway, admin, files):
    train, valid = files
    job = admin.fine_tuning.jobs.create(model="tiny", training_file=train, validation_file=valid,
                                        method=rft(MULTI), seed=3)
    assert job.method.type == "reinforcement" and job.method.reinforcement.grader.type == "multi"
    done = wait(admin, job.id, finished, timeout=600)
    assert done.status == "succeeded", done.error
    steps = sorted(metrics(admin, job.id), key=lambda d: d["step"])
    assert [d["step"] for d in steps] == [1, 2]
    for d in steps:  # the reward curve, each sub-grader's mean, and the validation grade per step
        assert 0.0 <= d["train_reward_mean"] <= 1.0 and 0.0 <= d["valid_reward_mean"] <= 1.0
        assert "train_has_e_mean" in d and "valid_fuzzy_mean" in d
    ckpts = admin.fine_tuning.jobs.checkpoints.list(job.id).data
    assert {c.step_number for c in ckpts} == {1, 2}
    assert all(0.0 <= c.metrics.model_dump()["valid_reward_mean"] <= 1.0 for c in ckpts)
    best = max(steps, key=lambda d: (d["valid_reward_mean"], d["step"]))
    events = [e.message for e in admin.fine_tuning.jobs.list_events(job.id, limit=100)]
    assert f"Best checkpoint: step {best['step']}" in " ".join(events)
    # the fine-tuned model answers; graded by /graders/run, its greedy answer gets the job's score
    chat = gateway.openai().chat.completions.create(model=done.fine_tuned_model, messages=PROMPTS[4]["messages"],
                                                    max_tokens=12, temperature=0)
    answer = chat.choices[0].message.content
    graded = admin.fine_tuning.alpha.graders.run(grader=MULTI, model_sample=answer, item=PROMPTS[4])
    assert graded.reward == pytest.approx(best["valid_reward_mean"], abs=1e-6)
    policy = f"rft-{job.id}"  # the training policy gave its LoRA slot back
    assert policy not in [m.id for m in gateway.openai().models.list().data]


def test_evalctl_task_grader_job_succeeds_and_answers(gateway, admin, files):
    train, _ = files
    task = {"type": "evalctl_task", "name": "r1", "task": "gsm8k", "scorer": "format_reward"}
    job = admin.fine_tuning.jobs.create(model="tiny", training_file=train, method=rft(task, max_steps=1), seed=1)
    done = wait(admin, job.id, finished, timeout=600)
    assert done.status == "succeeded", done.error
    (step,) = metrics(admin, job.id)
    assert step["train_reward_mean"] == 0.0  # the random tiny model never writes r1_zero's format
    chat = gateway.openai().chat.completions.create(model=done.fine_tuned_model, messages=PROMPTS[0]["messages"],
                                                    max_tokens=8)
    assert chat.choices[0].message.content is not None and chat.usage.completion_tokens > 0


# -- a gateway of its own: python graders allowed and limited; a running job survives a restart ----------
PYGRADER = {"type": "python", "name": "py", "source": "def grade(sample, item):\n"
            "    text = sample['output_text']\n    return sum(c in text for c in 'aeiou') / 5\n"}


def test_python_graders_limited_and_a_running_job_resumes_after_restart(tiny_model, tmp_path):
    args = ("--api-key", API_KEY, "--admin-key", ADMIN_KEY, "--jobs-dir", str(tmp_path / "jobs"),
            "--python-graders", "--python-grader-timeout", "2")
    gw = start_gateway(tiny_model, tmp_path / "gw1.log", *args)
    try:
        client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=ADMIN_KEY, max_retries=0, timeout=120)
        run = client.fine_tuning.alpha.graders.run
        assert run(grader=PYGRADER, model_sample="aeiou", item={}).reward == pytest.approx(1.0)
        spin = {**PYGRADER, "source": "def grade(sample, item):\n    while True:\n        pass\n"}
        got = run(grader=spin, model_sample="x", item={})
        assert got.reward == 0.0 and got.metadata.errors.python_grader_runtime_error
        assert "ran past 2.0 s" in got.metadata.errors.python_grader_runtime_error_details
        train, valid = upload(client, PROMPTS[:4], "t.jsonl"), upload(client, PROMPTS[4:], "v.jsonl")
        job = client.fine_tuning.jobs.create(model="tiny", training_file=train, validation_file=valid,
                                             method=rft(PYGRADER, max_steps=4), seed=5)
        wait(client, job.id, lambda j: j.status == "running" and (j.model_extra["progress"]["step"] or 0) >= 2,
             timeout=600)
    finally:
        gw.stop()
    gw = start_gateway(tiny_model, tmp_path / "gw2.log", *args)
    try:
        client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=ADMIN_KEY, max_retries=0, timeout=120)
        done = wait(client, job.id, finished, timeout=600)
        assert done.status == "succeeded", done.error
        messages = [e.message for e in client.fine_tuning.jobs.list_events(job.id, limit=200)]
        restart = [m for m in messages if "resuming at step" in m]
        assert restart and int(restart[0].rsplit(" ", 1)[1]) >= 1  # from its checkpoint, not from scratch
        assert sorted({m["step"] for m in metrics(client, job.id)}) == [1, 2, 3, 4]
        answer = gw_chat(gw, done.fine_tuned_model)
        assert answer is not None
    finally:
        gw.stop()


def gw_chat(gw, model: str) -> str | None:
    client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=API_KEY, max_retries=0, timeout=120)
    return client.chat.completions.create(model=model, messages=PROMPTS[0]["messages"], max_tokens=8
                                          ).choices[0].message.content


# -- no engine -------------------------------------------------------------------------------------
def test_python_job_fails_on_a_server_restarted_without_the_flag(tmp_path):
    from server.jobs.scheduler import Scheduler
    from server.settings import ServeSettings

    sched = Scheduler(ServeSettings(jobs_dir=tmp_path), adapters=None, router=None)
    sched.store.add_job("ftjob-py", {"python_limits": {"timeout": 1.0, "memory_mb": 128}})
    sched.store.update_job("ftjob-py", status="queued")
    sched._launch(sched.store.get_job("ftjob-py"))
    job = sched.store.get_job("ftjob-py")
    assert job["status"] == "failed" and job["error"]["code"] == "python_graders_disabled" and not sched.workers


def test_micro_batch_divides_the_steps_completions():
    from server.jobs.rft_spec import micro_batch

    assert [micro_batch(total, 16) for total in (8, 16, 20, 48, 7)] == [8, 16, 10, 16, 7]
