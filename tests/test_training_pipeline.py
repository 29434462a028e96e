"""The whole `persona-agents train` pipeline on a tiny model and a tiny generated corpus."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from persona_agents.bundle import PersonaFuseBundle
from persona_agents.jsonl import write_jsonl
from persona_agents.training import pipeline
from persona_agents.training.config import TrainConfig
from persona_agents.traits import EXPERT_NAMES, TRAITS
from tests.conftest import TINY_LORA

VOICES = {"high": "Wonderful, let's explore this together with energy!", "low": "Fine. Keep it short and plain."}


def _write_corpus(directory: Path) -> None:
    situations = []
    for i, name in enumerate(EXPERT_NAMES):
        for j in range(3):
            situations.append(
                {"id": f"s{i}-{j}", "domain": "social", "text": f"situation {name} number {j}", "context": [],
                 "reasoning": "", "activation": {name: 1.0}, "split": "test" if j == 2 else "train"}
            )
    write_jsonl(directory / "situations.jsonl", situations)
    for trait in TRAITS:
        rows = []
        for j in range(4):
            for pole, voice in VOICES.items():
                rows.append(
                    {"id": f"{trait}-{j}-{pole}", "pair": f"{trait}-{j}", "expert": f"{trait}_{pole}", "domain": "social",
                     "situation": f"how was your {trait} day {j}?", "response": f"{voice} ({j})", "split": "test" if j == 3 else "train"}
                )
        write_jsonl(directory / f"responses_{trait}.jsonl", rows)
    write_jsonl(directory / "general_questions.jsonl", [{"id": "q1", "question": "What is 1 plus 1?", "answers": ["2", "two"]}])


ROUTER_SETTINGS = {
    "frozen encoder": {"epochs": 20, "hidden_dim": 16},
    "encoder adapter": {"epochs": 2, "batch_size": 8, "hidden_dim": 16, "encoder_lora": {"r": 2, "alpha": 4}},
}


@pytest.mark.parametrize("router_settings", ROUTER_SETTINGS.values(), ids=ROUTER_SETTINGS.keys())
def test_pipeline_writes_a_loadable_trained_bundle_and_report(
    tmp_path: Path, tiny_model, tiny_tokenizer, fake_encoder, real_encoder, monkeypatch: pytest.MonkeyPatch, router_settings
) -> None:
    corpus = tmp_path / "corpus"
    _write_corpus(corpus)
    adapted = "encoder_lora" in router_settings
    encoder = real_encoder if adapted else fake_encoder
    monkeypatch.setattr(pipeline, "load_base_model", lambda config: (tiny_model, tiny_tokenizer))
    monkeypatch.setattr(pipeline, "shared_encoder", lambda: encoder)
    config = TrainConfig(
        base_model="tiny-llama",
        output=str(tmp_path / "bundle"),
        work_dir=str(tmp_path / "work"),
        corpus_dir=str(corpus),
        system_prompt="sys",
        lora=TINY_LORA,
        experts={"epochs": 1, "batch_size": 4, "learning_rate": 0.01, "warmup_steps": 0, "max_length": 96},
        router=router_settings,
        evaluation={"prompts_per_trait": 1, "max_new_tokens": 3, "batch_size": 4},
    )
    report = pipeline.run(config)

    bundle = PersonaFuseBundle.load(tmp_path / "bundle")
    assert bundle.manifest.base_model == "tiny-llama"
    assert bundle.manifest.untrained_parts == []
    assert bundle.manifest.router.encoder_adapter is adapted and (bundle.encoder_adapter is not None) is adapted
    assert set(bundle.manifest.training) >= {"router_top_pole_agreement", "all_experts_move_toward_pole", "general_ability"}
    saved = json.loads((tmp_path / "bundle" / "report" / "training_report.json").read_text())
    assert saved["router"]["n"] == 10 and 0.0 <= saved["router"]["top_pole_agreement"] <= 1.0
    assert set(saved["experts"]["per_expert"]) == set(EXPERT_NAMES)
    assert set(saved["experts"]["second_opinion"]["per_expert"]) == set(EXPERT_NAMES)
    assert set(saved["pole_classifier_held_out_accuracy"]) == set(TRAITS)
    assert (tmp_path / "bundle" / "report" / "loss_curves.png").stat().st_size > 1000
    assert (tmp_path / "bundle" / "report" / "pole_strength.png").is_file()
    assert report["general_ability"]["n"] == 1
    # each expert left its resume marker, so a rerun retrains nothing
    assert all((tmp_path / "work" / "experts" / name / "DONE").is_file() for name in EXPERT_NAMES)
