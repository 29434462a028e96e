"""The exact expert mixer against peft and a hand-merged dense reference."""

from __future__ import annotations

import copy
import threading
from pathlib import Path

import pytest
import torch
from torch import nn

from persona_agents.mixer import ExpertFormatError, ExpertMixer, LoraExpert, load_peft_expert
from persona_agents.traits import EXPERT_NAMES, NUM_EXPERTS

ATOL = 1e-4


@pytest.fixture
def input_ids(tiny_tokenizer) -> torch.Tensor:
    text = "<|im_start|>user\nI lost my keys again, what now?<|im_end|>\n<|im_start|>assistant\n"
    return torch.tensor([tiny_tokenizer.encode(text)])


def logits_of(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return model(input_ids=ids).logits.float()


def greedy(model: nn.Module, ids: torch.Tensor, n: int = 8) -> list[int]:
    with torch.inference_mode():
        out = model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=n,
            min_new_tokens=n,
            do_sample=False,
        )
    return out[0, ids.shape[1] :].tolist()


def one_hot(k: int) -> list[float]:
    return [1.0 if i == k else 0.0 for i in range(NUM_EXPERTS)]


def dense_reference(model: nn.Module, experts: list[LoraExpert], weights: list[float]) -> nn.Module:
    """A copy of ``model`` with sum_i w_i * s_i * B_i A_i added into each target weight."""
    merged = copy.deepcopy(model)
    modules = dict(merged.named_modules())
    with torch.no_grad():
        for path in experts[0].factors:
            delta = sum(
                w * e.scaling * (e.factors[path][1].double() @ e.factors[path][0].double())
                for w, e in zip(weights, experts)
            )
            modules[path].weight += delta.to(modules[path].weight.dtype)
    return merged


def test_loaded_experts_are_nonzero_and_well_formed(tiny_experts: list[LoraExpert]) -> None:
    assert [e.name for e in tiny_experts] == list(EXPERT_NAMES)
    for expert in tiny_experts:
        assert expert.rank == 4
        assert expert.scaling == pytest.approx(2.0)  # alpha 8 / r 4
        assert len(expert.factors) == 4  # q_proj and v_proj in two layers
        assert all(path.startswith("model.layers.") for path in expert.factors)
        assert all(b.abs().sum() > 0 for _, b in expert.factors.values())


def test_one_hot_matches_peft_for_every_expert(
    tiny_model: nn.Module,
    tiny_experts: list[LoraExpert],
    expert_dirs: dict[str, Path],
    input_ids: torch.Tensor,
) -> None:
    from peft import PeftModel

    reference_base = copy.deepcopy(tiny_model)
    mixer = ExpertMixer(tiny_model, tiny_experts)
    with mixer.active(None):
        base_logits = logits_of(tiny_model, input_ids)
    for k, name in enumerate(EXPERT_NAMES):
        peft_model = PeftModel.from_pretrained(
            copy.deepcopy(reference_base), str(expert_dirs[name])
        ).eval()
        expected = logits_of(peft_model, input_ids)
        expected_tokens = greedy(peft_model, input_ids)
        with mixer.active(one_hot(k)):
            got = logits_of(tiny_model, input_ids)
            got_tokens = greedy(tiny_model, input_ids)
        torch.testing.assert_close(got, expected, atol=ATOL, rtol=0, msg=f"expert {name}")
        assert got_tokens == expected_tokens, name
        # the expert really changes the model, so the comparison above means something
        assert (expected - base_logits).abs().max() > 1e-3, name


def test_random_mixture_matches_dense_merge(
    tiny_model: nn.Module, tiny_experts: list[LoraExpert], input_ids: torch.Tensor
) -> None:
    generator = torch.Generator().manual_seed(7)
    weights = torch.softmax(torch.randn(NUM_EXPERTS, generator=generator), 0).tolist()
    reference = dense_reference(tiny_model, tiny_experts, weights)
    mixer = ExpertMixer(tiny_model, tiny_experts)
    with mixer.active(weights):
        got = logits_of(tiny_model, input_ids)
    expected = logits_of(reference, input_ids)
    torch.testing.assert_close(got, expected, atol=ATOL, rtol=0)
    # and it is not the same as any single expert or the uniform mixture
    with mixer.active([1 / NUM_EXPERTS] * NUM_EXPERTS):
        uniform = logits_of(tiny_model, input_ids)
    assert (uniform - expected).abs().max() > 1e-4


