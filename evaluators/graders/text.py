"""string_check and text_similarity, computed offline with maintained libraries.

string_check: eq / ne compare exactly; like is "reference occurs in input", ilike the same
ignoring case (OpenAI's semantics: no SQL wildcards). 1.0 or 0.0.
text_similarity: fuzzy_match = rapidfuzz's WRatio / 100; bleu = sacrebleu's sentence BLEU / 100;
gleu = NLTK's sentence GLEU; meteor = NLTK's METEOR (needs NLTK's wordnet data); rouge_1..5 and
rouge_l = Google's rouge-score F-measure; cosine = cosine similarity of the two texts' embeddings
from an embedding model served by this gateway. All in [0, 1].
"""

from __future__ import annotations

import math
from functools import lru_cache


def string_check(operation: str, text: str, reference: str) -> float:
    if operation == "eq":
        return float(text == reference)
    if operation == "ne":
        return float(text != reference)
    if operation == "like":
        return float(reference in text)
    if operation == "ilike":
        return float(reference.casefold() in text.casefold())
    raise ValueError(f"unknown string_check operation {operation!r}")


@lru_cache(maxsize=8)
def _rouge(kind: str):
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer([kind], use_stemmer=False)


def missing_metric_support(metric: str) -> str | None:
    """Why this server cannot compute `metric` (None: it can)."""
    modules = {"fuzzy_match": "rapidfuzz", "bleu": "sacrebleu", "gleu": "nltk", "meteor": "nltk"}
    if metric.startswith("rouge_"):
        modules[metric] = "rouge_score"
    mod = modules.get(metric)
    if mod is not None:
        try:
            __import__(mod)
        except ImportError:
            return f"evaluation_metric {metric} needs the Python package {mod!r}, not installed on this server"
    if metric == "meteor":
        try:
            from nltk.corpus import wordnet

            wordnet.ensure_loaded()
        except LookupError:
            return "evaluation_metric meteor needs NLTK's wordnet data, not installed on this server " \
                   "(python -m nltk.downloader wordnet)"
    return None


def similarity(metric: str, text: str, reference: str) -> float:
    """Every metric but cosine (which needs embeddings: see `cosine`)."""
    if metric == "fuzzy_match":
        from rapidfuzz import fuzz

        return fuzz.WRatio(text, reference) / 100.0
    if metric == "bleu":
        import sacrebleu

        return sacrebleu.sentence_bleu(text, [reference]).score / 100.0
    if metric == "gleu":
        from nltk.translate.gleu_score import sentence_gleu

        return float(sentence_gleu([reference.split()], text.split()))
    if metric == "meteor":
        from nltk.translate.meteor_score import meteor_score

        return float(meteor_score([reference.split()], text.split()))
    if metric.startswith("rouge_"):
        kind = "rougeL" if metric == "rouge_l" else f"rouge{metric[-1]}"
        return float(_rouge(kind).score(reference, text)[kind].fmeasure)
    raise ValueError(f"unknown evaluation_metric {metric!r}")


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return max(0.0, min(1.0, dot / norm)) if norm else 0.0
