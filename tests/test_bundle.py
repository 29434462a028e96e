"""Bundle save/load round trip, peft interchange and the error messages for broken bundles."""

from __future__ import annotations

import copy
import json
import shutil
import stat
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import persona_agents.engine as engine_module
from persona_agents.bundle import (
    FORMAT_VERSION,
    BundleError,
    BundleManifest,
    PersonaFuseBundle,
    read_manifest,
    untrained_experts,
)
from persona_agents.config import EngineConfig, default_bundle_dir
from persona_agents.engine import GenerationParams, PersonaFuseEngine
from persona_agents.mixer import ExpertMixer
from persona_agents.traits import EXPERT_NAMES

from .conftest import TINY_LORA, FakeEncoder


@pytest.fixture
def saved(tiny_bundle: PersonaFuseBundle, tmp_path: Path) -> Path:
    return tiny_bundle.save(tmp_path / "bundle")


def test_round_trip(tiny_bundle: PersonaFuseBundle, saved: Path) -> None:
    assert (saved / "manifest.json").is_file()
    assert (saved / "router.safetensors").is_file()
    assert sorted(p.name for p in (saved / "experts").iterdir()) == sorted(EXPERT_NAMES)
    loaded = PersonaFuseBundle.load(saved)
    assert loaded.path == saved
    assert loaded.manifest == tiny_bundle.manifest
    assert [e.name for e in loaded.experts] == list(EXPERT_NAMES)
    for original, back in zip(tiny_bundle.experts, loaded.experts):
        assert back.scaling == pytest.approx(original.scaling)
        assert set(back.factors) == set(original.factors)
        for path, (a, b) in original.factors.items():
            a2, b2 = back.factors[path]
            assert a2.dtype == torch.float16  # stored as fp16
            torch.testing.assert_close(a2.float(), a, atol=1e-3, rtol=1e-3)
            torch.testing.assert_close(b2.float(), b, atol=1e-3, rtol=1e-3)
    for key, value in tiny_bundle.router_head.state_dict().items():
        assert torch.equal(loaded.router_head.state_dict()[key], value), key


def test_saved_bundle_is_readable_by_others(saved: Path) -> None:
    for path in [saved, *saved.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode & stat.S_IROTH, f"{path} is not world-readable ({oct(mode)})"


def test_peft_loads_an_expert_our_bundle_saved(
    tiny_model: torch.nn.Module, saved: Path, tiny_tokenizer
) -> None:
    from peft import PeftModel

    loaded = PersonaFuseBundle.load(saved)
    ids = torch.tensor([tiny_tokenizer.encode("How are you today?")])
    peft_model = PeftModel.from_pretrained(
        copy.deepcopy(tiny_model), str(saved / "experts" / "extraversion_low")
    ).eval()
    mixer = ExpertMixer(tiny_model, loaded.experts)
    k = EXPERT_NAMES.index("extraversion_low")
    with torch.inference_mode():
        expected = peft_model(input_ids=ids).logits
        with mixer.active([float(i == k) for i in range(10)]):
            got = tiny_model(input_ids=ids).logits
        with mixer.active(None):
            base = tiny_model(input_ids=ids).logits
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)
    assert (expected - base).abs().max() > 1e-3


def test_save_replaces_an_existing_bundle_whole(
    tiny_bundle: PersonaFuseBundle, saved: Path
) -> None:
    (saved / "stale.txt").write_text("left over")
    (saved / "experts" / "old_expert").mkdir()
    tiny_bundle.manifest.notes = "second save"
    tiny_bundle.save(saved)
    assert not (saved / "stale.txt").exists()
    assert not (saved / "experts" / "old_expert").exists()
    assert read_manifest(saved).notes == "second save"
    # no temporary or backup folders are left beside it
    assert sorted(p.name for p in saved.parent.iterdir()) == ["bundle"]
    PersonaFuseBundle.load(saved)


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="folder does not exist"):
        PersonaFuseBundle.load(tmp_path / "nope")


