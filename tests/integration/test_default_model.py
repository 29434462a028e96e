"""The real default model (SmolLM2-135M-Instruct + the shipped bundle), end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from persona_agents.config import EngineConfig
from persona_agents.engine import GenerationParams, PersonaFuseEngine
from persona_agents.traits import EXPERT_NAMES

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
MESSAGE = "I failed my exam and feel awful"
PARAMS = GenerationParams(max_new_tokens=24)


@pytest.fixture(scope="module")
def engine() -> Iterator[PersonaFuseEngine]:
    engine = PersonaFuseEngine.load(EngineConfig(device="cpu"))
    yield engine
    engine.mixer.remove()


def cli() -> list[str]:
    script = ROOT / ".venv" / "bin" / "persona-agents"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "graphs.apps.cli"]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PERSONA_AGENTS_") or k == "PERSONA_AGENTS_HOME"
    }
    env["PERSONA_AGENTS_DEVICE"] = "cpu"
    return subprocess.run(
        [*cli(), *args], check=False, capture_output=True, text=True, timeout=120, env=env, cwd=ROOT
    )


def test_generate_a_short_reply(engine: PersonaFuseEngine) -> None:
    result = engine.generate(MESSAGE, params=PARAMS)
    assert result.text.strip()
    assert 1 <= result.output_tokens <= 24
    assert result.routed
    assert sum(result.weights.values) == pytest.approx(1.0, abs=1e-6)
    assert engine.model_name == "HuggingFaceTB/SmolLM2-135M-Instruct"


def test_route_weights_sum_to_one(engine: PersonaFuseEngine) -> None:
    routed = engine.route(
        [
            {"role": "user", "content": "The parcel never came."},
            {"role": "user", "content": MESSAGE},
        ]
    )
    assert list(routed.weights.as_dict()) == list(EXPERT_NAMES)
    assert sum(routed.weights.values) == pytest.approx(1.0, abs=1e-6)
    assert len(routed.top_traits) == 2


def test_stream(engine: PersonaFuseEngine) -> None:
    pieces = list(engine.stream(MESSAGE, params=GenerationParams(max_new_tokens=16)))
    final = pieces[-1].final
    assert final is not None and final.text
    assert "".join(p.text for p in pieces[:-1]) == final.text


def test_cli_generate_json() -> None:
    proc = run_cli("generate", "--message", MESSAGE, "--json", "--max-tokens", "24")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["text"].strip()
    assert list(out["persona_weights"]) == list(EXPERT_NAMES)
    assert sum(out["persona_weights"].values()) == pytest.approx(1.0, abs=1e-6)
    assert len(out["top_traits"]) == 2
    assert out["usage"]["input_tokens"] > 0
    assert 1 <= out["usage"]["output_tokens"] <= 24


def test_cli_route_json() -> None:
    proc = run_cli("route", "--message", MESSAGE, "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert len(out["persona_weights"]) == 10
    assert sum(out["persona_weights"].values()) == pytest.approx(1.0, abs=1e-6)
    assert set(out["trait_scores"]) == {
        "openness",
        "conscientiousness",
        "extraversion",
        "agreeableness",
        "neuroticism",
    }


@pytest.mark.parametrize("command", ["generate", "route"])
def test_cli_empty_message_exits_2(command: str) -> None:
    proc = run_cli(command, "--message", "   ", "--json")
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "persona-agents: error: message 0 (user) is empty" in proc.stderr


def test_cli_bad_weights_exit_2() -> None:
    proc = run_cli("generate", "--message", MESSAGE, "--weights", '{"charm_high": 1}', "--json")
    assert proc.returncode == 2
    assert "unknown expert name(s): charm_high" in proc.stderr
