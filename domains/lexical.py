"""A lexical risk scorer beside the embedding head: hashed word and character n-grams.

MiniLM sentence vectors average a long message into one point, so a warning sign buried in a
ramble ("...anyway I wrote letters to mum and my sister last night...") and cue words that carry
the risk ("burden", "goodbye", "give away") weigh little. A logistic regression over TF-IDF of
hashed word 1-2 grams and character 3-5 grams keeps them. The encoder head and this scorer are
averaged with a weight chosen by cross-validation at training time (``domains.train_classifiers``).

Hashing (scikit-learn's ``HashingVectorizer``) needs no vocabulary, so the whole model is three
arrays (idf, coefficients, intercept) stored in safetensors beside the head: no pickle.

The word n-grams read words after a negation as different words ("never hurt myself" ->
"never neg_hurt neg_myself"), so "hurt myself" learned from warning signs does not carry over to
"I would never hurt myself" unchanged. Measured on the counseling screen's training rows: the same
out-of-fold recall (0.898 vs 0.897 at the pack's false-rate budget), lower scores for negated
statements (e.g. "no thoughts of ending it" 0.67 -> 0.52).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

N_FEATURES = 2**17  # per analyzer; collisions cost little at this size (measured: cv recall unchanged at 2**18)
NEGATION_SCOPE = 3  # words after a negation cue that it governs, unless a clause ends first

_TOKEN = re.compile(r"[\w']+|[.!?;:,]")
_NEGATION = re.compile(r"(?:not|no|never|nor|none|nobody|nothing|without|cannot|\w+n't)")
_SCOPE_END = re.compile(r"[.!?;:,]|but|and|so|because|though")


def mark_negation(text: str) -> str:
    """The words a negation governs get a ``neg_`` prefix; punctuation and "but" end the scope."""
    out: list[str] = []
    left = 0
    for token in _TOKEN.findall(text):
        if _SCOPE_END.fullmatch(token):
            left = 0
            out.append(token)
        elif _NEGATION.fullmatch(token):
            left = NEGATION_SCOPE
            out.append(token)
        else:
            out.append(f"neg_{token}" if left else token)
            left = max(0, left - 1)
    return " ".join(out)


def _vectorizers() -> list[object]:
    from sklearn.feature_extraction.text import HashingVectorizer

    common = {"n_features": N_FEATURES, "alternate_sign": False, "norm": None, "lowercase": False}
    return [
        HashingVectorizer(analyzer="word", ngram_range=(1, 2), token_pattern=r"[\w']+", **common),
        HashingVectorizer(analyzer="char_wb", ngram_range=(3, 5), **common),
    ]


def hashed_counts(texts: list[str]):  # -> scipy.sparse.csr_matrix
    """Word 1-2 grams of the negation-marked text and character 3-5 grams of the text itself."""
    import scipy.sparse as sp

    words, chars = _vectorizers()
    return sp.hstack(
        [words.transform([mark_negation(t) for t in texts]), chars.transform(texts)]  # type: ignore[attr-defined]
    ).tocsr()


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
