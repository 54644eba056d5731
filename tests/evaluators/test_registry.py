from __future__ import annotations

import subprocess
import sys

import pytest

from evaluators.registry import TASKS, Registry, UnknownName
from evaluators.task import Task


def test_tasks_are_registered():
    assert TASKS.names() == ["finance", "gsm8k", "gsm8k_cot", "legal", "legal_articles", "probability"]
    for name in TASKS.names():
        task = TASKS.get(name)
        assert isinstance(task, Task) and task.name == name
        assert task.primary in task.scorers


def test_did_you_mean():
    with pytest.raises(UnknownName) as err:
        TASKS.get("gsm8kk")
    assert isinstance(err.value, KeyError)
    assert "Did you mean 'gsm8k'?" in str(err.value)
    assert str(err.value).startswith("unknown task 'gsm8kk'")


def test_no_suggestion_for_nonsense():
    with pytest.raises(UnknownName) as err:
        TASKS.get("zzzzzz")
    assert "Did you mean" not in str(err.value)


def test_generic_registry():
    reg: Registry[int] = Registry("thing")
    reg.register("one", 1)
    assert reg.get("one") == 1 and "one" in reg and len(reg) == 1
    with pytest.raises(ValueError):
        reg.register("one", 2)
    with pytest.raises(UnknownName, match="Did you mean 'one'"):
        reg.get("onee")


def test_import_is_light():
    code = ("import sys, evaluators.registry, evaluators.scorers; "
            "print(sorted(m for m in ('torch', 'vllm', 'sympy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
