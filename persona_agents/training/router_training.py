"""Train the router on situations labelled with trait activations.

Loss = cross-entropy to the activation distribution
     + contrastive term: each situation's projection is pulled toward the prototypes of its
       active experts and away from the rest (InfoNCE at a low temperature)
     + consistency term: situations with the same active poles embed close together
       (supervised contrastive over the batch)
     + optionally a cross-entropy term on the single top pole (``top_pole_weight``).
With ``encoder_lora`` the situation encoder gets a peft LoRA adapter trained in minibatches with
the head; otherwise the encoder stays frozen and its vectors are computed once.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from peft import get_peft_model_state_dict
from torch import nn
from tqdm.auto import tqdm

from persona_agents.encoder import TextEncoder, embed_texts
from persona_agents.messages import ChatTurn
from persona_agents.router import (
    EncoderAdapter,
    Router,
    RouterHead,
    RouterSettings,
    adapt_encoder,
    situation_vectors,
)
from persona_agents.training.config import EncoderLoraTraining, RouterTraining
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
    self_mask = torch.eye(n, dtype=torch.bool, device=z.device)
    sim = sim.masked_fill(self_mask, float("-inf"))
    positives = (groups.unsqueeze(0) == groups.unsqueeze(1)) & ~self_mask
    log_prob = sim.log_softmax(dim=1).masked_fill(~positives, 0.0)
    counts = positives.sum(1)
    has_positive = counts > 0
    if not has_positive.any():
        return z.sum() * 0.0
    return -(log_prob.sum(1)[has_positive] / counts[has_positive]).mean()


def router_losses(
    head: RouterHead, vectors: torch.Tensor, targets: torch.Tensor, groups: torch.Tensor, settings: RouterTraining
) -> dict[str, torch.Tensor]:
    """Every term of the router's loss on one batch, and their weighted sum under ``total``."""
    active = targets > 0
    hidden = head.hidden(vectors)
    z = nn.functional.normalize(hidden, dim=-1)
    logits = head.experts(hidden)
    cross_entropy = -(targets * logits.log_softmax(-1)).sum(-1).mean()
    prototypes = nn.functional.normalize(head.experts.weight, dim=-1)
    proto_logp = (z @ prototypes.t() / settings.contrastive_temperature).log_softmax(-1)
    contrastive = -((proto_logp * active).sum(-1) / active.sum(-1)).mean()
    consistency = supervised_contrastive(z, groups, settings.contrastive_temperature)
    top_pole = nn.functional.cross_entropy(logits, targets.argmax(-1))
    total = (
        cross_entropy
        + settings.contrastive_weight * contrastive
        + settings.consistency_weight * consistency
        + settings.top_pole_weight * top_pole
    )
    return {"total": total, "cross_entropy": cross_entropy, "contrastive": contrastive, "consistency": consistency, "top_pole": top_pole}


class TrainableEncoder:
    """A copy of a transformer encoder with a fresh peft LoRA adapter, embedding with grad."""

    def __init__(self, encoder: TextEncoder, settings: EncoderLoraTraining) -> None:
        from peft import LoraConfig, get_peft_model

        model, tokenizer = getattr(encoder, "model", None), getattr(encoder, "tokenizer", None)
        if model is None or tokenizer is None:
            raise TypeError(f"training an encoder adapter needs a transformer encoder (MiniLMEncoder), got {type(encoder).__name__}")
        config = LoraConfig(
            r=settings.r, lora_alpha=settings.alpha, lora_dropout=settings.dropout, target_modules=list(settings.target_modules)
        )
        self.model = get_peft_model(copy.deepcopy(model), config)
        self.tokenizer = tokenizer
        self.max_length = int(getattr(encoder, "max_length", 256))

    def embed(self, texts: list[str]) -> torch.Tensor:
        return embed_texts(self.model, self.tokenizer, texts, self.max_length).float().cpu()

    def parameters(self) -> list[nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]

    def adapter(self, encoder_name: str) -> EncoderAdapter:
        """The trained adapter, as peft's own ``save_pretrained`` writes it."""
        config = copy.deepcopy(self.model.peft_config["default"])
        config.base_model_name_or_path = encoder_name  # peft would record the local folder the encoder came from
        config.inference_mode = True  # as save_pretrained marks it
        weights = {k: v.detach().clone() for k, v in get_peft_model_state_dict(self.model).items()}
        return EncoderAdapter(config, weights)


