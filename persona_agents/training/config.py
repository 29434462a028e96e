"""Training settings, read from a JSON config file (see configs/default.json).

A config file may start from another one with ``"extends": "default.json"`` (a path relative
to the file) and set only what differs, as nanoGPT's config files do: objects are merged key
by key, everything else (numbers, strings, lists) replaces the inherited value.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from persona_agents.bundle import LoraSettings
from persona_agents.config import DEFAULT_SYSTEM_PROMPT, EngineConfig, check_device
from persona_agents.traits import split_expert_name

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
DEFAULT_CONFIG = CONFIG_DIR / "default.json"
EXTENDS_KEY = "extends"


class ExpertTraining(BaseModel):
    model_config = ConfigDict(extra="forbid")

    epochs: int = Field(5, ge=1, le=100)
    batch_size: int = Field(8, ge=1, le=512)
    learning_rate: float = Field(1e-3, gt=0, lt=1)
    warmup_steps: int = Field(4, ge=0)
    max_length: int = Field(192, ge=16, le=8192)
    weight_decay: float = Field(0.0, ge=0)
    gradient_accumulation_steps: int = Field(
        1, ge=1, le=1024,
        description="micro-batches of batch_size per optimizer step: the effective batch is batch_size x this, "
        "the memory that of one micro-batch",
    )
    gradient_checkpointing: bool = Field(
        False,
        description="recompute each layer's activations in the backward pass instead of keeping them: "
        "much less activation memory for roughly a third more compute",
    )
    epochs_per_expert: dict[str, int] = Field(
        default_factory=dict, description="epochs for particular experts, e.g. a pole close to the base model's own voice"
    )

    @field_validator("epochs_per_expert")
    @classmethod
    def _known_experts(cls, value: dict[str, int]) -> dict[str, int]:
        for name, epochs in value.items():
            split_expert_name(name)
            if not 1 <= epochs <= 100:
                raise ValueError(f"epochs for {name} must be within 1..100")
        return value

    def epochs_for(self, name: str) -> int:
        return self.epochs_per_expert.get(name, self.epochs)


class EncoderLoraTraining(BaseModel):
    """A LoRA adapter on the situation encoder, trained together with the routing head."""

    model_config = ConfigDict(extra="forbid")

    r: int = Field(8, ge=1, le=256)
    alpha: float = Field(16.0, gt=0)
    dropout: float = Field(0.1, ge=0, lt=1)
    target_modules: list[str] = Field(default_factory=lambda: ["query", "key", "value", "dense"], min_length=1)
    learning_rate: float = Field(1e-3, gt=0, lt=1)


class RouterTraining(BaseModel):
    model_config = ConfigDict(extra="forbid")

    epochs: int = Field(400, ge=1, le=100_000)
    batch_size: int | None = Field(None, ge=2, description="situations per step; None trains on all at once")
    learning_rate: float = Field(3e-3, gt=0, lt=1)
    weight_decay: float = Field(1e-4, ge=0)
    hidden_dim: int = Field(256, ge=4, le=4096)
    dropout: float = Field(0.5, ge=0, lt=1)
    contrastive_weight: float = Field(0.5, ge=0)
    consistency_weight: float = Field(0.5, ge=0)
    contrastive_temperature: float = Field(0.1, gt=0)
    top_pole_weight: float = Field(0.0, ge=0, description="weight of a cross-entropy term on the single top pole")
    ema_decay: float | None = Field(
        None, gt=0, lt=1, description="keep an exponential moving average of the weights (per step) and return it"
    )
    encoder_lora: EncoderLoraTraining | None = None

    @model_validator(mode="after")
    def _minibatches_for_the_encoder(self) -> RouterTraining:
        if self.encoder_lora is not None and self.batch_size is None:
            raise ValueError("training an encoder adapter needs a batch_size (the encoder runs per step)")
        return self


class Evaluation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompts_per_trait: int = Field(20, ge=1)
    max_new_tokens: int = Field(64, ge=1)
    batch_size: int = Field(10, ge=1)


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base_model: str = Field("default", description="'default' (SmolLM2-135M-Instruct), a Hugging Face id or a local folder")
    output: str = "persona_agents/default_bundle"
    work_dir: str = "build/train-default"
    corpus_dir: str | None = None
    seed: int = 1234
    device: str = Field("cpu", description="'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'; 'auto' takes a GPU when there is one")
    dtype: Literal["auto", "float32", "bfloat16"] = Field(
        "float32",
        description="the base model's weights while training and evaluating (LoRA factors stay float32); "
        "'auto' is bfloat16 on a GPU with native bf16 (Ampere or newer), else float32",
    )
    device_map: str | None = Field(
        None,
        description="passed to from_pretrained on an accelerator: None puts the model on `device`, "
        "'auto' spreads a model too big for one GPU over all visible GPUs",
    )
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    lora: LoraSettings = Field(default_factory=LoraSettings)
    experts: ExpertTraining = Field(default_factory=ExpertTraining)
    router: RouterTraining = Field(default_factory=RouterTraining)
    evaluation: Evaluation = Field(default_factory=Evaluation)

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        return check_device(value)  # the engine's rule, so both accept the same names

    @field_validator("dtype", mode="before")
    @classmethod
    def _trainable_dtype(cls, value: Any) -> Any:
        if value == "float16":
            raise ValueError(
                "float16 training needs loss scaling, which this training loop does not do; "
                "use 'bfloat16' (GPUs since Ampere) or 'float32'"
            )
        return value

    def resolved_dtype(self, device: torch.device) -> Literal["float32", "bfloat16"]:
        """The dtype name to load the base model in on ``device``."""
        if self.dtype != "auto":
            return self.dtype
        # Emulated bf16 (pre-Ampere GPUs) is slower than float32: only native support counts.
        if device.type == "cuda" and torch.cuda.is_bf16_supported(including_emulation=False):
            return "bfloat16"
        return "float32"

    def engine_config(self) -> EngineConfig:
        """The engine settings the base model is loaded with for training and evaluation."""
        try:
            device = EngineConfig(device=self.device).resolved_device()
        except RuntimeError as exc:  # asked for a GPU this machine does not have
            raise ValueError(f"training config device: {exc}; use --device cpu (or 'auto') here") from None
        return EngineConfig(
            base_model=self.base_model,
            device=str(device),
            dtype=self.resolved_dtype(device),
            device_map=self.device_map,
        )

    @classmethod
    def from_file(cls, path: str | Path) -> TrainConfig:
        path = Path(path)
        try:
            return cls.model_validate(read_config_json(path))
        except ValidationError as exc:
            raise ValueError(f"training config {path}: {exc}") from exc


def presets() -> list[str]:
    """Names of the shipped configs (``configs/<name>.json``)."""
    return sorted(path.stem for path in CONFIG_DIR.glob("*.json"))


def find_config(name_or_path: str) -> Path:
    """A config file: a path as given, else a shipped preset by name."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    preset = CONFIG_DIR / f"{name_or_path.removesuffix('.json')}.json"
    if preset.is_file():
        return preset
    raise ValueError(f"--config {name_or_path!r} is neither a file nor a shipped preset ({', '.join(presets())})")


def read_config_json(path: Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A config file's values with what it ``extends`` merged underneath."""
    path = path.resolve()
    if path in _seen:
        chain = " -> ".join(str(p) for p in (*_seen, path))
        raise ValueError(f"training config '{EXTENDS_KEY}' loops: {chain}")
    try:
        values = json.loads(path.read_text())
    except FileNotFoundError as exc:
        where = f" (named by '{EXTENDS_KEY}' in {_seen[-1]})" if _seen else ""
        raise ValueError(f"no training config at {path}{where}") from exc
    except json.JSONDecodeError as exc:
        raise ValueError(f"training config {path} is not valid JSON: {exc}") from exc
    if not isinstance(values, dict):
        raise ValueError(f"training config {path} must be a JSON object, got {type(values).__name__}")
    parent = values.pop(EXTENDS_KEY, None)
    if parent is None:
        return values
    if not isinstance(parent, str) or not parent.strip():
        raise ValueError(f"training config {path}: '{EXTENDS_KEY}' must be a path to another config file")
    return _merge(read_config_json(path.parent / parent, (*_seen, path)), values)


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged
