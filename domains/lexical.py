"""A lexical risk scorer beside the embedding head: hashed word and character n-grams.

MiniLM sentence vectors average a long message into one point, so a warning sign buried in a
ramble ("...anyway I wrote letters to mum and my sister last night...") and cue words that carry
the risk ("burden", "goodbye", "give away") weigh little. A logistic regression over TF-IDF of
hashed word 1-2 grams and character 3-5 grams keeps them. The encoder head and this scorer are
averaged with a weight chosen by cross-validation at training time (``domains.train_classifiers``).

Hashing (scikit-learn's ``HashingVectorizer``) needs no vocabulary, so the whole model is three
arrays (idf, coefficients, intercept) stored in safetensors beside the head: no pickle.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

N_FEATURES = 2**17  # per analyzer; collisions cost little at this size (measured: cv recall unchanged at 2**18)


def _vectorizers() -> list[object]:
    from sklearn.feature_extraction.text import HashingVectorizer

    common = {"n_features": N_FEATURES, "alternate_sign": False, "norm": None, "lowercase": False}
    return [
        HashingVectorizer(analyzer="word", ngram_range=(1, 2), token_pattern=r"[\w']+", **common),
        HashingVectorizer(analyzer="char_wb", ngram_range=(3, 5), **common),
    ]


def hashed_counts(texts: list[str]):  # -> scipy.sparse.csr_matrix
    import scipy.sparse as sp

    return sp.hstack([v.transform(texts) for v in _vectorizers()]).tocsr()  # type: ignore[attr-defined]


@dataclass(frozen=True)
class LexicalScorer:
    """P(risk) from normalised text: sublinear TF-IDF, L2 norm, logistic regression."""

    idf: np.ndarray  # (2 * N_FEATURES,)
    coef: np.ndarray  # (2 * N_FEATURES,)
    intercept: float

    def risk(self, normalised_texts: list[str]) -> np.ndarray:
        from sklearn.preprocessing import normalize

        counts = hashed_counts(normalised_texts).astype(np.float64)
        counts.data = 1.0 + np.log(counts.data)  # sublinear tf
        tfidf = normalize(counts.multiply(self.idf).tocsr())
        logits = tfidf @ self.coef + self.intercept
        return 1.0 / (1.0 + np.exp(-np.asarray(logits).ravel()))

    @classmethod
    def fit(cls, normalised_texts: list[str], is_risky: np.ndarray, c: float = 4.0) -> LexicalScorer:
        from sklearn.feature_extraction.text import TfidfTransformer
        from sklearn.linear_model import LogisticRegression

        tfidf = TfidfTransformer(sublinear_tf=True)
        x = tfidf.fit_transform(hashed_counts(normalised_texts))
        lr = LogisticRegression(C=c, max_iter=3000, class_weight="balanced").fit(x, is_risky)
        return cls(tfidf.idf_.astype(np.float32), lr.coef_.ravel().astype(np.float32), float(lr.intercept_[0]))

    def tensors(self) -> dict[str, np.ndarray]:
        return {"idf": self.idf, "coef": self.coef, "intercept": np.array([self.intercept], dtype=np.float32)}

    @classmethod
    def from_tensors(cls, tensors: dict[str, np.ndarray]) -> LexicalScorer:
        expected = 2 * N_FEATURES
        for key in ("idf", "coef"):
            if tensors[key].shape != (expected,):
                raise ValueError(f"lexical {key} has shape {tensors[key].shape}, expected ({expected},)")
        return cls(tensors["idf"], tensors["coef"], float(tensors["intercept"][0]))
