"""Training: corpus schema, response-only loss masking, resumable expert training, router losses,
pole-classifier metrics and the synth command (with a fake teacher)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import torch
from langchain_core.language_models.fake_chat_models import FakeListChatModel

from persona_agents.router import Router
from persona_agents.training import experts as experts_module
from persona_agents.training.config import RouterTraining, TrainConfig
from persona_agents.training.corpus import (
    CorpusError,
    GeneralQuestion,
    PoleResponse,
    Situation,
    load_general_questions,
    load_responses,
    load_situations,
    read_jsonl,
)
from persona_agents.training.evaluation import score_expert_replies
from persona_agents.training.experts import IGNORE_INDEX, build_example, train_expert
from persona_agents.training.pole_classifier import (
    EmbeddingPoleClassifier,
    LexicalPoleClassifier,
    PoleClassifier,
    pairwise_separation,
    share_as_pole,
)
from persona_agents.training.router_training import (
    evaluate_router,
    supervised_contrastive,
    train_router,
)
from persona_agents.training.synth import Deduplicator, append_to_corpus, extract_json, synthesize
from persona_agents.traits import EXPERT_NAMES, TRAITS
from tests.conftest import TINY_LORA

# --- the shipped corpus ----------------------------------------------------------------------


def test_shipped_corpus_meets_the_issue() -> None:
    situations = load_situations()
    assert len(situations) >= 400
    assert {s.domain for s in situations} == {"counseling", "customer_service", "social"}
    tops = Counter(s.top_pole for s in situations)
    assert set(tops) == set(EXPERT_NAMES)
    test = [s for s in situations if s.split == "test"]
    assert 0.15 <= len(test) / len(situations) <= 0.25
    assert not {s.text for s in test} & {s.text for s in situations if s.split == "train"}

    responses = load_responses()
    per_expert = Counter(r.expert for r in responses)
    assert all(per_expert[name] >= 80 for name in EXPERT_NAMES), per_expert
    pairs = Counter(r.pair for r in responses)
    assert set(pairs.values()) == {2}
    assert len({r.situation for r in responses if r.split == "test"}) >= 20 * 5
    assert len(load_general_questions()) >= 20


def test_situation_schema_rejects_bad_activations() -> None:
    base = {"id": "x", "domain": "social", "text": "hi"}
    with pytest.raises(ValueError, match="both poles"):
        Situation(**base, activation={"openness_high": 0.5, "openness_low": 0.5})
    with pytest.raises(ValueError, match="sum to 1"):
        Situation(**base, activation={"openness_high": 0.5})
    with pytest.raises(ValueError, match="unknown"):
        Situation(**base, activation={"charisma_high": 1.0})
    s = Situation(**base, activation={"agreeableness_high": 0.6, "neuroticism_low": 0.4})
    assert s.top_pole == "agreeableness_high"
    assert s.expected_traits == {"agreeableness": "high", "neuroticism": "low"}


def test_read_jsonl_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "situations.jsonl"
    path.write_text('{"id": "a", "domain": "social", "text": "t", "activation": {"openness_high": 1}}\n{oops\n')
    with pytest.raises(CorpusError, match=r"situations.jsonl:2: invalid JSON"):
        read_jsonl(path, Situation)


def test_general_question_matching() -> None:
    q = GeneralQuestion(id="q", question="What is 7 plus 5?", answers=["12", "twelve"])
    assert q.is_correct("It is Twelve.")
    assert not q.is_correct("It is 13.")


# --- expert training --------------------------------------------------------------------------


def test_example_labels_cover_only_the_reply(tiny_tokenizer) -> None:
    example = build_example(tiny_tokenizer, "sys", "hello", "Hi there!", max_length=512)
    labelled = [t for t, label in zip(example.input_ids, example.labels) if label != IGNORE_INDEX]
    assert tiny_tokenizer.decode(labelled) == "Hi there!<|im_end|>"
    assert len(example.input_ids) == len(example.labels)
    first = example.labels.index(labelled[0])
    assert all(label == IGNORE_INDEX for label in example.labels[:first])


def _responses(n: int) -> list[PoleResponse]:
    return [
        PoleResponse(id=f"r{i}", pair=f"p{i}", expert="extraversion_high", domain="social", situation=f"Tell me about day {i}", response="What a day! Let's go!!")
        for i in range(n)
    ]


def _tiny_config(tmp_path: Path, epochs: int) -> TrainConfig:
    return TrainConfig(
        work_dir=str(tmp_path),
        system_prompt="sys",
        lora=TINY_LORA,
        experts={"epochs": epochs, "batch_size": 4, "learning_rate": 0.05, "warmup_steps": 0, "max_length": 128},
    )


def test_expert_training_learns_and_saves_peft_adapter(tiny_model, tiny_tokenizer, tmp_path: Path) -> None:
    config = _tiny_config(tmp_path, epochs=6)
    history = train_expert(tiny_model, tiny_tokenizer, "extraversion_high", _responses(8), config, tmp_path / "e", seed=0)
    assert len(history) == 12
    assert history[-1] < history[0] - 0.1  # a random tiny model: attention LoRA moves the loss slowly
    assert (tmp_path / "e" / "adapter" / "adapter_model.safetensors").is_file()
    assert not any("lora" in name for name, _ in tiny_model.named_modules())  # detached again
    # a finished expert is not trained again
    again = train_expert(tiny_model, tiny_tokenizer, "extraversion_high", _responses(8), config, tmp_path / "e", seed=0)
    assert again == history


def test_expert_training_resumes_after_a_crash(tiny_model, tiny_tokenizer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = _tiny_config(tmp_path, epochs=2)
    real_clip = torch.nn.utils.clip_grad_norm_
    calls = {"n": 0}

    def crash_in_second_epoch(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:  # 2 steps per epoch: the first step of epoch 2
            raise RuntimeError("simulated crash")
        return real_clip(*args, **kwargs)

    monkeypatch.setattr(experts_module.torch.nn.utils, "clip_grad_norm_", crash_in_second_epoch)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train_expert(tiny_model, tiny_tokenizer, "extraversion_high", _responses(8), config, tmp_path / "e", seed=0)
    state = torch.load(tmp_path / "e" / "checkpoint" / "state.pt", weights_only=False)
    assert state["epoch"] == 1 and len(state["history"]) == 2
    monkeypatch.setattr(experts_module.torch.nn.utils, "clip_grad_norm_", real_clip)
    history = train_expert(tiny_model, tiny_tokenizer, "extraversion_high", _responses(8), config, tmp_path / "e", seed=0)
    assert len(history) == 4 and history[:2] == state["history"]
    assert (tmp_path / "e" / "DONE").is_file() and not (tmp_path / "e" / "checkpoint").exists()


# --- router training ---------------------------------------------------------------------------


def test_supervised_contrastive_hand_computed() -> None:
    z = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]), dim=-1)
    groups = torch.tensor([0, 0, 1])
    # anchors 0 and 1: positive sim 1/T, negative sim 0 -> -log(e^10 / (e^10 + 1)); anchor 2 has no positive
    expected = -torch.log(torch.exp(torch.tensor(10.0)) / (torch.exp(torch.tensor(10.0)) + 1))
    assert torch.isclose(supervised_contrastive(z, groups, 0.1), expected, atol=1e-5)
    swapped = supervised_contrastive(z, torch.tensor([0, 1, 0]), 0.1)
    assert swapped > 5  # pulling orthogonal vectors together costs a lot


def test_router_training_learns_separable_situations(fake_encoder) -> None:
    topics = {
        "openness_high": "give me wild creative brainstorm ideas",
        "conscientiousness_high": "my invoice was double charged please fix the billing",
        "extraversion_high": "we won the championship party time",
        "agreeableness_low": "be brutally honest and criticise my essay",
    }
    situations = [
        Situation(id=f"{pole}-{i}", domain="social", text=f"{text} {i}", activation={pole: 1.0}, split="train")
        for pole, text in topics.items()
        for i in range(6)
    ]
    result = train_router(fake_encoder, situations, RouterTraining(epochs=150, hidden_dim=32, dropout=0.1), seed=0)
    assert result.head.settings.trained
    assert result.history["total"][-1] < result.history["total"][0]
    report = evaluate_router(Router(fake_encoder, result.head), situations)
    assert report["top_pole_agreement"] >= 0.9
    assert report["n"] == len(situations)


def test_router_weight_average_leaves_training_unchanged(fake_encoder) -> None:
    situations = [
        Situation(id=f"{pole}-{i}", domain="social", text=f"{text} {i}", activation={pole: 1.0}, split="train")
        for pole, text in {"openness_high": "wild creative ideas please", "conscientiousness_high": "fix my double charge"}.items()
        for i in range(4)
    ]
    plain = train_router(fake_encoder, situations, RouterTraining(epochs=40, hidden_dim=16, dropout=0.0), seed=3)
    averaged = train_router(fake_encoder, situations, RouterTraining(epochs=40, hidden_dim=16, dropout=0.0, ema_decay=0.9), seed=3)
    assert averaged.history == plain.history  # the average is kept beside the optimisation, not in it
    assert not torch.equal(averaged.head.experts.weight, plain.head.experts.weight)
    assert evaluate_router(averaged.router(fake_encoder), situations)["top_pole_agreement"] == 1.0


# --- pole classifier metrics ------------------------------------------------------------------


def test_share_as_pole_and_pairwise_separation() -> None:
    assert share_as_pole([0.9, 0.2, 0.6, 0.5], "high") == 0.5
    assert share_as_pole([0.9, 0.2, 0.6, 0.5], "low") == 0.5
    assert share_as_pole([], "high") == 0.0
    assert pairwise_separation([0.9, 0.4, 0.5], [0.1, 0.6, 0.5]) == pytest.approx((1 + 0 + 0.5) / 3)
    with pytest.raises(ValueError):
        pairwise_separation([0.1], [])


def test_lexical_classifier_reads_voice_on_the_shipped_corpus() -> None:
    responses = load_responses()
    classifier = LexicalPoleClassifier.fit([r for r in responses if r.split == "train"])
    accuracy = classifier.accuracy([r for r in responses if r.split == "test"])
    assert set(accuracy) == set(TRAITS) and min(accuracy.values()) >= 0.9, accuracy
    anxious, calm = classifier.prob_high(
        "neuroticism",
        [
            "Oh no, I'm really worried for you, maybe check it twice just in case? I hope it's okay.",
            "That's manageable. Take it one step at a time; there's no rush and it will be fine.",
        ],
    )
    assert anxious > 0.5 >= calm
    assert classifier.prob_high("openness", []) == []


def test_classifiers_need_both_poles_of_every_trait(fake_encoder) -> None:
    only_high = [r for r in load_responses() if r.pole == "high"]
    with pytest.raises(ValueError, match="high and low examples"):
        LexicalPoleClassifier.fit(only_high)
    with pytest.raises(ValueError, match="high and low examples"):
        EmbeddingPoleClassifier.fit(fake_encoder, only_high, epochs=1)


class _MarkerClassifier(PoleClassifier):
    """'HIGH' in a text reads as the high pole, anything else as low."""

    name = "marker"

    def prob_high(self, trait: str, texts):
        return [0.9 if "HIGH" in t else 0.1 for t in texts]


def test_score_expert_replies_compares_each_expert_with_the_base() -> None:
    replies = {
        trait: {"prompts": ["p1", "p2"], "base": ["plain", "HIGH"], "high": ["HIGH", "HIGH"], "low": ["calm", "calm"]}
        for trait in TRAITS
    }
    replies["openness"]["low"] = ["HIGH", "calm"]  # as low as the base: does not move toward its pole
    scored = score_expert_replies(replies, _MarkerClassifier())
    assert scored["per_expert"]["openness_high"] == {
        "n": 2, "expert_share_as_pole": 1.0, "base_share_as_pole": 0.5, "moves_toward_pole": True
    }
    assert scored["per_expert"]["openness_low"]["moves_toward_pole"] is False
    assert scored["all_experts_move_toward_pole"] is False
    assert scored["per_trait"]["neuroticism"]["high_low_separation"] == 1.0
    assert scored["min_high_low_separation"] == 0.75  # openness: one win, one tie
    assert scored["classifier"] == "marker"


# --- synth --------------------------------------------------------------------------------------


def _teacher_item(situation: str, activation: dict[str, float]) -> str:
    item = {
        "situation": situation,
        "reasoning": "A celebration calls for energy.",
        "activation": activation,
        "high_response": "Amazing news! Let's celebrate together, tell me everything about how it happened!",
        "low_response": "Congratulations. That is good news. Take a quiet moment to enjoy it.",
    }
    return "Here you go:\n```json\n" + json.dumps(item) + "\n```"


def test_extract_json_finds_the_object_in_prose() -> None:
    assert extract_json('sure! {"a": {"b": "}"}} trailing') == {"a": {"b": "}"}}
    with pytest.raises(ValueError):
        extract_json("no json here")


def test_synth_writes_schema_rows_and_deduplicates(tmp_path: Path, fake_encoder) -> None:
    replies = [
        _teacher_item("I got the job!!", {"openness_high": 1.0}),  # item 0 asks for openness_high
        _teacher_item("I got the job!!", {"openness_high": 1.0}),  # exact duplicate
        "I cannot help with that.",  # no JSON
    ]
    teacher = FakeListChatModel(responses=replies)
    result = synthesize(teacher, 3, encoder=fake_encoder, seed=0, existing_texts=["an old situation"], id_prefix="t")
    assert len(result.situations) == 1 and len(result.responses) == 2
    assert {r.expert for r in result.responses} == {"openness_high", "openness_low"}
    assert len(result.rejected) == 2
    written = append_to_corpus(result, tmp_path, tag="t")
    assert sorted(p.name for p in written) == ["responses_openness_t.jsonl", "situations_t.jsonl"]
    row = json.loads((tmp_path / "situations_t.jsonl").read_text().splitlines()[0])
    Situation.model_validate(row)


def test_synth_rejects_a_label_for_the_wrong_pole(fake_encoder) -> None:
    teacher = FakeListChatModel(responses=[_teacher_item("Party!", {"extraversion_high": 1.0})])
    result = synthesize(teacher, 1, encoder=fake_encoder)
    assert not result.situations and "strongest pole" in result.rejected[0]


def test_deduplicator_rejects_near_duplicates(fake_encoder) -> None:
    dedup = Deduplicator(fake_encoder, ["My order arrived broken"], threshold=0.9)
    assert not dedup.accept("my order arrived broken!")
    assert dedup.accept("Completely different topic about gardening")


def test_epochs_per_expert_override_is_validated() -> None:
    from persona_agents.training.config import ExpertTraining

    settings = ExpertTraining(epochs=3, epochs_per_expert={"neuroticism_low": 5})
    assert settings.epochs_for("neuroticism_low") == 5 and settings.epochs_for("openness_high") == 3
    with pytest.raises(ValueError, match="unknown expert"):
        ExpertTraining(epochs_per_expert={"calm": 5})


def test_shipped_training_config_loads() -> None:
    from persona_agents.training.config import DEFAULT_CONFIG

    config = TrainConfig.from_file(DEFAULT_CONFIG)
    assert config.lora.target_modules == ["q_proj", "v_proj", "o_proj"]
    with pytest.raises(ValueError, match="no training config"):
        TrainConfig.from_file("/nonexistent/config.json")