def test_per_row_weights_equal_separate_runs(
    tiny_model: nn.Module, tiny_experts: list[LoraExpert], input_ids: torch.Tensor
) -> None:
    mixer = ExpertMixer(tiny_model, tiny_experts)
    rows = torch.tensor(
        [
            one_hot(0),
            one_hot(7),
            torch.softmax(torch.arange(NUM_EXPERTS, dtype=torch.float32), 0).tolist(),
        ]
    )
    batch = input_ids.repeat(3, 1)
    with mixer.active(rows):
        batched = logits_of(tiny_model, batch)
    for i in range(3):
        with mixer.active(rows[i]):
            single = logits_of(tiny_model, input_ids)
        torch.testing.assert_close(batched[i : i + 1], single, atol=1e-5, rtol=0)
    assert (batched[0] - batched[1]).abs().max() > 1e-3


def test_single_weight_vector_broadcasts_over_batch(
    tiny_model: nn.Module, tiny_experts: list[LoraExpert], input_ids: torch.Tensor
) -> None:
    mixer = ExpertMixer(tiny_model, tiny_experts)
    with mixer.active(one_hot(3)):
        batched = logits_of(tiny_model, input_ids.repeat(2, 1))
        single = logits_of(tiny_model, input_ids)
    torch.testing.assert_close(batched[1:], single, atol=1e-5, rtol=0)


def test_active_none_and_remove_give_the_base_model(
    tiny_model: nn.Module, tiny_experts: list[LoraExpert], input_ids: torch.Tensor
) -> None:
    base = logits_of(tiny_model, input_ids)
    mixer = ExpertMixer(tiny_model, tiny_experts)
    # outside active() nothing is added either
    assert torch.equal(logits_of(tiny_model, input_ids), base)
    with mixer.active(one_hot(0)):
        with mixer.active(None):  # nested: base model inside a persona block
            assert torch.equal(logits_of(tiny_model, input_ids), base)
        assert not torch.allclose(logits_of(tiny_model, input_ids), base, atol=1e-4)
    assert torch.equal(logits_of(tiny_model, input_ids), base)
    mixer.remove()
    with mixer.active(one_hot(0)):
        assert torch.equal(logits_of(tiny_model, input_ids), base)


def test_target_modules(tiny_model: nn.Module, tiny_experts: list[LoraExpert]) -> None:
    mixer = ExpertMixer(tiny_model, tiny_experts)
    assert mixer.expert_names == EXPERT_NAMES
    assert sorted(mixer.target_modules) == [
        f"model.layers.{i}.self_attn.{p}" for i in range(2) for p in ("q_proj", "v_proj")
    ]


@pytest.mark.parametrize(
    "weights",
    [
        [0.1] * 9,
        [[0.1] * 11],
        torch.full((2, 3, NUM_EXPERTS), 0.1),
        [float("nan")] + [0.1] * 9,
        [float("inf")] + [0.0] * 9,
    ],
    ids=["nine", "eleven", "3d", "nan", "inf"],
)
def test_bad_weight_shapes_raise(
    tiny_model: nn.Module, tiny_experts: list[LoraExpert], weights: object
) -> None:
    mixer = ExpertMixer(tiny_model, tiny_experts)
    with pytest.raises(ValueError, match="persona weights must"), mixer.active(weights):
        pass
    assert mixer._row_weights is None  # a failed activation leaves no state behind


def test_row_count_must_match_batch(
    tiny_model: nn.Module, tiny_experts: list[LoraExpert], input_ids: torch.Tensor
) -> None:
    mixer = ExpertMixer(tiny_model, tiny_experts)
    with (
        mixer.active([one_hot(0), one_hot(1)]),
        pytest.raises(RuntimeError, match="2 rows but the batch has 3"),
    ):
        logits_of(tiny_model, input_ids.repeat(3, 1))


def test_no_experts_raise(tiny_model: nn.Module) -> None:
    with pytest.raises(ValueError, match="at least one expert"):
        ExpertMixer(tiny_model, [])


def _replace(expert: LoraExpert, **changes: object) -> LoraExpert:
    return LoraExpert(
        name=changes.get("name", expert.name),
        scaling=expert.scaling,
        factors=changes.get("factors", dict(expert.factors)),
    )


