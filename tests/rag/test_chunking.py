"""Chunking: pure tests on strings."""

import pytest

from rag.chunking import chunk_text

EN = ("The court met on Monday. It heard three cases about theft! Each case took an hour? "
      "The judge wrote short opinions. Nobody appealed the rulings. ") * 12
ZH = "被告人于二〇一六年三月盗窃手机一部。案发后退赔全部损失并取得谅解。公诉机关建议从轻处罚。" * 20


@pytest.mark.parametrize("text,size,overlap", [(EN, 120, 20), (EN, 500, 50), (ZH, 100, 10), (ZH, 57, 0)])
def test_chunks_cover_the_text_within_size(text, size, overlap):
    chunks = chunk_text(text, size, overlap)
    body = text.strip()
    assert len(chunks) > 1
    assert all(0 < len(c.text) <= size for c in chunks)
    assert [c.index for c in chunks] == list(range(len(chunks)))
    for c in chunks:  # each chunk is exactly the text at its offset
        assert body[c.start:c.start + len(c.text)] == c.text
    ends = [c.start + len(c.text) for c in chunks]
    assert ends[-1] == len(body)
    for prev_end, nxt in zip(ends, chunks[1:]):  # nothing skipped between chunks
        assert nxt.start <= prev_end + 1


def test_overlap_repeats_the_tail_of_the_previous_chunk():
    chunks = chunk_text(ZH, 100, 20)
    for a, b in zip(chunks, chunks[1:]):
        shared = a.start + len(a.text) - b.start
        assert 0 < shared <= 20 + 1
        assert a.text.endswith(b.text[:shared])


def test_no_overlap_means_disjoint_chunks():
    chunks = chunk_text(EN, 100, 0)
    assert "".join(c.text for c in chunks).replace(" ", "") == EN.strip().replace(" ", "")


def test_cuts_at_sentence_ends_when_possible():
    chunks = chunk_text(EN, 120, 20)
    assert all(c.text.rstrip()[-1] in ".!?" for c in chunks[:-1])
    zh = chunk_text(ZH, 100, 10)
    assert all(c.text[-1] == "。" for c in zh[:-1])


def test_overlap_starts_on_a_word_not_mid_word():
    for c in chunk_text(EN, 120, 30)[1:]:
        before = EN.strip()[c.start - 1]
        assert before == " ", repr(EN.strip()[c.start - 5:c.start + 5])


def test_text_without_breaks_is_cut_hard():
    chunks = chunk_text("x" * 1050, 500, 50)
    assert [len(c.text) for c in chunks] == [500, 500, 150]
    assert [c.start for c in chunks] == [0, 450, 900]


def test_unicode_is_never_split_inside_a_character():
    text = "😀🚀中文Ωé" * 100
    chunks = chunk_text(text, 33, 5)
    assert all(c.text == text[c.start:c.start + len(c.text)] for c in chunks)
    assert "".join(ch.text for ch in chunk_text(text, 33, 0)) == text


@pytest.mark.parametrize("text", ["", "   ", "\n\n\t"])
def test_empty_and_blank_text_give_no_chunks(text):
    assert chunk_text(text) == []


def test_short_text_is_one_chunk_stripped():
    [c] = chunk_text("  hello world.  \n")
    assert (c.text, c.start, c.index) == ("hello world.", 0, 0)


@pytest.mark.parametrize("size,overlap", [(0, 0), (-5, 0), (10, 10), (10, -1), (10, 20)])
def test_bad_sizes_are_refused(size, overlap):
    with pytest.raises(ValueError):
        chunk_text("abc", size, overlap)
