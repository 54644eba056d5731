"""The demo's synthetic task: small-number addition and subtraction word problems in
GSM8K's `{question, answer}` layout (answers end in `#### N`), so the stock `gsm8k` task,
its r1_zero prompt and its scorers evaluate it unchanged via `--data`.

Three kinds of text come from the same generator:
  pretraining  plain `Question: ... Answer: ...` text, half of it a User/Assistant exchange that
               thinks aloud after `<think>` but never closes it nor writes `<answer>`: the base
               learns arithmetic, not the output format, so its format rate starts near 0
  sft          r1_zero completions written by a program (`a + b = c </think> <answer> c </answer>`)
  train/test   GSM8K-layout records for GRPO prompts and for evaluation
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from evaluators.tasks.gsm8k import PROMPT

NAMES = ["Ann", "Bob", "Carla", "Dev", "Emma", "Farid", "Gita", "Hugo"]
ITEMS = ["apples", "pens", "books", "coins", "cards", "eggs", "shells", "stamps"]
ADD = ["{who} has {a} {what} and buys {b} more. How many {what} does {who} have now?",
       "There are {a} {what} in a box. {who} puts in {b} more. How many {what} are in the box now?"]
SUB = ["{who} has {a} {what} and gives away {b}. How many {what} does {who} have now?",
       "There are {a} {what} in a box. {who} takes out {b}. How many {what} are in the box now?"]
MAX_OPERAND = 9  # one-digit operands: arithmetic a 0.5M-parameter model learns in CPU minutes


def problem(rng: random.Random) -> dict:
    """One problem; subtraction keeps the result positive (GSM8K answers are counts)."""
    who, what = rng.choice(NAMES), rng.choice(ITEMS)
    a, b = rng.randint(1, MAX_OPERAND), rng.randint(1, MAX_OPERAND)
    if rng.random() < 0.5:
        op, c, template = "+", a + b, rng.choice(ADD)
    else:
        a, b = max(a, b) + 1, min(a, b)
        op, c, template = "-", a - b, rng.choice(SUB)
    return {"question": template.format(who=who, what=what, a=a, b=b), "a": a, "b": b, "op": op, "c": c}


def problems(n: int, seed: int, exclude: set[str] = frozenset()) -> list[dict]:
    rng, out = random.Random(seed), []
    while len(out) < n:
        p = problem(rng)
        if p["question"] not in exclude:
            out.append(p)
    return out


def gsm8k_record(p: dict) -> dict:
    calc = f"{p['a']}{p['op']}{p['b']}"
    return {"question": p["question"], "answer": f"{p['a']} {p['op']} {p['b']} = <<{calc}={p['c']}>>{p['c']}\n"
                                                 f"#### {p['c']}"}


def pretrain_text(p: dict, dialog: bool = False) -> str:
    """Plain question/answer text: the arithmetic, no answer tags. Half of it is a User/Assistant
    exchange whose reply opens with `<think>` as the r1_zero prompt ends (a base model has read
    such transcripts); it never closes the tag nor writes `<answer>`, so the base does not follow
    the format, yet it does its arithmetic after the prompt's `<think>`. (Without that, the
    prompt's unseen `<think>` cost the model its arithmetic: 0.70 greedy accuracy on plain text,
    0.05 after the r1_zero prompt.)"""
    if dialog:
        return f"User: {p['question']}\nAssistant: <think> {p['a']} {p['op']} {p['b']} = {p['c']}. The answer is {p['c']}."
    return f"Question: {p['question']}\nAnswer: {p['a']} {p['op']} {p['b']} = {p['c']}. The answer is {p['c']}."


def sft_record(p: dict) -> dict:
    """A format-following completion for the r1_zero prompt (which already ends in `<think>`)."""
    return {"prompt": PROMPT.format(question=p["question"]),
            "completion": f" {p['a']} {p['op']} {p['b']} = {p['c']} </think> <answer> {p['c']} </answer>"}


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def write_data(data_dir: Path, n_test: int, n_train: int, n_sft: int) -> dict[str, Path]:
    """test.jsonl (held out by question text), train.jsonl (GRPO prompts), sft.jsonl."""
    test = problems(n_test, seed=1)
    held_out = {p["question"] for p in test}
    train = problems(n_train, seed=2, exclude=held_out)
    sft = problems(n_sft, seed=3, exclude=held_out)
    return {"test": write_jsonl(data_dir / "test.jsonl", [gsm8k_record(p) for p in test]),
            "train": write_jsonl(data_dir / "train.jsonl", [gsm8k_record(p) for p in train]),
            "sft": write_jsonl(data_dir / "sft.jsonl", [sft_record(p) for p in sft])}
