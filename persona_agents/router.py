"""The router: a situation encoder plus a small head giving a distribution over the experts.

The head is a small MLP with dropout over the situation vector: the MiniLM embedding of the
latest user turn mixed with the mean of earlier user turns (``context_weight``). A bundle may also
carry a LoRA adapter for the encoder, trained with the head (``encoder_adapter``): on the
project's corpus a frozen encoder tops out at 0.66-0.75 held-out top-pole agreement, because
its sentence vectors barely separate, say, sadness from worry; adapting the encoder lifts that
(see docs/ARCHITECTURE.md).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field
from safetensors.torch import save_file
from torch import nn

from persona_agents.encoder import TextEncoder
from persona_agents.messages import ChatTurn
from persona_agents.mixer import AdapterFormatError, read_lora_adapter
from persona_agents.traits import EXPERT_NAMES, NUM_EXPERTS, PersonaWeights


class RouterSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    encoder: str = "sentence-transformers/all-MiniLM-L6-v2"
    embedding_dim: int = Field(384, ge=1)
    hidden_dim: int = Field(256, ge=1)
    dropout: float = Field(0.5, ge=0.0, lt=1.0)
    input_scale: float = Field(5.0, gt=0.0, description="unit-length embeddings are scaled before the head")
    context_turns: int = Field(2, ge=0, le=16, description="earlier user turns mixed into the situation")
    context_weight: float = Field(0.35, ge=0.0, le=1.0)
    encoder_adapter: bool = Field(False, description="the bundle carries a LoRA adapter for the encoder (router_encoder/)")
    trained: bool = False


class RouterHead(nn.Module):
    """Situation embedding -> hidden representation -> one logit per expert.

    The rows of ``experts.weight`` are the experts' embeddings in the hidden space; the
    contrastive training term pulls a situation's hidden vector toward its active experts'
    rows. A zero-initialised ``experts`` layer (an untrained router) gives the uniform
    distribution.
    """

    def __init__(self, settings: RouterSettings) -> None:
        super().__init__()
        self.settings = settings
        self.project = nn.Sequential(
            nn.Dropout(settings.dropout),
            nn.Linear(settings.embedding_dim, settings.hidden_dim),
            nn.GELU(),
            nn.Dropout(settings.dropout),
        )
        self.experts = nn.Linear(settings.hidden_dim, NUM_EXPERTS)
        nn.init.zeros_(self.experts.weight)
        nn.init.zeros_(self.experts.bias)

    def hidden(self, situations: torch.Tensor) -> torch.Tensor:
        return self.project(situations * self.settings.input_scale)

    def embed(self, situations: torch.Tensor) -> torch.Tensor:
        """Unit-length hidden situation vectors, (n, hidden)."""
        return nn.functional.normalize(self.hidden(situations), dim=-1)

    def logits(self, situations: torch.Tensor) -> torch.Tensor:
        return self.experts(self.hidden(situations))

    def forward(self, situations: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.logits(situations), dim=-1)


@dataclass(frozen=True)
class EncoderAdapter:
    """A peft LoRA adapter for the situation encoder, read and written in peft's format
    (``adapter_config.json`` + ``adapter_model.safetensors``), so peft loads the folder too."""

    config: Any  # peft.LoraConfig
    weights: dict[str, torch.Tensor]

    @classmethod
    def read(cls, directory: Path) -> EncoderAdapter:
        config, weights = read_lora_adapter(directory)
        if not isinstance(config.r, int) or isinstance(config.r, bool) or config.r < 1 or not config.target_modules:
            raise AdapterFormatError(f"{directory}: a LoRA adapter needs a positive integer r and target_modules")
        if not weights or not all(".lora_A." in k or ".lora_B." in k for k in weights):
            raise AdapterFormatError(f"the encoder adapter weights in {directory} hold no LoRA tensors")
        return cls(config, weights)

    def write(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.config.save_pretrained(str(directory))
        tensors = {k: v.detach().contiguous().cpu() for k, v in self.weights.items()}
        save_file(tensors, str(directory / "adapter_model.safetensors"), metadata={"format": "pt"})


def adapt_encoder(encoder: TextEncoder, adapter: EncoderAdapter | None) -> TextEncoder:
    """The encoder the router reads situations with: ``encoder`` itself or a LoRA-adapted copy."""
    if adapter is None:
        return encoder
    with_lora = getattr(encoder, "with_lora", None)
    if with_lora is None:
        raise TypeError(
            f"this router carries an encoder adapter, which needs a transformer encoder "
            f"(MiniLMEncoder); got {type(encoder).__name__}"
        )
    return with_lora(adapter.config, adapter.weights)


@dataclass(frozen=True)
class RouteResult:
    weights: PersonaWeights
    top_traits: list[str]

    @property
    def trait_scores(self) -> dict[str, float]:
        return self.weights.trait_scores()

    def as_dict(self) -> dict[str, object]:
        return {
            "persona_weights": self.weights.as_dict(),
            "top_traits": self.top_traits,
            "trait_scores": self.trait_scores,
        }


def situation_texts(turns: Sequence[ChatTurn], context_turns: int) -> tuple[str, list[str]]:
    """The latest user turn and up to ``context_turns`` earlier user turns (newest first)."""
    user_turns = [t.content for t in turns if t.role == "user"]
    if not user_turns:
        raise ValueError("routing needs at least one user message")
    return user_turns[-1], user_turns[-1 - context_turns : -1][::-1] if context_turns else []


def situation_vectors(
    encode: Callable[[list[str]], torch.Tensor], conversations: Sequence[Sequence[ChatTurn]], settings: RouterSettings
) -> torch.Tensor:
    """Each conversation's situation: the latest user turn mixed with the mean of the earlier ones.

    ``encode`` maps texts to unit vectors; training passes a differentiable one.
    """
    latest, contexts = zip(*(situation_texts(c, settings.context_turns) for c in conversations))
    flat_context = [text for ctx in contexts for text in ctx]
    vectors = encode(list(latest) + flat_context)
    latest_vecs, context_vecs = vectors[: len(latest)], vectors[len(latest) :]
    out, offset = [], 0
    for vec, ctx in zip(latest_vecs, contexts):
        if ctx:
            mean_ctx = context_vecs[offset : offset + len(ctx)].mean(0)
            vec = (1 - settings.context_weight) * vec + settings.context_weight * mean_ctx
            offset += len(ctx)
        out.append(nn.functional.normalize(vec, dim=-1))
    return torch.stack(out)


class Router:
    """Maps a conversation to persona weights. Deterministic for the same input."""

    def __init__(self, encoder: TextEncoder, head: RouterHead) -> None:
        if encoder.dim != head.settings.embedding_dim:
            raise ValueError(
                f"the encoder gives {encoder.dim}-d vectors but the router head expects "
                f"{head.settings.embedding_dim}-d"
            )
        self.encoder = encoder
        self.head = head.eval()
        self.settings = head.settings

    def situation_vectors(self, conversations: Sequence[Sequence[ChatTurn]]) -> torch.Tensor:
        return situation_vectors(self.encoder.encode, conversations, self.settings)

    @torch.inference_mode()
    def route_many(self, conversations: Sequence[Sequence[ChatTurn]], top_k: int = 2) -> list[RouteResult]:
        probs = self.head(self.situation_vectors(conversations)).double()
        results = []
        for row in probs:
            weights = PersonaWeights.normalized(row.tolist())
            results.append(RouteResult(weights=weights, top_traits=weights.top_traits(top_k)))
        return results

    def route(self, turns: Sequence[ChatTurn], top_k: int = 2) -> RouteResult:
        return self.route_many([turns], top_k=top_k)[0]


__all__ = [
    "EXPERT_NAMES",
    "EncoderAdapter",
    "RouteResult",
    "Router",
    "RouterHead",
    "RouterSettings",
    "adapt_encoder",
    "situation_texts",
    "situation_vectors",
]