@dataclass
class RouterTrainingResult:
    head: RouterHead
    history: dict[str, list[float]]
    encoder_adapter: EncoderAdapter | None = None

    def router(self, encoder: TextEncoder) -> Router:
        return Router(adapt_encoder(encoder, self.encoder_adapter), self.head)


def activation_groups(targets: torch.Tensor) -> torch.Tensor:
    """Group id per situation = its set of active poles (identical sets are consistency positives)."""
    keys = [tuple(row.tolist()) for row in targets > 0]
    index = {key: i for i, key in enumerate(sorted(set(keys)))}
    return torch.tensor([index[key] for key in keys])


def train_router(
    encoder: TextEncoder, situations: list[Situation], settings: RouterTraining, seed: int, base: RouterSettings | None = None
) -> RouterTrainingResult:
    router_settings = (base or RouterSettings()).model_copy(
        update={
            "hidden_dim": settings.hidden_dim,
            "dropout": settings.dropout,
            "embedding_dim": encoder.dim,
            "encoder_adapter": settings.encoder_lora is not None,
            "trained": True,
        }
    )
    torch.manual_seed(seed)
    head = RouterHead(router_settings)
    nn.init.normal_(head.experts.weight, std=0.02)
    conversations = [situation_turns(s) for s in situations]
    targets = activation_matrix(situations)
    groups = activation_groups(targets)
    param_groups: list[dict[str, object]] = [{"params": list(head.parameters()), "lr": settings.learning_rate}]
    trainable: TrainableEncoder | None = None
    if settings.encoder_lora is None:
        frozen = situation_vectors(encoder.encode, conversations, router_settings).detach()

        def vectors_for(indices: Sequence[int]) -> torch.Tensor:
            return frozen[list(indices)]
    else:
        trainable = TrainableEncoder(encoder, settings.encoder_lora)
        param_groups.append({"params": trainable.parameters(), "lr": settings.encoder_lora.learning_rate})
        embed: Callable[[list[str]], torch.Tensor] = trainable.embed

        def vectors_for(indices: Sequence[int]) -> torch.Tensor:
            return situation_vectors(embed, [conversations[i] for i in indices], router_settings)

    optimizer = torch.optim.AdamW(param_groups, weight_decay=settings.weight_decay)
    trained_modules = nn.ModuleDict({"head": head, **({"encoder": trainable.model} if trainable is not None else {})})
    average = None
    if settings.ema_decay is not None:
        # the minibatch path is noisy from epoch to epoch; an average of the weights is steadier
        average = torch.optim.swa_utils.AveragedModel(
            trained_modules, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(settings.ema_decay)
        )
    batch_size = settings.batch_size or len(situations)
    shuffle = random.Random(seed)
    history: dict[str, list[float]] = {"total": [], "cross_entropy": [], "contrastive": [], "consistency": [], "top_pole": []}
    head.train()
    if trainable is not None:
        trainable.model.train()
    for _ in tqdm(range(settings.epochs), desc="router", unit="epoch"):
        order = list(range(len(situations)))
        if batch_size < len(order):
            shuffle.shuffle(order)
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            losses = router_losses(head, vectors_for(batch), targets[batch], groups[batch], settings)
            optimizer.zero_grad()
            losses["total"].backward()
            optimizer.step()
            if average is not None:
                average.update_parameters(trained_modules)
            for key, value in losses.items():
                history[key].append(value.item())
    if average is not None:
        with torch.no_grad():
            for mine, averaged in zip(trained_modules.parameters(), average.module.parameters()):
                mine.copy_(averaged)
    adapter = None
    if trainable is not None:
        adapter = trainable.adapter(router_settings.encoder)
    return RouterTrainingResult(head=head.eval(), history=history, encoder_adapter=adapter)


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
