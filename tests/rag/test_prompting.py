"""Context rendering, citations and prompt augmentation: pure tests."""

from rag.augment import query_text
from rag.prompting import ask_messages, augment_prompt, cited_ids, context_block
from rag.retrieve import Hit

HITS = [Hit("law.txt#0", "law.txt", "Theft is punished.", 2.0), Hit("264-0-0#0", "264-0-0", "【盗窃罪】盗窃", 1.0)]


def test_context_block_and_cut():
    assert context_block(HITS) == "[law.txt#0] Theft is punished.\n[264-0-0#0] 【盗窃罪】盗窃"
    assert context_block(HITS, max_chars=5).splitlines()[0] == "[law.txt#0] Theft…"


def test_ask_messages_have_the_question_and_passages():
    system, user = ask_messages("What is theft?", HITS)
    assert system["role"] == "system" and "square brackets" in system["content"]
    assert "[264-0-0#0]" in user["content"] and user["content"].endswith("Question: What is theft?")


def test_cited_ids_only_counts_shown_chunks():
    answer = "Theft is punished [law.txt#0]. See also [264-0-0#0, law.txt#0] and [other#1] [1]."
    assert cited_ids(answer, HITS) == ["law.txt#0", "264-0-0#0"]
    assert cited_ids("", HITS) == []


def test_augment_chat_prompt_puts_context_in_the_last_user_message():
    prompt = [{"role": "system", "content": "S"}, {"role": "user", "content": "Q1"},
              {"role": "assistant", "content": "A"}, {"role": "user", "content": "Q2"}]
    out = augment_prompt(prompt, HITS)
    assert out[0] == prompt[0] and out[1] == prompt[1]
    assert out[3]["content"].startswith("Context (retrieved passages):\n[law.txt#0]")
    assert out[3]["content"].endswith("Q2")
    assert prompt[3]["content"] == "Q2"  # the sample itself is not modified


def test_augment_text_prompt():
    assert augment_prompt("Question: 2+2?", HITS[:1]) == \
        "Context (retrieved passages):\n[law.txt#0] Theft is punished.\n\nQuestion: 2+2?"


def test_query_text_prefers_a_question_field():
    assert query_text({"question": "q?", "prompt": "long prompt"}) == "q?"
    assert query_text({"prompt": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]}) == "u"
    assert query_text({"prompt": "plain"}) == "plain"
