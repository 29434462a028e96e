"""Pole classifiers: for each trait, is a text written in the high or the low pole's voice?

Both are trained on the corpus's pole-expressing responses. Because the corpus answers each
situation in both poles, they learn the voice, not the topic. They measure how strongly the
experts show.

- :class:`LexicalPoleClassifier` (the primary instrument): TF-IDF over word 1-2 grams with
  logistic regression per trait (scikit-learn). Voice lives in phrasing ("just in case",
  "I hope", "no rush"), which sentence embeddings mostly average away: on the corpus's held-out
  responses it scores 0.975-1.00 per trait where the embedding classifier scores 0.775-0.975
  (the shipped bundle's ``report/training_report.json``).
- :class:`EmbeddingPoleClassifier` (a second opinion): logistic regression over MiniLM
  sentence embeddings.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from persona_agents.encoder import TextEncoder
from persona_agents.training.corpus import PoleResponse
from persona_agents.traits import TRAITS


def _rows_by_trait(responses: Sequence[PoleResponse]) -> dict[str, tuple[list[str], list[int]]]:
    by_trait = {}
    for trait in TRAITS:
        rows = [r for r in responses if r.trait == trait]
        if not rows or len({r.pole for r in rows}) < 2:
            raise ValueError(f"the pole classifier needs high and low examples of {trait}")
        by_trait[trait] = ([r.response for r in rows], [1 if r.pole == "high" else 0 for r in rows])
    return by_trait


class PoleClassifier(ABC):
    name = "pole classifier"

    @abstractmethod
    def prob_high(self, trait: str, texts: Sequence[str]) -> list[float]:
        """The probability that each text is written in the trait's high pole."""

    def accuracy(self, responses: Sequence[PoleResponse]) -> dict[str, float]:
        """Held-out accuracy per trait on labelled responses."""
        out = {}
        for trait in TRAITS:
            rows = [r for r in responses if r.trait == trait]
            if rows:
                probs = self.prob_high(trait, [r.response for r in rows])
                out[trait] = sum((p > 0.5) == (r.pole == "high") for p, r in zip(probs, rows)) / len(rows)
        return out


class LexicalPoleClassifier(PoleClassifier):
    name = "tf-idf word 1-2 grams + logistic regression"

    def __init__(self, pipelines: dict[str, Any]) -> None:
        self.pipelines = pipelines  # trait -> fitted sklearn Pipeline

    @classmethod
    def fit(cls, responses: Sequence[PoleResponse], *, c: float = 1.0) -> LexicalPoleClassifier:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline

        pipelines = {}
        for trait, (texts, labels) in _rows_by_trait(responses).items():
            pipeline = make_pipeline(
                TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True), LogisticRegression(C=c, max_iter=2000)
            )
            pipelines[trait] = pipeline.fit(texts, labels)
        return cls(pipelines)

    def prob_high(self, trait: str, texts: Sequence[str]) -> list[float]:
        if not texts:
            return []
        return self.pipelines[trait].predict_proba(list(texts))[:, 1].tolist()


class EmbeddingPoleClassifier(PoleClassifier):
    name = "MiniLM embedding + logistic regression"

    def __init__(self, encoder: TextEncoder, heads: dict[str, nn.Linear]) -> None:
        self.encoder = encoder
        self.heads = heads  # trait -> Linear(dim, 1): logit of "high"

    @classmethod
    def fit(
        cls, encoder: TextEncoder, responses: Sequence[PoleResponse], *, epochs: int = 300, weight_decay: float = 1e-3, seed: int = 0
    ) -> EmbeddingPoleClassifier:
        heads = {}
        for trait, (texts, labels) in _rows_by_trait(responses).items():
            x = encoder.encode(texts)
            y = torch.tensor(labels, dtype=torch.float32)
            torch.manual_seed(seed)
            head = nn.Linear(x.shape[1], 1)
            optimizer = torch.optim.Adam(head.parameters(), lr=0.02, weight_decay=weight_decay)
            for _ in range(epochs):
                loss = nn.functional.binary_cross_entropy_with_logits(head(x * 10).squeeze(-1), y)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            heads[trait] = head.eval()
        return cls(encoder, heads)

    @torch.inference_mode()
    def prob_high(self, trait: str, texts: Sequence[str]) -> list[float]:
        if not texts:
            return []
        x = self.encoder.encode(list(texts))
        return torch.sigmoid(self.heads[trait](x * 10).squeeze(-1)).tolist()


def share_as_pole(probs_high: Sequence[float], pole: str) -> float:
    """Share of texts the classifier assigns to ``pole``."""
    if not probs_high:
        return 0.0
    hits = sum((p > 0.5) if pole == "high" else (p <= 0.5) for p in probs_high)
    return hits / len(probs_high)


def pairwise_separation(high_probs: Sequence[float], low_probs: Sequence[float]) -> float:
    """Share of prompts whose high-expert reply scores more 'high' than its low-expert reply."""
    if len(high_probs) != len(low_probs):
        raise ValueError("pairwise separation needs one high and one low reply per prompt")
    if not high_probs:
        return 0.0
    wins = sum(1.0 if hi > lo else 0.5 if hi == lo else 0.0 for hi, lo in zip(high_probs, low_probs))
    return wins / len(high_probs)
