"""results.jsonl I/O, resume bookkeeping and summaries (no server); the statistics: test_stats.py."""

from __future__ import annotations

import json

import numpy as np
import pytest

from evaluators.records import read_saved
from evaluators.results import (ResultsError, ResultsWriter, completed_ids, dedupe, read_jsonl, repair_tail,
                                sha256_path, summarize)


def test_writer_appends_and_flushes_each_line(tmp_path):
    path = tmp_path / "results.jsonl"
    with ResultsWriter(path) as w:
        w.write({"id": "a", "x": "é"})
        assert read_jsonl(path) == [{"id": "a", "x": "é"}]  # visible before close: flushed per line
        w.write({"id": "b"})
    assert [r["id"] for r in read_jsonl(path)] == ["a", "b"]


def test_second_writer_on_same_file_is_refused(tmp_path):
    path = tmp_path / "results.jsonl"
    with ResultsWriter(path):
        with pytest.raises(ResultsError, match="being written by another run"):
            ResultsWriter(path)


def test_truncated_last_line_is_ignored_and_repaired(tmp_path):
    path = tmp_path / "results.jsonl"
    path.write_text('{"id": "a"}\n{"id": "b"}\n{"id": "c", "compl')
    assert completed_ids(read_jsonl(path)) == {"a", "b"}
    assert repair_tail(path) == len('{"id": "c", "compl')
    assert path.read_text() == '{"id": "a"}\n{"id": "b"}\n'
    with ResultsWriter(path) as w:  # appending after a repair starts on a fresh line
        w.write({"id": "c"})
    assert [r["id"] for r in read_jsonl(path, allow_truncated_tail=False)] == ["a", "b", "c"]


def test_writer_repairs_tail_itself(tmp_path):
    path = tmp_path / "results.jsonl"
    path.write_text('{"id": "a"}\n{"id"')
    with ResultsWriter(path) as w:
        w.write({"id": "b"})
    assert path.read_text() == '{"id": "a"}\n{"id": "b"}\n'


