"""Tokenizer and BM25: pure tests."""

import numpy as np

from rag.lexical import BM25, tokenize
from rag.retrieve import rrf


def test_cjk_runs_become_bigrams():
    assert tokenize("盗窃罪") == ["盗窃", "窃罪"]
    assert tokenize("罪，盗窃") == ["罪", "盗窃"]


def test_latin_words_are_lowercased_and_punctuation_dropped():
    assert tokenize("Theft, THEFT & robbery-2016!") == ["theft", "theft", "robbery", "2016"]


def test_mixed_script():
    assert tokenize("VIVO手机3723元") == ["vivo", "手机", "3723", "元"]


def test_bm25_prefers_the_document_with_the_rare_matching_term():
    docs = ["盗窃公私财物，数额较大的", "故意杀人的，处死刑", "交通肇事致人死亡", "the cat sat on the mat"]
    bm = BM25(docs)
    assert bm.top("被告人盗窃手机", 2)[0][0] == 0
    assert bm.top("致人死亡", 3)[0][0] == 2
    assert bm.top("drunk driving killed a pedestrian 交通", 1)[0][0] == 2
    assert bm.top("cat", 4) == [(3, bm.scores("cat")[3])]  # only positive scores come back


def test_bm25_length_normalisation_and_idf():
    bm = BM25(["apple banana", "apple banana cherry date elder fig grape", "kiwi"])
    s = bm.scores("banana")
    assert s[0] > s[1] > 0 and s[2] == 0
    assert bm.idf[bm.vocab["kiwi"]] > bm.idf[bm.vocab["apple"]]


def test_bm25_unknown_query_and_empty_corpus():
    assert not BM25(["a b"]).scores("zzz").any()
    assert BM25([]).top("x", 3) == []
    assert np.all(BM25(["", "a"]).scores("a") >= 0)


def test_rrf_rewards_items_ranked_well_by_both():
    fused = rrf([["a", "b", "c"], ["b", "c", "a"]])
    assert [x for x, _ in fused] == ["b", "a", "c"]
    assert abs(fused[0][1] - (1 / 62 + 1 / 61)) < 1e-12


def test_lsa_baseline_ranks_the_overlapping_document_first():
    from rag.lsa import LSA

    lsa = LSA(["盗窃公私财物，数额较大的", "故意杀人的，处死刑", "交通肇事致人死亡", "the cat sat on the mat"])
    [theft, cat] = lsa.top_many(["被告人盗窃财物", "a cat on a mat"], 2)
    assert theft[0][0] == 0 and cat[0][0] == 3
    assert theft[0][1] > theft[1][1]
