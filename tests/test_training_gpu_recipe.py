"""The GPU training recipe (bf16, gradient checkpointing, accumulation, device_map) on the CPU.

Every shipped preset is trained end to end on a tiny model saved to disk and loaded through the
same ``load_base_model`` call a GPU run makes, in the preset's dtype, with its batching and
checkpointing settings: only the model, corpus and device are swapped. What a GPU would decide
(device, dtype, device_map) is checked with CUDA's presence faked.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from persona_agents import base_model as base_model_module
from persona_agents.base_model import load_base_model
from persona_agents.bundle import PersonaFuseBundle
from persona_agents.training import pipeline
from persona_agents.training.config import (
    CONFIG_DIR,
    DEFAULT_CONFIG,
    TrainConfig,
    find_config,
    presets,
    read_config_json,
)
from persona_agents.training.corpus import PoleResponse
from persona_agents.training.experts import train_expert
from persona_agents.traits import EXPERT_NAMES
from tests.test_training_pipeline import _write_corpus

GPU_PRESETS = [name for name in presets() if name != DEFAULT_CONFIG.stem]


def _fake_cuda(monkeypatch: pytest.MonkeyPatch, *, bf16: bool) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: bf16)


# --- the presets and the config files -----------------------------------------------------------


def test_there_is_a_gpu_preset() -> None:
    assert GPU_PRESETS, "configs/ should ship at least one GPU preset beside default.json"


@pytest.mark.parametrize("name", GPU_PRESETS)
def test_preset_overrides_only_what_differs_from_default(name: str) -> None:
    raw = json.loads((CONFIG_DIR / f"{name}.json").read_text())
    assert raw["extends"] == "default.json"
    config = TrainConfig.from_file(find_config(name))
    default = TrainConfig.from_file(DEFAULT_CONFIG)
    assert config.dtype == "bfloat16" and config.device == "cuda"
    assert config.experts.gradient_checkpointing is True
    assert config.experts.batch_size * config.experts.gradient_accumulation_steps >= 16
    # never overwrites the shipped bundle or the default run's checkpoints
    assert config.output != default.output and config.work_dir != default.work_dir
    # what the preset does not name is inherited: the router does not depend on the base model
    assert "router" not in raw and config.router == default.router
    assert config.lora.target_modules == default.lora.target_modules


def test_extends_merges_objects_and_replaces_everything_else(tmp_path: Path) -> None:
    (tmp_path / "base.json").write_text(json.dumps(
        {"seed": 1, "lora": {"r": 4, "target_modules": ["q_proj", "v_proj"]}, "experts": {"epochs": 3, "batch_size": 8}}
    ))
    (tmp_path / "child.json").write_text(json.dumps(
        {"extends": "base.json", "lora": {"target_modules": ["o_proj"]}, "experts": {"batch_size": 2}}
    ))
    values = read_config_json(tmp_path / "child.json")
    assert values == {"seed": 1, "lora": {"r": 4, "target_modules": ["o_proj"]}, "experts": {"epochs": 3, "batch_size": 2}}


def test_bad_config_files_name_the_problem(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text(json.dumps({"extends": "b.json"}))
    (tmp_path / "b.json").write_text(json.dumps({"extends": "a.json"}))
    with pytest.raises(ValueError, match="'extends' loops"):
        TrainConfig.from_file(tmp_path / "a.json")
    (tmp_path / "c.json").write_text(json.dumps({"extends": "missing.json"}))
    with pytest.raises(ValueError, match=r"no training config at .*missing.json \(named by 'extends'"):
        TrainConfig.from_file(tmp_path / "c.json")
    with pytest.raises(ValueError, match="neither a file nor a shipped preset"):
        find_config("no-such-preset")


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"dtype": "float16"}, "float16 training needs loss scaling"),
        ({"dtype": "int8"}, "dtype"),
        ({"device": "gpu"}, "unknown device 'gpu'"),
        ({"experts": {"gradient_accumulation_steps": 0}}, "gradient_accumulation_steps"),
        ({"experts": {"gradient_checkpointing": "sometimes"}}, "gradient_checkpointing"),
    ],
)
def test_invalid_settings_are_refused(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TrainConfig.model_validate(values)


# --- how a GPU run picks its device and dtype ----------------------------------------------------


def test_dtype_and_device_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    assert TrainConfig(device="cpu", dtype="auto").engine_config().dtype == "float32"
    assert TrainConfig(device="cpu", dtype="bfloat16").engine_config().dtype == "bfloat16"
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="device: device 'cuda' was asked for but CUDA is not available"):
            TrainConfig(device="cuda").engine_config()
    _fake_cuda(monkeypatch, bf16=True)
    auto = TrainConfig(device="auto", dtype="auto").engine_config()
    assert (auto.device, auto.dtype) == ("cuda", "bfloat16")
    _fake_cuda(monkeypatch, bf16=False)  # a pre-Ampere GPU: emulated bf16 is slower than float32
    assert TrainConfig(device="cuda:1", dtype="auto").engine_config().dtype == "float32"


@pytest.mark.parametrize("name", GPU_PRESETS)
def test_preset_loads_the_base_model_as_a_gpu_would(
    name: str, monkeypatch: pytest.MonkeyPatch, tiny_model, tiny_tokenizer
) -> None:
    _fake_cuda(monkeypatch, bf16=True)
    calls: list[dict[str, Any]] = []

    def from_pretrained(source: str, **kwargs: Any):
        calls.append({"source": source, **kwargs})
        return tiny_model

    monkeypatch.setattr(base_model_module.AutoConfig, "from_pretrained", lambda source: None)
    monkeypatch.setattr(base_model_module.AutoTokenizer, "from_pretrained", lambda source: tiny_tokenizer)
    monkeypatch.setattr(base_model_module.AutoModelForCausalLM, "from_pretrained", from_pretrained)
    config = TrainConfig.from_file(find_config(name))
    load_base_model(config.engine_config())
    assert calls == [{"source": config.base_model, "dtype": torch.bfloat16, "device_map": config.device_map or "cuda"}]


# --- the training loop's memory settings ----------------------------------------------------------


def _same_length_responses(n: int) -> list[PoleResponse]:
    return [
        PoleResponse(id=f"r{i}", pair=f"p{i}", expert="extraversion_high", domain="social",
                     situation=f"Tell me about day {i}", response="What a day! Let's go!!")
        for i in range(n)
    ]


def _config(tmp_path: Path, **experts: Any) -> TrainConfig:
    settings = {"epochs": 1, "batch_size": 4, "learning_rate": 0.05, "warmup_steps": 0, "max_length": 128, **experts}
    return TrainConfig(work_dir=str(tmp_path), system_prompt="sys",
                       lora={"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]},
                       experts=settings)


def _adapter(out_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(out_dir / "adapter" / "adapter_model.safetensors")


@pytest.mark.parametrize("checkpointing", [False, True])
def test_gradient_checkpointing_recomputes_each_layer(
    tiny_model, tiny_tokenizer, tmp_path: Path, checkpointing: bool
) -> None:
    forwards = {"n": 0}
    # a module inside the layer: transformers checkpoints the layer's forward, so the layer's own
    # hooks run once, but its first module runs again when the backward pass recomputes the layer
    # (torch stops a recompute early once it has what the backward needs, so not necessarily all)
    tiny_model.model.layers[0].input_layernorm.register_forward_hook(
        lambda *args: forwards.__setitem__("n", forwards["n"] + 1)
    )
    config = _config(tmp_path, gradient_checkpointing=checkpointing)
    history = train_expert(tiny_model, tiny_tokenizer, "extraversion_high", _same_length_responses(8), config, tmp_path / "e", 0)
    assert len(history) == 2
    assert forwards["n"] == (4 if checkpointing else 2)  # 2 steps; checkpointing runs each layer again in backward
    checkpointed = [m for m in tiny_model.modules() if getattr(m, "gradient_checkpointing", False)]
    assert not checkpointed and not tiny_model.training  # left ready for generation


def test_gradient_accumulation_matches_one_big_batch(tiny_model, tiny_tokenizer, tmp_path: Path) -> None:
    other = copy.deepcopy(tiny_model)
    rows = _same_length_responses(4)  # equal lengths: the mean of micro-batch means is the batch mean
    big = train_expert(tiny_model, tiny_tokenizer, "extraversion_high", rows, _config(tmp_path / "a", batch_size=4), tmp_path / "a", 0)
    accumulated = train_expert(
        other, tiny_tokenizer, "extraversion_high", rows,
        _config(tmp_path / "b", batch_size=2, gradient_accumulation_steps=2), tmp_path / "b", 0,
    )
    assert len(big) == len(accumulated) == 1
    assert accumulated[0] == pytest.approx(big[0], rel=1e-5)
    a, b = _adapter(tmp_path / "a"), _adapter(tmp_path / "b")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-6)


def test_bf16_base_trains_float32_experts(tiny_model, tiny_tokenizer, tmp_path: Path) -> None:
    tiny_model.to(torch.bfloat16)
    config = _config(tmp_path, epochs=6, gradient_checkpointing=True)
    history = train_expert(tiny_model, tiny_tokenizer, "extraversion_high", _same_length_responses(8), config, tmp_path / "e", 0)
    assert all(torch.isfinite(torch.tensor(history)))
    assert history[-1] < history[0] - 0.1
    adapter = _adapter(tmp_path / "e")
    assert {t.dtype for t in adapter.values()} == {torch.float32}
    assert all(p.dtype == torch.bfloat16 for p in tiny_model.parameters())  # the base is untouched


# --- each preset, end to end on the CPU ------------------------------------------------------------


@pytest.mark.parametrize("name", GPU_PRESETS)
def test_preset_trains_a_bundle_on_the_cpu(
    name: str, tmp_path: Path, tiny_model, tiny_tokenizer, fake_encoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    model_dir = tmp_path / "tiny-base"
    tiny_model.save_pretrained(model_dir)
    tiny_tokenizer.save_pretrained(model_dir)
    corpus = tmp_path / "corpus"
    _write_corpus(corpus)
    loaded: list[torch.dtype] = []

    def load_and_record(config):
        model, tokenizer = load_base_model(config)
        loaded.append(next(model.parameters()).dtype)
        return model, tokenizer

    monkeypatch.setattr(pipeline, "load_base_model", load_and_record)
    monkeypatch.setattr(pipeline, "shared_encoder", lambda: fake_encoder)
    preset = TrainConfig.from_file(find_config(name))
    config = TrainConfig.model_validate({
        **preset.model_dump(),
        # swapped: the model, the data, the place; the dtype, batching, checkpointing and LoRA shape stay the preset's
        "base_model": str(model_dir), "device": "cpu", "device_map": None, "corpus_dir": str(corpus),
        "output": str(tmp_path / "bundle"), "work_dir": str(tmp_path / "work"),
        # one step per expert on this tiny corpus: no warm-up, or the only step would have a zero learning rate
        "experts": {**preset.experts.model_dump(), "epochs": 1, "epochs_per_expert": {}, "warmup_steps": 0},
        "router": {"epochs": 20, "hidden_dim": 16},
        "evaluation": {"prompts_per_trait": 1, "max_new_tokens": 3, "batch_size": 4},
    })
    assert config.dtype == "bfloat16" and config.experts.gradient_checkpointing
    report = pipeline.run(config)

    assert loaded == [torch.bfloat16]
    bundle = PersonaFuseBundle.load(tmp_path / "bundle")
    assert bundle.manifest.lora == preset.lora and bundle.manifest.untrained_parts == []
    for expert in EXPERT_NAMES:
        adapter = load_file(tmp_path / "work" / "experts" / expert / "adapter" / "adapter_model.safetensors")
        assert {t.dtype for t in adapter.values()} == {torch.float32}
        assert any(key.endswith("lora_B.weight") and t.abs().sum() > 0 for key, t in adapter.items())
    assert set(report["experts"]["per_expert"]) == set(EXPERT_NAMES)  # the bf16 model generated in evaluation
    assert report["config"]["experts"]["gradient_accumulation_steps"] == preset.experts.gradient_accumulation_steps