def test_missing_manifest(saved: Path) -> None:
    (saved / "manifest.json").unlink()
    with pytest.raises(BundleError, match="missing manifest.json"):
        PersonaFuseBundle.load(saved)


@pytest.mark.parametrize("content", ["{not json", "\xff\xfe", ""])
def test_manifest_not_json(saved: Path, content: str) -> None:
    (saved / "manifest.json").write_text(content, encoding="latin-1")
    with pytest.raises(BundleError, match="manifest.json is not valid JSON"):
        PersonaFuseBundle.load(saved)


def test_manifest_not_an_object(saved: Path) -> None:
    (saved / "manifest.json").write_text("[1, 2]")
    with pytest.raises(BundleError, match="must hold a JSON object"):
        PersonaFuseBundle.load(saved)


def _edit_manifest(saved: Path, **changes: object) -> None:
    raw = json.loads((saved / "manifest.json").read_text())
    raw.update(changes)
    (saved / "manifest.json").write_text(json.dumps(raw))


def test_future_format_version(saved: Path) -> None:
    _edit_manifest(saved, format_version=FORMAT_VERSION + 1)
    with pytest.raises(
        BundleError, match=f"format version {FORMAT_VERSION + 1} is newer.*upgrade persona-agents"
    ):
        PersonaFuseBundle.load(saved)


def test_wrong_expert_names(saved: Path) -> None:
    names = list(EXPERT_NAMES)
    names[0], names[1] = names[1], names[0]
    _edit_manifest(saved, expert_names=names)
    with pytest.raises(
        BundleError, match="(?s)invalid manifest.json.*expert_names must be exactly"
    ):
        PersonaFuseBundle.load(saved)


def test_unknown_manifest_field(saved: Path) -> None:
    _edit_manifest(saved, colour="blue")
    with pytest.raises(BundleError, match="(?s)invalid manifest.json.*colour"):
        PersonaFuseBundle.load(saved)


def test_missing_base_model_in_manifest(saved: Path) -> None:
    raw = json.loads((saved / "manifest.json").read_text())
    del raw["base_model"]
    (saved / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(BundleError, match="base_model"):
        PersonaFuseBundle.load(saved)


def test_missing_expert_file(saved: Path) -> None:
    (saved / "experts" / "agreeableness_low" / "adapter_model.safetensors").unlink()
    with pytest.raises(BundleError, match="agreeableness_low.*missing .*adapter_model.safetensors"):
        PersonaFuseBundle.load(saved)


def test_missing_expert_folder(saved: Path) -> None:
    shutil.rmtree(saved / "experts" / "neuroticism_high")
    with pytest.raises(BundleError, match="neuroticism_high.*missing"):
        PersonaFuseBundle.load(saved)


def test_corrupt_adapter_safetensors(saved: Path) -> None:
    file = saved / "experts" / "openness_low" / "adapter_model.safetensors"
    file.write_bytes(file.read_bytes()[:100])
    with pytest.raises(BundleError, match=f"bundle {saved}.*openness_low.*unreadable weights"):
        PersonaFuseBundle.load(saved)


def test_expert_rank_differs_from_manifest(saved: Path) -> None:
    _edit_manifest(
        saved, lora={"r": 8, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]}
    )
    with pytest.raises(BundleError, match="rank 4 but the manifest says 8"):
        PersonaFuseBundle.load(saved)


def test_router_tensor_of_wrong_shape(saved: Path) -> None:
    state = load_file(str(saved / "router.safetensors"))
    state["experts.weight"] = torch.zeros(10, 64)
    save_file(state, str(saved / "router.safetensors"))
    with pytest.raises(BundleError, match=r"experts.weight has shape \(10, 64\), expected \(10, 256\)"):
        PersonaFuseBundle.load(saved)


def test_router_tensor_missing(saved: Path) -> None:
    state = load_file(str(saved / "router.safetensors"))
    del state["experts.bias"]
    save_file(state, str(saved / "router.safetensors"))
    with pytest.raises(BundleError, match="router weights .* have tensors"):
        PersonaFuseBundle.load(saved)


