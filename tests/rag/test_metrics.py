"""Retrieval metrics and the judge parsers: pure tests."""

import pytest

from rag import metrics as M


def test_units_fold_chunks_of_one_article():
    ids = ["264-0-0", "264-0-1", "133-1-0", "264-1-0", "234-0-0"]
    assert M.ranked_units(ids, "-") == ["264", "133", "234"]
    assert M.ranked_units(ids, None) == ids


def test_recall_and_mrr():
    units = ["264", "133", "234", "263"]
    assert M.recall_at(units, {"133"}, 1) == 0.0
    assert M.recall_at(units, {"133"}, 3) == 1.0
    assert M.recall_at(units, {"133", "999"}, 10) == 0.5
    assert M.reciprocal_rank(units, {"234", "263"}) == pytest.approx(1 / 3)
    assert M.reciprocal_rank(units, {"999"}) == 0.0
    assert M.recall_at(units, set(), 3) is None and M.reciprocal_rank(units, set()) is None
    assert M.retrieval_scores(units, {"264"}, (1, 3)) == {"recall@1": 1.0, "recall@3": 1.0, "mrr": 1.0}


@pytest.mark.parametrize("text,expected", [
    ('{"claims": [{"claim": "a", "supported": true}, {"claim": "b", "supported": false}]}', 0.5),
    ('Sure!\n```json\n{"claims": [{"claim": "a", "supported": "yes"}]}\n```', 1.0),
    ("{'claims': [{'claim': 'a', 'supported': False}]}", 0.0),
    ('{"claims": [true, true, false, true]}', 0.75),
])
def test_parse_faithfulness(text, expected):
    assert M.parse_faithfulness(text)["faithfulness"] == expected


def test_faithfulness_without_claims_is_none_not_zero():
    assert M.parse_faithfulness('{"claims": []}') == {"faithfulness": None, "claims": 0, "supported": 0}


@pytest.mark.parametrize("text", ["", "I think it is fine.", '{"claims": [{"supported": "maybe"}]}',
                                  '{"verdict": "ok"}', None])
def test_unreadable_faithfulness_is_a_parse_error(text):
    assert M.parse_faithfulness(text)["parse_error"] is True


def test_parse_relevance():
    assert M.parse_relevance('{"relevant": [true, false, "yes"]}', 3)["context_relevance"] == pytest.approx(2 / 3)
    assert M.parse_relevance('{"relevant": [1, 0]}', 2)["relevant"] == [True, False]
    assert M.parse_relevance('{"relevant": [true]}', 3)["parse_error"]  # wrong count: not trusted
    assert M.parse_relevance("no json", 1)["parse_error"]


def test_judge_prompts_carry_their_inputs():
    [m] = M.faithfulness_messages("[a#0] the sky is blue", "It is blue [a#0].")
    assert "[a#0] the sky is blue" in m["content"] and "It is blue" in m["content"]
    [m] = M.relevance_messages("why?", ["p one", "p two"])
    assert "1. p one\n2. p two" in m["content"]
