"""Shared fixtures: a tiny Llama, a tiny byte-level tokenizer, ten non-zero LoRA experts,
a fake situation encoder and a tiny PersonaFuse bundle and engine, all built in-process."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

from persona_agents.bundle import BundleManifest, LoraSettings, PersonaFuseBundle
from persona_agents.config import EngineConfig
from persona_agents.encoder import MiniLMEncoder
from persona_agents.engine import PersonaFuseEngine
from persona_agents.mixer import LoraExpert, load_peft_expert
from persona_agents.router import RouterHead, RouterSettings
from persona_agents.traits import EXPERT_NAMES
from tests.postgres_server import RunningPostgres

torch.set_num_threads(1)

SPECIAL_TOKENS = ["<|im_start|>", "<|im_end|>", "<pad>"]
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
TINY_LORA = LoraSettings(r=4, alpha=8, target_modules=["q_proj", "v_proj"])
FAKE_DIM = 384


def build_tiny_tokenizer() -> PreTrainedTokenizerFast:
    """Byte-level BPE without merges: one token per byte, plus the ChatML special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from tokenizers.pre_tokenizers import ByteLevel

    alphabet = ByteLevel.alphabet()
    vocab = {ch: i for i, ch in enumerate(sorted(alphabet))}
    assert len(vocab) == 256
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(SPECIAL_TOKENS)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<pad>",
        bos_token=None,
    )
    fast.chat_template = CHATML_TEMPLATE
    return fast


def build_tiny_model(vocab_size: int, eos_id: int, pad_id: int, seed: int = 0) -> LlamaForCausalLM:
    from transformers import LlamaConfig

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=64,
        max_position_embeddings=2048,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
        bos_token_id=None,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config).eval()
    model.generation_config.eos_token_id = eos_id
    model.generation_config.pad_token_id = pad_id
    model.generation_config.bos_token_id = None
    return model


class FakeEncoder:
    """Deterministic stand-in for MiniLM: character trigrams hashed into a unit 384-d vector."""

    dim = FAKE_DIM

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def encode(self, texts: list[str]) -> torch.Tensor:
        self.calls.append(list(texts))
        out = torch.zeros(len(texts), self.dim)
        for row, text in enumerate(texts):
            padded = f"  {text.lower()}  "
            for i in range(len(padded) - 2):
                digest = hashlib.md5(padded[i : i + 3].encode("utf-8", "replace")).digest()
                index = int.from_bytes(digest[:4], "little") % self.dim
                out[row, index] += 1.0 if digest[4] & 1 else -1.0
        return torch.nn.functional.normalize(out, dim=-1)


def make_trained_head(settings: RouterSettings | None = None, seed: int = 1) -> RouterHead:
    """A router head with random (non-zero) expert rows: gives non-uniform weights."""
    settings = settings or RouterSettings(trained=True)
    torch.manual_seed(seed)
    head = RouterHead(settings)
    with torch.no_grad():
        head.experts.weight.normal_()
    return head.eval()


# --- session-scoped building blocks -------------------------------------------------------


@pytest.fixture(scope="session")
def tiny_tokenizer() -> PreTrainedTokenizerFast:
    return build_tiny_tokenizer()


@pytest.fixture(scope="session")
def _tiny_model_master(tiny_tokenizer: PreTrainedTokenizerFast) -> LlamaForCausalLM:
    return build_tiny_model(
        len(tiny_tokenizer), tiny_tokenizer.eos_token_id, tiny_tokenizer.pad_token_id
    )


@pytest.fixture
def tiny_model(_tiny_model_master: LlamaForCausalLM) -> LlamaForCausalLM:
    """A fresh copy of the tiny model per test (hooks and peft wrappers never leak)."""
    import copy

    return copy.deepcopy(_tiny_model_master).eval()


@pytest.fixture(scope="session")
def expert_dirs(
    _tiny_model_master: LlamaForCausalLM, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """Ten peft LoRA adapters (non-zero B) saved with save_pretrained, one folder per expert."""
    import copy

    from peft import LoraConfig, get_peft_model

    root = tmp_path_factory.mktemp("experts")
    dirs: dict[str, Path] = {}
    for index, name in enumerate(EXPERT_NAMES):
        torch.manual_seed(100 + index)
        config = LoraConfig(
            r=4,
            lora_alpha=8,
            target_modules=["q_proj", "v_proj"],
            init_lora_weights=False,
            lora_dropout=0.0,
        )
        peft_model = get_peft_model(copy.deepcopy(_tiny_model_master), config)
        dirs[name] = root / name
        peft_model.save_pretrained(str(dirs[name]))
    return dirs


@pytest.fixture(scope="session")
def tiny_experts(expert_dirs: dict[str, Path]) -> list[LoraExpert]:
    return [load_peft_expert(name, expert_dirs[name]) for name in EXPERT_NAMES]


@pytest.fixture(scope="session")
def fake_encoder() -> FakeEncoder:
    return FakeEncoder()


@pytest.fixture(scope="session")
def real_encoder() -> MiniLMEncoder:
    from persona_agents.encoder import shared_encoder

    return shared_encoder()


@pytest.fixture
def tiny_manifest() -> BundleManifest:
    return BundleManifest(
        base_model="tiny-llama",
        lora=TINY_LORA,
        router=RouterSettings(trained=True),
        experts_trained=True,
    )


@pytest.fixture
def tiny_bundle(tiny_manifest: BundleManifest, tiny_experts: list[LoraExpert]) -> PersonaFuseBundle:
    return PersonaFuseBundle(
        tiny_manifest, list(tiny_experts), make_trained_head(tiny_manifest.router)
    )


@pytest.fixture
def tiny_engine(
    tiny_model: LlamaForCausalLM,
    tiny_tokenizer: PreTrainedTokenizerFast,
    tiny_bundle: PersonaFuseBundle,
    fake_encoder: FakeEncoder,
) -> Iterator[PersonaFuseEngine]:
    # The graphs' system prompts (persona + strict regeneration) need ~900 tokens of the tiny tokenizer.
    config = EngineConfig(base_model="tiny-llama", device="cpu", max_input_tokens=1536)
    engine = PersonaFuseEngine(tiny_model, tiny_tokenizer, tiny_bundle, fake_encoder, config)
    engine.model_name = "tiny-llama"
    yield engine
    engine.mixer.remove()


# --- PostgreSQL ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[RunningPostgres]:
    """One private PostgreSQL server for the whole session (tests/postgres_server.py), stopped at
    the end. Fails (never skips) with the reason when no server can be started here."""
    from tests.postgres_server import PostgresUnavailable, methods_from_env, start_postgres

    try:
        server = start_postgres(methods_from_env())
    except PostgresUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres_url(postgres_server: RunningPostgres) -> str:
    """The session server's URL (a unix socket; every test uses its own thread ids)."""
    return postgres_server.url
