"""Training settings, read from a JSON config file (see configs/default.json)."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from persona_agents.bundle import LoraSettings
from persona_agents.config import DEFAULT_SYSTEM_PROMPT
from persona_agents.traits import split_expert_name

DEFAULT_CONFIG = Path(__file__).resolve().parent / "configs" / "default.json"


class ExpertTraining(BaseModel):
    model_config = ConfigDict(extra="forbid")

    epochs: int = Field(5, ge=1, le=100)
    batch_size: int = Field(8, ge=1, le=512)
    learning_rate: float = Field(1e-3, gt=0, lt=1)
    warmup_steps: int = Field(4, ge=0)
    max_length: int = Field(192, ge=16, le=8192)
    weight_decay: float = Field(0.0, ge=0)
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

    base_model: str = "default"
    output: str = "persona_agents/default_bundle"
    work_dir: str = "build/train-default"
    corpus_dir: str | None = None
    seed: int = 1234
    device: str = "cpu"
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    lora: LoraSettings = Field(default_factory=LoraSettings)
    experts: ExpertTraining = Field(default_factory=ExpertTraining)
    router: RouterTraining = Field(default_factory=RouterTraining)
    evaluation: Evaluation = Field(default_factory=Evaluation)

    @classmethod
    def from_file(cls, path: str | Path) -> TrainConfig:
        path = Path(path)
        try:
            return cls.model_validate(json.loads(path.read_text()))
        except FileNotFoundError as exc:
            raise ValueError(f"no training config at {path}") from exc
        except json.JSONDecodeError as exc:
            raise ValueError(f"training config {path} is not valid JSON: {exc}") from exc
        except ValidationError as exc:
            raise ValueError(f"training config {path}: {exc}") from exc
