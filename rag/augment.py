"""`evalctl run TASK --rag COLLECTION`: retrieve for every sample before the run, then
the runner sends the augmented prompt and records the retrieved chunk ids per sample."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tqdm.auto import tqdm

from .prompting import augment_prompt
from .rerank import Reranker
from .retrieve import Retriever

QUERY_FIELDS = ("query", "question", "fact", "problem")  # a sample's own question text, when it keeps one


@dataclass
class RagSpec:
    collection: str
    k: int = 3
    mode: str | None = None
    max_chars: int | None = None
    rerank: str | None = None  # endpoint:MODEL

    def as_dict(self) -> dict[str, Any]:
        # rerank only when set: run dirs written before it existed still resume
        out = {"collection": self.collection, "k": self.k, "mode": self.mode, "max_chars": self.max_chars}
        return {**out, "rerank": self.rerank} if self.rerank else out


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


def retrieve_contexts(retriever: Retriever, spec: RagSpec, samples: list[dict], progress: bool = True,
                      reranker: Reranker | None = None) -> dict[str, dict]:
    """{sample id: {"prompt": augmented prompt, "record": what results.jsonl keeps}}."""
    mode = spec.mode or retriever.default_mode()
    out: dict[str, dict] = {}
    bar = tqdm(total=len(samples), desc=f"retrieving from {spec.collection}", unit="sample", disable=not progress)
    step = 64
    try:
        for i in range(0, len(samples), step):
            part = samples[i:i + step]
            queries = [query_text(s) for s in part]
            found = (reranker.search_many(retriever, queries, spec.k, mode) if reranker
                     else retriever.search_many(queries, spec.k, mode))
            for sample, hits in zip(part, found):
                record = {"collection": spec.collection, "mode": mode, "ids": [h.id for h in hits],
                          "doc_ids": [h.doc_id for h in hits], "scores": [round(h.score, 6) for h in hits]}
                out[str(sample["id"])] = {"prompt": augment_prompt(sample["prompt"], hits, spec.max_chars),
                                          "record": {**record, "rerank": spec.rerank} if spec.rerank else record}
            bar.update(len(part))
    finally:
        bar.close()
    return out
