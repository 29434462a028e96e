"""The router's encoder adapter: trained with peft, stored in peft's format inside the bundle,
merged into a separate encoder (the shared one stays plain), and strict on loading."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModel

from persona_agents.bundle import BundleError, PersonaFuseBundle
from persona_agents.encoder import MiniLMEncoder, embed_texts
from persona_agents.messages import to_turns
from persona_agents.router import adapt_encoder
from persona_agents.training.config import RouterTraining
from persona_agents.training.corpus import Situation
from persona_agents.training.router_training import (
    RouterTrainingResult,
    evaluate_router,
    train_router,
)

from .conftest import FakeEncoder

TOPICS = {
    "agreeableness_high": ["my dog died this morning", "my grandfather passed away", "I lost my best friend to cancer"],
    "neuroticism_low": ["my heart races before every exam", "I panic about flying next week", "I can't stop worrying about money"],
    "conscientiousness_high": ["I was charged twice for one order", "the invoice lists the wrong amount", "my refund never arrived"],
    "extraversion_high": ["five stars, best party shop ever!", "we loved the concert, amazing night", "I got the job, let's celebrate!"],
}
TRAINING = RouterTraining(
    epochs=3, batch_size=4, hidden_dim=32, dropout=0.1, learning_rate=3e-3, top_pole_weight=1.0, ema_decay=0.5,
    encoder_lora={"r": 4, "alpha": 8, "learning_rate": 1e-3},
)


def _situations() -> list[Situation]:
    return [
        Situation(id=f"{pole}-{i}", domain="social", text=text, activation={pole: 1.0})
        for pole, texts in TOPICS.items()
        for i, text in enumerate(texts)
    ]


@pytest.fixture(scope="module")
def trained(real_encoder: MiniLMEncoder) -> RouterTrainingResult:
    return train_router(real_encoder, _situations(), TRAINING, seed=0)


def test_training_returns_a_peft_lora_adapter(trained: RouterTrainingResult, real_encoder: MiniLMEncoder) -> None:
    adapter = trained.encoder_adapter
    assert adapter is not None and adapter.config.r == 4
    assert adapter.config.base_model_name_or_path == "sentence-transformers/all-MiniLM-L6-v2"  # no local path
    assert all(".lora_A." in k or ".lora_B." in k for k in adapter.weights)
    assert trained.head.settings.encoder_adapter and trained.head.settings.trained
    assert any(v.abs().sum() > 0 for k, v in adapter.weights.items() if ".lora_B." in k)  # B moved off zero
    assert len(trained.history["total"]) == 3 * 3  # 12 situations in batches of 4, 3 epochs
    report = evaluate_router(trained.router(real_encoder), _situations())
    assert report["top_pole_agreement"] >= 0.75


def test_adapted_encoder_is_a_copy(trained: RouterTrainingResult, real_encoder: MiniLMEncoder) -> None:
    texts = ["my dog died this morning", "I was charged twice"]
    before = real_encoder.encode(texts)
    adapted = adapt_encoder(real_encoder, trained.encoder_adapter)
    assert adapted is not real_encoder and adapted.model is not real_encoder.model
    assert (adapted.encode(texts) - before).abs().max() > 1e-4
    torch.testing.assert_close(real_encoder.encode(texts), before)  # the shared encoder stays plain
    assert adapt_encoder(real_encoder, None) is real_encoder


def test_adapter_needs_a_transformer_encoder(trained: RouterTrainingResult) -> None:
    with pytest.raises(TypeError, match="MiniLMEncoder"):
        adapt_encoder(FakeEncoder(), trained.encoder_adapter)
    with pytest.raises(TypeError, match="MiniLMEncoder"):
        train_router(FakeEncoder(), _situations(), TRAINING, seed=0)


def test_bundle_round_trip_routes_the_same(
    trained: RouterTrainingResult, tiny_bundle: PersonaFuseBundle, real_encoder: MiniLMEncoder, tmp_path: Path
) -> None:
    manifest = tiny_bundle.manifest.model_copy(update={"router": trained.head.settings})
    bundle = PersonaFuseBundle(manifest, tiny_bundle.experts, trained.head, encoder_adapter=trained.encoder_adapter)
    saved = bundle.save(tmp_path / "bundle")
    assert (saved / "router_encoder" / "adapter_config.json").is_file()
    loaded = PersonaFuseBundle.load(saved)
    turns = to_turns("my cat died and I keep crying")
    expected = trained.router(real_encoder).route(turns).weights.values
    assert loaded.make_router(real_encoder).route(turns).weights.values == pytest.approx(expected, abs=1e-6)


def test_peft_reads_the_stored_adapter(trained: RouterTrainingResult, real_encoder: MiniLMEncoder, tmp_path: Path) -> None:
    from peft import PeftModel

    trained.encoder_adapter.write(tmp_path / "adapter")
    peft_model = PeftModel.from_pretrained(AutoModel.from_pretrained(str(real_encoder.path)), str(tmp_path / "adapter")).eval()
    texts = ["we loved the concert"]
    with torch.inference_mode():
        by_peft = embed_texts(peft_model, real_encoder.tokenizer, texts, 128)
    torch.testing.assert_close(by_peft, adapt_encoder(real_encoder, trained.encoder_adapter).encode(texts), atol=1e-5, rtol=1e-4)


@pytest.fixture
def saved_with_adapter(trained: RouterTrainingResult, tiny_bundle: PersonaFuseBundle, tmp_path: Path) -> Path:
    manifest = tiny_bundle.manifest.model_copy(update={"router": trained.head.settings})
    return PersonaFuseBundle(manifest, tiny_bundle.experts, trained.head, encoder_adapter=trained.encoder_adapter).save(tmp_path / "b")


def test_missing_adapter_folder(saved_with_adapter: Path) -> None:
    import shutil

    shutil.rmtree(saved_with_adapter / "router_encoder")
    with pytest.raises(BundleError, match="router encoder adapter .* missing .*adapter_config.json"):
        PersonaFuseBundle.load(saved_with_adapter)


def test_corrupt_adapter_weights(saved_with_adapter: Path) -> None:
    (saved_with_adapter / "router_encoder" / "adapter_model.safetensors").write_bytes(b"\x00" * 16)
    with pytest.raises(BundleError, match="router encoder adapter .* unreadable weights"):
        PersonaFuseBundle.load(saved_with_adapter)


def test_adapter_config_not_lora(saved_with_adapter: Path) -> None:
    config_file = saved_with_adapter / "router_encoder" / "adapter_config.json"
    config_file.write_text(json.dumps({"peft_type": "IA3"}))
    with pytest.raises(BundleError, match="IA3Config, not a LoRA adapter"):
        PersonaFuseBundle.load(saved_with_adapter)
    config_file.write_text(json.dumps({"peft_type": "LORA", "r": "four", "lora_alpha": 8, "target_modules": ["query"]}))
    with pytest.raises(BundleError, match="positive integer r"):
        PersonaFuseBundle.load(saved_with_adapter)
    config_file.write_text("{not json")
    with pytest.raises(BundleError, match="unreadable adapter_config.json"):
        PersonaFuseBundle.load(saved_with_adapter)


def test_manifest_and_adapter_must_agree(trained: RouterTrainingResult, tiny_bundle: PersonaFuseBundle) -> None:
    with pytest.raises(BundleError, match="encoder_adapter"):
        PersonaFuseBundle(tiny_bundle.manifest, tiny_bundle.experts, tiny_bundle.router_head, encoder_adapter=trained.encoder_adapter)
    manifest = tiny_bundle.manifest.model_copy(update={"router": trained.head.settings})
    with pytest.raises(BundleError, match="encoder_adapter"):
        PersonaFuseBundle(manifest, tiny_bundle.experts, trained.head)


def test_adapter_with_foreign_tensors_is_refused(trained: RouterTrainingResult, real_encoder: MiniLMEncoder) -> None:
    weights = {k.replace("encoder.layer", "decoder.block"): v for k, v in trained.encoder_adapter.weights.items()}
    with pytest.raises(ValueError, match="adapter"):
        real_encoder.with_lora(trained.encoder_adapter.config, weights)


def test_adapter_of_another_rank_is_refused(trained: RouterTrainingResult, real_encoder: MiniLMEncoder) -> None:
    with pytest.raises(ValueError, match="does not fit this encoder"):
        config = copy.deepcopy(trained.encoder_adapter.config)
        config.r = 6
        real_encoder.with_lora(config, trained.encoder_adapter.weights)


def test_encoder_adapter_training_needs_minibatches() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        RouterTraining(encoder_lora={})
