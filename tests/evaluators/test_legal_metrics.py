"""Legal runs report the corpus-level charge macro-F1 in summary.json (the recipe legal-rs's table
reads it), computed from the saved completions by `evalctl score` as by `evalctl run`; the
legal_articles task puts each CAIL case's relevant articles in its prompt."""

from __future__ import annotations

import json

from click.testing import CliRunner

from evalctl.cli import main
from evaluators.registry import TASKS
from evaluators.scorers.legal import charge_macro_f1, legal_corpus_metrics


def test_score_legal_writes_charge_macro_f1(tmp_path):
    rows = [{"id": "a", "completion": "<answer>盗窃 | 12</answer>", "charge": ["盗窃"], "prison_time": 12},
            {"id": "b", "completion": "<answer>盗窃 | 6</answer>", "charge": ["诈骗"], "prison_time": 6},
            {"id": "c", "completion": "no answer", "charge": ["诈骗"], "prison_time": 3}]
    inp = tmp_path / "old.jsonl"
    inp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    r = CliRunner().invoke(main, ["score", "legal", "--input", str(inp), "--out", str(tmp_path / "run")])
    assert r.exit_code == 0, r.output
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    # 盗窃: tp 1, fp 1 -> F1 2/3; 诈骗: fn 2 -> 0; macro 1/3
    assert abs(summary["charge_macro_f1"] - 1 / 3) < 1e-9
    assert summary["charge_macro_f1"] == charge_macro_f1([["盗窃"], ["盗窃"], []], [["盗窃"], ["诈骗"], ["诈骗"]])


def test_macro_f1_differs_from_accuracy_on_a_rare_charge():
    recs = [{"gold": {"charge": [g]}, "completion": f"<answer>{p} | 1</answer>"}
            for p, g in [("盗窃", "盗窃")] * 3 + [("盗窃", "抢劫")]]
    # accuracy 3/4; macro-F1 averages 盗窃 (6/7) with the missed 抢劫 (0)
    assert abs(legal_corpus_metrics(recs)["charge_macro_f1"] - 3 / 7) < 1e-9
    assert legal_corpus_metrics([{"gold": {}, "completion": "x"}]) == {}


def test_legal_articles_puts_the_cases_articles_in_the_prompt(tmp_path):
    (tmp_path / "cases.jsonl").write_text(json.dumps(
        {"fact": "被告人甲盗窃电动车一辆。", "charge": ["盗窃"], "relevant_articles": [264], "prison_time": 6},
        ensure_ascii=False) + "\n")
    (tmp_path / "criminal_law_articles.json").write_text(json.dumps(
        {"264-0-0": "【盗窃罪】盗窃公私财物，数额较大的……", "264-1-0": "第二款。", "2640-0-0": "not this one"},
        ensure_ascii=False))
    with_articles = TASKS.get("legal_articles").load(tmp_path / "cases.jsonl")[0]["prompt"][-1]["content"]
    plain = TASKS.get("legal").load(tmp_path / "cases.jsonl")[0]["prompt"][-1]["content"]
    assert "【相关法条】\n【第264条】【盗窃罪】盗窃公私财物，数额较大的……第二款。\n" in with_articles
    assert "not this one" not in with_articles and "【相关法条】" not in plain
