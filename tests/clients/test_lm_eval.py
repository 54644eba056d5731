"""lm-evaluation-harness 0.4.13 against the session gateway: `local-completions` and
`local-chat-completions` on a zero-shot task defined here from a local JSON Lines file (no
dataset hub), and a multiple-choice task scored from the endpoint's echoed prompt log-probs.

The tiny model's text is random, so the data is built from it: half the gold answers are the
greedy replies the openai SDK gets for the same prompts, half are text it never says. lm-eval must
send those prompts, take those replies and score exact_match 0.5 over 4 samples. lm-eval reads the
key from OPENAI_API_KEY."""

from __future__ import annotations

import json
import math

import pytest
import yaml
from lm_eval import simple_evaluate
from lm_eval.tasks import TaskManager

pytestmark = pytest.mark.engine

PROMPTS = ["Q: Ann has 3 pens. How many pens?\nA:", "Q: Bob has 2 apples. How many apples?\nA:",
           "Q: What is 4 plus 5?\nA:", "Q: Is the sky blue?\nA:"]
MAX_TOKENS, NEVER = 8, "an answer the model never gives"
ENDPOINTS = {"local-completions": "/v1/completions", "local-chat-completions": "/v1/chat/completions"}


def greedy(gateway, model: str, prompt: str) -> str:
    if model == "local-completions":
        return gateway.openai().completions.create(model="tiny", prompt=prompt, temperature=0, max_tokens=MAX_TOKENS,
                                                   stop=["\n"]).choices[0].text
    return gateway.openai().chat.completions.create(model="tiny", messages=[{"role": "user", "content": prompt}],
                                                    temperature=0, max_tokens=MAX_TOKENS,
                                                    stop=["\n"]).choices[0].message.content


def write_task(root, name: str, rows: list[dict], **config) -> None:
    data = root / f"{name}.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    task = {"task": name, "dataset_path": "json",
            "dataset_kwargs": {"data_files": str(data), "cache_dir": str(root / "hf-cache")},
            "test_split": "train",  # the json builder names a lone data file's split "train"
            "num_fewshot": 0, "doc_to_text": "prompt", "metadata": {"version": 1.0}, **config}
    (root / f"{name}.yaml").write_text(yaml.safe_dump(task))


def evaluate(gateway, root, model: str, task: str, monkeypatch, **model_args) -> dict:
    monkeypatch.setenv("OPENAI_API_KEY", gateway.api_key)
    args = {"model": "tiny", "base_url": f"{gateway.url}{ENDPOINTS[model]}", "num_concurrent": 2, "max_retries": 1,
            **model_args}
    return simple_evaluate(model=model, model_args=",".join(f"{k}={v}" for k, v in args.items()), tasks=[task],
                           task_manager=TaskManager(include_path=str(root), include_defaults=False),
                           apply_chat_template=model == "local-chat-completions", bootstrap_iters=0,
                           log_samples=True, batch_size=1)


@pytest.mark.parametrize("model", list(ENDPOINTS))
def test_generate_until_exact_match(gateway, tmp_path, monkeypatch, model):
    replies = [greedy(gateway, model, p) for p in PROMPTS]
    rows = [{"prompt": p, "answer": r if i < 2 else NEVER} for i, (p, r) in enumerate(zip(PROMPTS, replies))]
    task = f"evalctl_gen_{model.replace('-', '_')}"
    write_task(tmp_path, task, rows, output_type="generate_until", doc_to_target="answer",
               generation_kwargs={"until": ["\n"], "do_sample": False, "temperature": 0.0,
                                  "max_gen_toks": MAX_TOKENS},
               metric_list=[{"metric": "exact_match", "aggregation": "mean", "higher_is_better": True}])
    out = evaluate(gateway, tmp_path, model, task, monkeypatch, tokenized_requests=False, tokenizer_backend=None)
    samples = out["samples"][task]
    assert len(samples) == 4
    assert sorted(s["resps"][0][0] for s in samples) == sorted(replies)
    assert out["results"][task]["exact_match,none"] == 0.5


def test_multiple_choice_from_prompt_logprobs(gateway, tmp_path, monkeypatch):
    rows = [{"prompt": p, "choices": [" 1", " 2", " 7"], "gold": i % 3} for i, p in enumerate(PROMPTS)]
    write_task(tmp_path, "evalctl_mc", rows, output_type="multiple_choice", doc_to_target="gold",
               doc_to_choice="choices", metric_list=[{"metric": "acc"}])
    # log-likelihoods need the model's own tokenizer to split context from continuation
    out = evaluate(gateway, tmp_path, "local-completions", "evalctl_mc", monkeypatch,
                   tokenizer=gateway.model_dir, tokenizer_backend="huggingface", tokenized_requests=True)
    samples = out["samples"]["evalctl_mc"]
    assert len(samples) == 4 and all(len(s["resps"]) == 3 for s in samples)
    logprobs = [r[0][0] for s in samples for r in s["resps"]]
    assert all(math.isfinite(lp) and lp < 0 for lp in logprobs)
    acc = out["results"]["evalctl_mc"]["acc,none"]
    picked = [max(range(3), key=lambda j: s["resps"][j][0][0]) for s in samples]
    assert acc == pytest.approx(sum(p == i % 3 for i, p in enumerate(picked)) / 4)
