"""Train the routing head on situations labelled with trait activations.

Loss = cross-entropy to the activation distribution
     + contrastive term: each situation's projection is pulled toward the prototypes of its
       active experts and away from the rest (InfoNCE at a low temperature)
     + consistency term: situations with the same active poles embed close together
       (supervised contrastive over the batch).
The situation encoder stays frozen; its vectors are computed once.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from tqdm.auto import tqdm

from persona_agents.encoder import TextEncoder
from persona_agents.messages import ChatTurn
from persona_agents.router import Router, RouterHead, RouterSettings
from persona_agents.training.config import RouterTraining
from persona_agents.training.corpus import Situation
from persona_agents.traits import EXPERT_NAMES, TRAITS


def situation_turns(situation: Situation) -> list[ChatTurn]:
    return [ChatTurn("user", text) for text in situation.context] + [ChatTurn("user", situation.text)]


def activation_matrix(situations: list[Situation]) -> torch.Tensor:
    return torch.tensor([[s.activation.get(name, 0.0) for name in EXPERT_NAMES] for s in situations])


def supervised_contrastive(z: torch.Tensor, groups: torch.Tensor, temperature: float) -> torch.Tensor:
    """Mean over anchors of -log p(positive) where positives share the anchor's group."""
    n = z.shape[0]
    sim = z @ z.t() / temperature
    self_mask = torch.eye(n, dtype=torch.bool)
    sim = sim.masked_fill(self_mask, float("-inf"))
    positives = (groups.unsqueeze(0) == groups.unsqueeze(1)) & ~self_mask
    log_prob = sim.log_softmax(dim=1).masked_fill(~positives, 0.0)
    counts = positives.sum(1)
    has_positive = counts > 0
    if not has_positive.any():
        return z.sum() * 0.0
    return -(log_prob.sum(1)[has_positive] / counts[has_positive]).mean()


@dataclass
class RouterTrainingResult:
    head: RouterHead
    history: dict[str, list[float]]


def train_router(
    encoder: TextEncoder, situations: list[Situation], settings: RouterTraining, seed: int, base: RouterSettings | None = None
) -> RouterTrainingResult:
    router_settings = (base or RouterSettings()).model_copy(
        update={"hidden_dim": settings.hidden_dim, "dropout": settings.dropout, "embedding_dim": encoder.dim, "trained": True}
    )
    torch.manual_seed(seed)
    head = RouterHead(router_settings)
    nn.init.normal_(head.experts.weight, std=0.02)
    vectors = Router(encoder, head).situation_vectors([situation_turns(s) for s in situations]).detach()
    targets = activation_matrix(situations)
    active = targets > 0
    # group id = the set of active poles, so identical activations are positives for consistency
    group_keys = {key: i for i, key in enumerate(sorted({tuple(row.tolist()) for row in active}))}
    groups = torch.tensor([group_keys[tuple(row.tolist())] for row in active])
    optimizer = torch.optim.AdamW(head.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay)
    history: dict[str, list[float]] = {"total": [], "cross_entropy": [], "contrastive": [], "consistency": []}
    head.train()
    for _ in tqdm(range(settings.epochs), desc="router", unit="epoch"):
        hidden = head.hidden(vectors)
        z = nn.functional.normalize(hidden, dim=-1)
        logits = head.experts(hidden)
        cross_entropy = -(targets * logits.log_softmax(-1)).sum(-1).mean()
        prototypes = nn.functional.normalize(head.experts.weight, dim=-1)
        proto_logp = (z @ prototypes.t() / settings.contrastive_temperature).log_softmax(-1)
        contrastive = -((proto_logp * active).sum(-1) / active.sum(-1)).mean()
        consistency = supervised_contrastive(z, groups, settings.contrastive_temperature)
        loss = cross_entropy + settings.contrastive_weight * contrastive + settings.consistency_weight * consistency
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        for key, value in (("total", loss), ("cross_entropy", cross_entropy), ("contrastive", contrastive), ("consistency", consistency)):
            history[key].append(value.item())
    return RouterTrainingResult(head=head.eval(), history=history)


@torch.inference_mode()
def evaluate_router(router: Router, situations: list[Situation]) -> dict[str, object]:
    """Top-pole agreement and per-trait sign agreement of ``high - low`` on labelled situations."""
    results = router.route_many([situation_turns(s) for s in situations])
    top_hits = 0
    per_trait = {t: [0, 0] for t in TRAITS}
    misses = []
    for situation, result in zip(situations, results):
        predicted_top = result.weights.top_traits(1)[0]
        top_ok = predicted_top == situation.top_pole
        top_hits += top_ok
        scores = result.weights.trait_scores()
        wrong = []
        for trait, pole in situation.expected_traits.items():
            ok = (scores[trait] > 0) == (pole == "high") and scores[trait] != 0
            per_trait[trait][0] += ok
            per_trait[trait][1] += 1
            if not ok:
                wrong.append(trait)
        if wrong or not top_ok:
            misses.append({"id": situation.id, "text": situation.text, "expected_top": situation.top_pole, "predicted_top": predicted_top, "wrong_traits": wrong})
    pairs = sum(n for _, n in per_trait.values())
    return {
        "n": len(situations),
        "top_pole_agreement": top_hits / len(situations) if situations else 0.0,
        "sign_agreement": sum(h for h, _ in per_trait.values()) / pairs if pairs else 0.0,
        "per_trait_sign_agreement": {t: (h / n if n else None) for t, (h, n) in per_trait.items()},
        "per_trait_n": {t: n for t, (_, n) in per_trait.items()},
        "misses": misses,
    }
