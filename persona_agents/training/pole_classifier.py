"""A pole classifier: for each trait, is a text written in the high or the low pole's voice?

Logistic regression per trait over MiniLM sentence embeddings, trained on the corpus's
pole-expressing responses. Because the corpus answers each situation in both poles, the
classifier learns the voice, not the topic. Used to measure how strongly experts show.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from persona_agents.encoder import TextEncoder
from persona_agents.training.corpus import PoleResponse
from persona_agents.traits import TRAITS


@dataclass
class PoleClassifier:
    encoder: TextEncoder
    heads: dict[str, nn.Linear]  # trait -> Linear(dim, 1): logit of "high"

    @classmethod
    def fit(
        cls, encoder: TextEncoder, responses: Sequence[PoleResponse], *, epochs: int = 300, weight_decay: float = 1e-3, seed: int = 0
    ) -> PoleClassifier:
        heads = {}
        for trait in TRAITS:
            rows = [r for r in responses if r.trait == trait]
            if not rows or len({r.pole for r in rows}) < 2:
                raise ValueError(f"the pole classifier needs high and low examples of {trait}")
            x = encoder.encode([r.response for r in rows])
            y = torch.tensor([1.0 if r.pole == "high" else 0.0 for r in rows])
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

    def accuracy(self, responses: Sequence[PoleResponse]) -> dict[str, float]:
        """Held-out accuracy per trait on labelled responses."""
        out = {}
        for trait in TRAITS:
            rows = [r for r in responses if r.trait == trait]
            if rows:
                probs = self.prob_high(trait, [r.response for r in rows])
                out[trait] = sum((p > 0.5) == (r.pole == "high") for p, r in zip(probs, rows)) / len(rows)
        return out


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
