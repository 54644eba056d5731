"""LSA: an offline dense baseline that needs no model download (TF-IDF over character
1-2-grams, truncated SVD to `dim` components, cosine). Fitted on the collection's own
chunks, so it is a benchmark baseline, not an embedder stored with a collection
(its space changes whenever the corpus does)."""

from __future__ import annotations

import numpy as np


class LSA:
    def __init__(self, texts: list[str], dim: int = 256, seed: int = 0):
        from sklearn.decomposition import TruncatedSVD
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.vectorizer = TfidfVectorizer(analyzer="char", ngram_range=(1, 2), sublinear_tf=True, min_df=1)
        tfidf = self.vectorizer.fit_transform(texts)
        self.svd = TruncatedSVD(n_components=max(1, min(dim, tfidf.shape[0] - 1, tfidf.shape[1] - 1)),
                                random_state=seed)
        self.docs = self._norm(self.svd.fit_transform(tfidf))

    @staticmethod
    def _norm(x: np.ndarray) -> np.ndarray:
        n = np.linalg.norm(x, axis=1, keepdims=True)
        return x / np.where(n > 0, n, 1.0)

    def top_many(self, queries: list[str], k: int) -> list[list[tuple[int, float]]]:
        """(document index, cosine) of the best `k` documents per query; one matrix product for all."""
        q = self._norm(self.svd.transform(self.vectorizer.transform(queries)))
        scores = q @ self.docs.T
        out = []
        for s in scores:
            idx = np.argsort(-s, kind="stable")[:k]
            out.append([(int(i), float(s[i])) for i in idx])
        return out