def test_complete_last_line_without_newline_is_kept(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text('{"id": "a"}\n{"id": "b"}')
    assert [r["id"] for r in read_jsonl(path)] == ["a", "b"]


def test_bad_middle_line_is_an_error(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text('{"id": "a"}\nnot json\n{"id": "b"}\n')
    with pytest.raises(ResultsError, match=r"r.jsonl:2: not valid JSON"):
        read_jsonl(path)
    path.write_text('[1, 2]\n')
    with pytest.raises(ResultsError, match="JSON object per line"):
        read_jsonl(path)
    with pytest.raises(ResultsError, match="no such file"):
        read_jsonl(tmp_path / "missing.jsonl")


def test_repair_of_missing_or_clean_file_is_a_no_op(tmp_path):
    assert repair_tail(tmp_path / "nope") == 0
    (tmp_path / "ok").write_text('{"id": 1}\n')
    assert repair_tail(tmp_path / "ok") == 0


def test_dedupe_keeps_first():
    assert dedupe([{"id": 1, "v": 1}, {"id": "1", "v": 2}, {"id": 2}]) == [{"id": 1, "v": 1}, {"id": 2}]


def test_a_resume_retries_failed_samples_and_keeps_their_retry():
    records = [{"id": "a", "error": None, "v": 1}, {"id": "b", "error": "InternalServerError(503): down"},
               {"id": "c", "error": "timeout"}, {"id": "b", "error": None, "v": 2}]
    assert completed_ids(records) == {"a", "b"}  # c failed and was not retried yet: it runs again
    assert dedupe(records) == [{"id": "a", "error": None, "v": 1}, {"id": "b", "error": None, "v": 2},
                               {"id": "c", "error": "timeout"}]


def _rec(i, correct, fmt, category=None, error=None):
    return {"id": str(i), "category": category, "scores": {"correct": correct, "format": fmt},
            "completion_scores": [{"correct": correct}], "error": error}


def test_summarize_counts_means_and_categories():
    recs = [_rec(0, 1.0, 1.0, "a"), _rec(1, 0.0, 1.0, "a"), _rec(2, 1.0, 0.0, "b"),
            _rec(3, None, None, "b", error="Timeout"), _rec(0, 0.0, 0.0, "a")]  # a duplicate id is counted once
    s = summarize(recs, {"correct": "accuracy", "format": "format_rate"})
    assert (s["num_examples"], s["num_scored"], s["num_failed"]) == (4, 3, 1)
    assert s["accuracy"] == pytest.approx(2 / 3) and s["metrics"]["accuracy"]["n"] == 3
    assert s["accuracy_stderr"] == pytest.approx(np.std([1, 0, 1], ddof=1) / np.sqrt(3))
    assert s["metrics"]["format_rate"]["field"] == "format"
    assert s["by_category"] == {"a": {"num_examples": 2, "accuracy": 0.5, "format_rate": 1.0},
                                "b": {"num_examples": 2, "accuracy": 1.0, "format_rate": 0.0}}
    assert "judge_parse_failures" not in s


def test_summarize_counts_judge_failures():
    recs = [{"id": "1", "scores": {"judge_pass": None}, "judge": [{"parse_error": True, "raw": "x"}]},
            {"id": "2", "scores": {"judge_pass": 1.0}, "judge": [{"grade": "C", "pass": 1.0}, {"error": "500"}]}]
    s = summarize(recs, {})
    assert s["judge_parse_failures"] == 1 and s["judge_errors"] == 1 and s["judge_pass"] == 1.0


def test_sha256_path(tmp_path):
    f = tmp_path / "d.jsonl"
    f.write_text("x")
    assert sha256_path(f) == "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881"
    assert sha256_path(None) is None and sha256_path(tmp_path / "nope") is None
    assert len(sha256_path(tmp_path)) == 64


def test_read_saved_plain_and_results_formats(tmp_path):
    plain = tmp_path / "plain.jsonl"
    plain.write_text(json.dumps({"completion": "a", "gold_answer": "#### 4", "question": "q"}) + "\n"
                     + json.dumps({"id": "x", "completions": ["b", None], "answer": "#### 5"}) + "\n")
    items = read_saved(plain)
    assert items[0]["sample"] == {"id": "0", "prompt": "", "answer": "#### 4", "question": "q"}
    assert items[1]["texts"] == ["b", ""] and items[1]["sample"]["id"] == "x"
    results = tmp_path / "results.jsonl"
    results.write_text(json.dumps({"id": "s", "prompt": "p", "category": "c", "completions": ["1"],
                                   "gold": {"answer": "1"}, "scores": {"correct": 1.0}}) + "\n")
    assert read_saved(tmp_path)[0]["sample"] == {"id": "s", "prompt": "p", "answer": "1", "category": "c"}


@pytest.mark.parametrize("content, message", [
    ("", "no records"),
    ('{"answer": "1"}\n', "no `completion` or `completions`"),
    ('{"completion": 3}\n', "must be a string"),
    ('{"completions": "abc"}\n', "list of strings"),
    ('{"id": 1, "completion": "a"}\n{"id": 1, "completion": "b"}\n', "duplicate ids"),
])
def test_read_saved_rejects_bad_input(tmp_path, content, message):
    path = tmp_path / "in.jsonl"
    path.write_text(content)
    with pytest.raises(ResultsError, match=message):
        read_saved(path)


def test_scoring_moves_slow_scorers_off_the_event_loop():
    import asyncio
    import threading
    import time

    from evaluators.records import Scoring
    from evaluators.task import Task

    threads = []

    def slow(completions, **_):
        threads.append(threading.current_thread().name)
        time.sleep(0.03)
        return [1.0 for _ in completions]

    task = Task(name="t", description="", load=lambda p: [], scorers={"slow": slow})

    async def go():
        scoring = Scoring()
        try:
            return [await scoring.score(task, {"id": "1", "prompt": "p"}, ["a", "b"]) for _ in range(5)]
        finally:
            scoring.close()

    results = asyncio.run(go())
    assert all(r == ([{"slow": 1.0}, {"slow": 1.0}], None) for r in results)
    assert threads[:3] == ["MainThread"] * 3 and all(t.startswith("score") for t in threads[3:])
