"""`evalctl run TASK --rag COLLECTION`: retrieve for every sample before the run, then
the runner sends the augmented prompt and records the retrieved chunk ids per sample."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tqdm.auto import tqdm

from .prompting import augment_prompt
from .retrieve import Retriever

QUERY_FIELDS = ("query", "question", "fact", "problem")  # a sample's own question text, when it keeps one


@dataclass
class RagSpec:
    collection: str
    k: int = 3
    mode: str | None = None
    max_chars: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"collection": self.collection, "k": self.k, "mode": self.mode, "max_chars": self.max_chars}


def query_text(sample: dict) -> str:
    """What to search with: a question field when the sample has one, else the prompt's last user message."""
    for key in QUERY_FIELDS:
        if isinstance(sample.get(key), str) and sample[key].strip():
            return sample[key]
    prompt = sample.get("prompt")
    if isinstance(prompt, str):
        return prompt
    users = [str(m.get("content") or "") for m in prompt or [] if m.get("role") == "user"]
    return users[-1] if users else ""


def retrieve_contexts(retriever: Retriever, spec: RagSpec, samples: list[dict],
                      progress: bool = True) -> dict[str, dict]:
    """{sample id: {"prompt": augmented prompt, "record": what results.jsonl keeps}}."""
    mode = spec.mode or retriever.default_mode()
    out: dict[str, dict] = {}
    bar = tqdm(total=len(samples), desc=f"retrieving from {spec.collection}", unit="sample", disable=not progress)
    step = 64
    try:
        for i in range(0, len(samples), step):
            part = samples[i:i + step]
            for sample, hits in zip(part, retriever.search_many([query_text(s) for s in part], spec.k, mode)):
                out[str(sample["id"])] = {
                    "prompt": augment_prompt(sample["prompt"], hits, spec.max_chars),
                    "record": {"collection": spec.collection, "mode": mode, "ids": [h.id for h in hits],
                               "doc_ids": [h.doc_id for h in hits], "scores": [round(h.score, 6) for h in hits]},
                }
            bar.update(len(part))
    finally:
        bar.close()
    return out
