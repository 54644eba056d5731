"""`evalctl run | score | ls | compare` through click's CliRunner: one-line errors with the
right exit codes, and the happy paths against the fake server (no vLLM)."""

from __future__ import annotations

import difflib
import json
import sys
import types

import pytest
from click.testing import CliRunner

from evalctl.cli import main
from evaluators.results import read_jsonl
from server.engine import free_port

from .test_runner_fake import ADDER, fake_server  # noqa: F401 - the fixture is used by name


class UnknownName(KeyError):
    def __str__(self) -> str:
        return self.args[0]


class FakeRegistry:
    def __init__(self, tasks):
        self.tasks = {t.name: t for t in tasks}

    def get(self, name):
        if name not in self.tasks:
            close = difflib.get_close_matches(name, list(self.tasks))
            raise UnknownName(f"unknown task {name!r}" + (f"; Did you mean {close[0]!r}?" if close else ""))
        return self.tasks[name]

    def names(self):
        return sorted(self.tasks)


@pytest.fixture
def registry(monkeypatch):
    module = types.ModuleType("evaluators.registry")
    module.TASKS, module.UnknownName = FakeRegistry([ADDER]), UnknownName
    monkeypatch.setitem(sys.modules, "evaluators.registry", module)
    return module


def invoke(*args, env=None):
    return CliRunner().invoke(main, list(args), env={"EVALCTL_BASE_URL": None, "EVALCTL_API_KEY": None,
                                                     **(env or {})})


def one_line_error(result, code=1) -> str:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    return lines[0]


def test_unknown_task_did_you_mean_exit_2(registry):
    line = one_line_error(invoke("run", "addr", "--model", "adder"), code=2)
    assert "did you mean" in line.lower() and "adder" in line
    one_line_error(invoke("score", "addr", "--input", "x.jsonl"), code=2)


def test_unknown_task_with_the_real_registry():
    line = one_line_error(invoke("run", "gsm8kk", "--model", "tiny"), code=2)
    assert "did you mean" in line.lower() and "gsm8k" in line


def test_unreachable_endpoint_one_line(registry):
    url = f"http://127.0.0.1:{free_port()}"
    line = one_line_error(invoke("run", "adder", "--model", "adder", "--base-url", url, "--no-progress"))
    assert "cannot reach" in line and str(url.rsplit(":", 1)[1]) in line
    assert "[default: http://127.0.0.1:8000]" in " ".join(invoke("run", "--help").output.split())


def test_base_url_from_env(registry, fake_server, tmp_path):  # noqa: F811
    result = invoke("run", "adder", "--model", "nope", "--no-progress", env={"EVALCTL_BASE_URL": fake_server.url})
    assert fake_server.url in one_line_error(result)


def test_unknown_model_did_you_mean(registry, fake_server, tmp_path):  # noqa: F811
    line = one_line_error(invoke("run", "adder", "--model", "addre", "--base-url", fake_server.url,
                                 "--out", str(tmp_path / "r"), "--no-progress"))
    assert "'addre' is not served" in line and "did you mean adder" in line
    assert not (tmp_path / "r").exists()  # checked before the run dir is made


def test_run_resume_and_mismatch(registry, fake_server, tmp_path):  # noqa: F811
    out = tmp_path / "r"
    args = ["run", "adder", "--model", "adder", "--base-url", fake_server.url, "--out", str(out), "--no-progress"]
    result = invoke(*args, "--limit", "4")
    assert result.exit_code == 0, result.output
    assert "accuracy" in result.output and "4 examples" in result.output
    result = invoke(*args)  # same dir, no limit: resumes and finishes the other 6
    assert result.exit_code == 0, result.output
    ids = [r["id"] for r in read_jsonl(out / "results.jsonl")]
    assert sorted(ids) == sorted(f"s{i}" for i in range(10))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["timings"]["resumed_samples"] == 4 and summary["num_examples"] == 10
    line = one_line_error(invoke(*args, "--temperature", "0.9"))
    assert "cannot resume" in line and "sampling" in line