def test_missing_router_file(saved: Path) -> None:
    (saved / "router.safetensors").unlink()
    with pytest.raises(BundleError, match="missing router weights .*router.safetensors"):
        PersonaFuseBundle.load(saved)


def test_corrupt_router_file(saved: Path) -> None:
    (saved / "router.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(BundleError, match="corrupt router weights"):
        PersonaFuseBundle.load(saved)


def test_constructor_checks_expert_order(tiny_bundle: PersonaFuseBundle) -> None:
    with pytest.raises(BundleError, match="in that order"):
        PersonaFuseBundle(
            tiny_bundle.manifest, list(reversed(tiny_bundle.experts)), tiny_bundle.router_head
        )


def test_untrained_experts_have_no_effect(tiny_model: torch.nn.Module, tiny_tokenizer) -> None:
    experts = untrained_experts(tiny_model, TINY_LORA)
    assert [e.name for e in experts] == list(EXPERT_NAMES)
    assert all(a.abs().sum() > 0 and not b.any() for e in experts for a, b in e.factors.values())
    ids = torch.tensor([tiny_tokenizer.encode("hello")])
    mixer = ExpertMixer(tiny_model, experts)
    with torch.inference_mode():
        with mixer.active(None):
            base = tiny_model(input_ids=ids).logits
        with mixer.active([0.1] * 10):
            mixed = tiny_model(input_ids=ids).logits
    torch.testing.assert_close(mixed, base, atol=1e-6, rtol=0)


def test_untrained_experts_need_matching_targets(tiny_model: torch.nn.Module) -> None:
    from persona_agents.bundle import LoraSettings

    with pytest.raises(BundleError, match="no Linear layers named"):
        untrained_experts(tiny_model, LoraSettings(target_modules=["c_attn"]))


def test_shipped_default_bundle_loads() -> None:
    bundle = PersonaFuseBundle.load(default_bundle_dir())
    assert bundle.manifest.base_model == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert [e.name for e in bundle.experts] == list(EXPERT_NAMES)


# --- the engine refuses a bundle made for another base model -------------------------------------


def test_engine_load_refuses_a_bundle_for_another_base_model(
    saved: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def must_not_load(config: EngineConfig) -> None:
        raise AssertionError("the base model must not be loaded for a mismatched bundle")

    monkeypatch.setattr(engine_module, "load_base_model", must_not_load)
    config = EngineConfig(base_model="default", bundle=str(saved), device="cpu")
    with pytest.raises(BundleError) as info:
        PersonaFuseEngine.load(config)
    message = str(info.value)
    assert "'tiny-llama'" in message and "'HuggingFaceTB/SmolLM2-135M-Instruct'" in message
    assert "check_base_model=False" in message


def test_engine_load_with_matching_or_unchecked_base(
    saved: Path, monkeypatch: pytest.MonkeyPatch, tiny_model: torch.nn.Module, tiny_tokenizer
) -> None:
    loaded_with: list[EngineConfig] = []

    def fake_load(config: EngineConfig):
        loaded_with.append(config)
        return tiny_model, tiny_tokenizer

    monkeypatch.setattr(engine_module, "load_base_model", fake_load)
    monkeypatch.setattr(engine_module, "shared_encoder", lambda device="cpu": FakeEncoder())
    for config in (
        EngineConfig(base_model="tiny-llama", bundle=str(saved), device="cpu"),
        EngineConfig(base_model="default", bundle=str(saved), device="cpu", check_base_model=False),
    ):
        engine = PersonaFuseEngine.load(config)
        assert engine.bundle.path == saved
        result = engine.generate("hi", params=GenerationParams(max_new_tokens=3))
        assert result.output_tokens >= 1 and result.routed
        engine.mixer.remove()
    assert [c.check_base_model for c in loaded_with] == [True, False]


def test_manifest_defaults() -> None:
    manifest = BundleManifest(base_model="x")
    assert manifest.expert_names == list(EXPERT_NAMES)
    assert manifest.untrained_parts == ["experts", "router"]