def test_experts_with_different_targets_raise(
    tiny_model: nn.Module, tiny_experts: list[LoraExpert]
) -> None:
    factors = dict(tiny_experts[1].factors)
    factors.pop("model.layers.1.self_attn.v_proj")
    experts = [tiny_experts[0], _replace(tiny_experts[1], factors=factors)]
    with pytest.raises(
        ExpertFormatError, match="'openness_high' and 'openness_low' target different modules"
    ) as info:
        ExpertMixer(tiny_model, experts)
    assert "model.layers.1.self_attn.v_proj" in str(info.value)


def test_expert_with_wrong_shape_raises(
    tiny_model: nn.Module, tiny_experts: list[LoraExpert]
) -> None:
    path = "model.layers.0.self_attn.q_proj"
    factors = dict(tiny_experts[2].factors)
    a, b = factors[path]
    factors[path] = (torch.zeros(a.shape[0], 48), b)  # in_features 48, the model has 32
    experts = list(tiny_experts)
    experts[2] = _replace(tiny_experts[2], factors=factors)
    with pytest.raises(ExpertFormatError) as info:
        ExpertMixer(tiny_model, experts)
    message = str(info.value)
    assert "conscientiousness_high" in message and path in message
    assert "(4, 48)" in message and "another base model" in message


def test_expert_for_a_module_the_model_lacks(
    tiny_model: nn.Module, tiny_experts: list[LoraExpert]
) -> None:
    a, b = next(iter(tiny_experts[0].factors.values()))
    experts = [
        _replace(e, factors={"model.layers.9.self_attn.q_proj": (a, b)}) for e in tiny_experts
    ]
    with pytest.raises(
        ExpertFormatError, match=r"model\.layers\.9\.self_attn\.q_proj.*does not have"
    ):
        ExpertMixer(tiny_model, experts)


def test_expert_targeting_a_non_linear_module(
    tiny_model: nn.Module, tiny_experts: list[LoraExpert]
) -> None:
    a, b = torch.zeros(4, 32), torch.zeros(32, 4)
    experts = [
        _replace(e, factors={"model.layers.0.input_layernorm": (a, b)}) for e in tiny_experts
    ]
    with pytest.raises(ExpertFormatError, match="LlamaRMSNorm; only nn.Linear"):
        ExpertMixer(tiny_model, experts)


def test_load_peft_expert_errors(tmp_path: Path, expert_dirs: dict[str, Path]) -> None:
    import shutil

    with pytest.raises(ExpertFormatError, match="missing .*adapter_config.json"):
        load_peft_expert("openness_high", tmp_path / "nowhere")
    broken = tmp_path / "broken"
    shutil.copytree(expert_dirs["openness_high"], broken)
    (broken / "adapter_model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ExpertFormatError, match="openness_high.*unreadable weights"):
        load_peft_expert("openness_high", broken)
    bad_json = tmp_path / "bad_json"
    shutil.copytree(expert_dirs["openness_high"], bad_json)
    (bad_json / "adapter_config.json").write_text("{not json")
    with pytest.raises(ExpertFormatError, match="unreadable adapter_config.json"):
        load_peft_expert("openness_high", bad_json)


def test_load_peft_expert_rank_mismatch(tmp_path: Path, expert_dirs: dict[str, Path]) -> None:
    import json
    import shutil

    wrong = tmp_path / "wrong_rank"
    shutil.copytree(expert_dirs["openness_high"], wrong)
    config = json.loads((wrong / "adapter_config.json").read_text())
    config["r"] = 8
    (wrong / "adapter_config.json").write_text(json.dumps(config))
    with pytest.raises(ExpertFormatError, match="do not match rank 8"):
        load_peft_expert("openness_high", wrong)


def test_concurrent_requests_never_share_weights(
    tiny_model: nn.Module, tiny_experts: list[LoraExpert], input_ids: torch.Tensor
) -> None:
    mixer = ExpertMixer(tiny_model, tiny_experts)
    experts = [0, 3, 6, 9]
    expected = {}
    for k in experts:
        with mixer.active(one_hot(k)):
            expected[k] = logits_of(tiny_model, input_ids)
    for a in experts:
        for b in experts:
            if a != b:
                assert (expected[a] - expected[b]).abs().max() > 1e-3
    failures: list[str] = []
    barrier = threading.Barrier(len(experts))

    def worker(k: int) -> None:
        barrier.wait()
        for step in range(15):
            with mixer.active(one_hot(k)):
                got = logits_of(tiny_model, input_ids)
            if not torch.allclose(got, expected[k], atol=1e-6, rtol=0):
                failures.append(f"expert {k} step {step}")

    threads = [threading.Thread(target=worker, args=(k,)) for k in experts]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    assert failures == []