def test_run_overrides_and_writes_sampling(registry, fake_server, tmp_path):  # noqa: F811
    out = tmp_path / "r"
    result = invoke("run", "adder", "--model", "adder", "--base-url", fake_server.url, "--out", str(out),
                    "--limit", "2", "--max-tokens", "5", "--seed", "3", "--no-progress")
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["sampling"] == {"temperature": 0.0, "max_tokens": 5, "seed": 3}
    assert fake_server.calls[-1]["max_tokens"] == 5 and fake_server.calls[-1]["seed"] == 3


def test_bad_data_path_one_line(registry, fake_server, tmp_path):  # noqa: F811
    line = one_line_error(invoke("run", "adder", "--model", "adder", "--base-url", fake_server.url,
                                 "--data", str(tmp_path / "missing.jsonl")))
    assert "cannot load adder" in line


@pytest.mark.parametrize("content, message", [
    (None, "no such file"),
    ("not json\n{}\n", "not valid JSON"),
    ('{"answer": "#### 3"}\n', "no `completion` or `completions`"),
    ("", "no records"),
])
def test_score_bad_input_one_line(registry, tmp_path, content, message):
    path = tmp_path / "in.jsonl"
    if content is not None:
        path.write_text(content)
    line = one_line_error(invoke("score", "adder", "--input", str(path), "--out", str(tmp_path / "o")))
    assert message in line


def test_score_plain_jsonl(registry, tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in [
        {"id": "a", "completion": "2", "answer": "2"},
        {"id": "b", "completions": ["3", "x"], "gold_answer": "3"},  # gold_answer is read as answer
    ]) + "\n")
    result = invoke("score", "adder", "--input", str(path), "--out", str(tmp_path / "o"))
    assert result.exit_code == 0, result.output
    recs = {r["id"]: r for r in read_jsonl(tmp_path / "o" / "results.jsonl")}
    assert recs["a"]["scores"]["correct"] == 1.0 and recs["b"]["scores"]["correct"] == 0.5
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["num_examples"] == 2 and summary["accuracy"] == 0.75


def test_ls_lists_tasks(registry):
    result = invoke("ls")
    assert result.exit_code == 0 and result.output.split() == ["adder", "Add", "two", "numbers", "(test", "task)."]


def test_compare_cli(registry, fake_server, tmp_path):  # noqa: F811
    """Two runs over the same ids: `b` asks sums the fake gets wrong (a >= 5), so accuracy drops
    from 5/6 to 0 on every pair but one, and the paired bootstrap must call that significant."""
    hard = tmp_path / "hard.jsonl"
    hard.write_text("".join(json.dumps({"id": f"s{i}", "prompt": f"{i + 5}+1=", "answer": str(i + 6)}) + "\n"
                            for i in range(6)))
    common = ["--model", "adder", "--base-url", fake_server.url, "--no-progress"]
    assert invoke("run", "adder", *common, "--out", str(tmp_path / "a"), "--limit", "6").exit_code == 0
    assert invoke("run", "adder", *common, "--out", str(tmp_path / "b"), "--data", str(hard)).exit_code == 0
    png = tmp_path / "cmp" / "chart.png"
    result = invoke("compare", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(png),
                    "--metrics", "accuracy,format_rate", "--resamples", "1000")
    assert result.exit_code == 0, result.output
    table = json.loads((tmp_path / "cmp" / "chart.json").read_text())
    a, b = (row["metrics"]["accuracy"] for row in table["runs"])
    assert png.exists() and a["mean"] == pytest.approx(5 / 6) and b["mean"] == 0.0
    assert b["n_pairs"] == 6 and b["delta"] == pytest.approx(-5 / 6) and b["p_value"] < 0.01
    assert f"p={b['p_value']:.3g}" in result.output
    same = invoke("compare", str(tmp_path / "a"), str(tmp_path / "a"), "--out", str(tmp_path / "same.png"))
    assert same.exit_code == 0 and "p=1" in same.output  # no difference: no evidence of one
    line = one_line_error(invoke("compare", str(tmp_path / "a"), str(tmp_path / "zz")))
    assert "no summary.json" in line
    line = one_line_error(invoke("compare", str(tmp_path / "a"), "--metrics", "acc"))
    assert "no metric 'acc'" in line
