"""Graders and reinforcement fine-tuning through the official SDK against the real server: the
grader endpoints (validate, run with a served judge and a served embedder, the errors), and
reinforcement jobs trained by the real TRL GRPO worker with rollouts from the real vLLM engine,
ending in a hot-loaded fine-tuned model that answers."""

from __future__ import annotations

import openai
import pytest

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
