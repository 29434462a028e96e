"""The eval scripts end to end: CLI contracts (JSON on stdout, exit code 2 on bad data, --out)
and the generation paths on the tiny in-process engine (fake judge, peft arms)."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel

from evals import bench, persona, quality, router
from persona_agents.config import EngineConfig
from persona_agents.engine import PersonaFuseEngine
from persona_agents.traits import EXPERT_NAMES, TRAITS

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], check=False, cwd=ROOT, capture_output=True, text=True, timeout=600)


def _write(path: Path, rows: list[object]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


# --- CLI contracts --------------------------------------------------------------------------


def test_router_cli_json_and_out(tmp_path: Path) -> None:
    grief = "My dog died yesterday and the house feels empty."
    data = _write(tmp_path / "r.jsonl", [
        {"domain": "counseling", "text": grief, "expect": {"agreeableness": "high"}},
        {"domain": "customer_service", "text": "Charged twice. Fix it.", "expect": {"conscientiousness": "high", "extraversion": "low"}},
        {"domain": "counseling", "text": grief, "expect": {"agreeableness": "low"}},  # the same text, the other pole
    ])
    out = tmp_path / "report"
    proc = _run("evals.router", "--data", str(data), "--json", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)  # exactly one JSON object on stdout
    assert {"n", "agreement", "per_trait", "misses"} <= set(result)
    assert result["n"] == 3 and result["pairs"] == 4
    # whatever the router says about the grief message, exactly one of its two opposite rows misses
    grief_misses = [m for m in result["misses"] if m["id"] in {"line-1", "line-3"}]
    assert len(grief_misses) == 1 and grief_misses[0]["wrong_traits"] == ["agreeableness"]
    wrong = 0
    for miss in result["misses"]:  # each miss lists exactly the traits its own scores get wrong
        assert set(miss["trait_scores"]) == set(TRAITS)
        assert miss["wrong_traits"] == [t for t, pole in miss["expect"].items() if not router.sign_ok(miss["trait_scores"][t], pole)]
        wrong += len(miss["wrong_traits"])
    assert result["agreement"] == pytest.approx((4 - wrong) / 4)  # and the misses are all of them
    assert result["per_trait"]["agreeableness"] == {"agreement": 0.5, "n": 2}
    assert sorted(p.name for p in out.iterdir()) == ["router.json", "router.md", "router_agreement.png"]


class _FixedRouter:
    """Routes by the last user turn's text to fixed trait scores; records the conversations."""

    SCORES = {
        "grief": {"openness": 0.0, "conscientiousness": 0.1, "extraversion": -0.2, "agreeableness": 0.4, "neuroticism": -0.3},
        "charged twice": {"openness": -0.1, "conscientiousness": -0.2, "extraversion": 0.1, "agreeableness": 0.0, "neuroticism": 0.0},
    }

    def __init__(self) -> None:
        self.seen: list[list[str]] = []

    def route_many(self, conversations: list[list[Any]]) -> list[Any]:
        self.seen.extend([t.content for t in c] for c in conversations)
        return [SimpleNamespace(trait_scores=self.SCORES[c[-1].content], top_traits=["agreeableness_high"]) for c in conversations]


def test_router_evaluate_finds_exactly_the_misses() -> None:
    rows = [
        {"id": "g", "domain": "counseling", "text": "grief", "context": ["my dog died"],
         "expect": {"agreeableness": "high", "neuroticism": "low", "openness": "high"}},  # openness 0.0: wrong
        {"id": "c", "domain": "customer_service", "text": "charged twice", "context": [],
         "expect": {"conscientiousness": "high", "extraversion": "low"}},  # both wrong
    ]
    fixed = _FixedRouter()
    result = router.evaluate(fixed, rows)
    assert fixed.seen == [["my dog died", "grief"], ["charged twice"]]
    assert result["pairs"] == 5 and result["agreement"] == pytest.approx(2 / 5)
    assert [(m["id"], m["wrong_traits"]) for m in result["misses"]] == [("g", ["openness"]), ("c", ["conscientiousness", "extraversion"])]
    assert result["per_domain"] == {"counseling": pytest.approx(2 / 3), "customer_service": 0.0}
    assert result["per_trait"]["agreeableness"] == {"agreement": 1.0, "n": 1}
    assert result["per_pole"]["extraversion_low"] == {"agreement": 0.0, "n": 1}


@pytest.mark.parametrize(
    ("module", "extra", "content", "message"),
    [
        ("evals.router", [], '{"domain": "x", "text": "hi", "expect": {"openness": "up"}}', "unknown label 'up'"),
        ("evals.router", [], '{"domain": "x", "text": "hi"', "invalid JSON"),
        ("evals.persona", [], '{"trait": "wit", "prompt": "hello"}', "unknown trait 'wit'"),
        ("evals.quality", ["--domain", "customer_service"], '{"text": "bad", "rating": 0}', "'rating' must be"),
        ("evals.quality", ["--domain", "counseling"], "{not json}", ":1: invalid JSON"),
        ("evals.bench", [], '{"text": "only one"}', "at least 8 conversations"),
    ],
)
def test_bad_data_exits_2(tmp_path: Path, module: str, extra: list[str], content: str, message: str) -> None:
    data = _write(tmp_path / "bad.jsonl", [content])
    proc = _run(module, *extra, "--data", str(data), "--json")
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and proc.stderr.startswith("error:") and proc.stdout == ""


@pytest.mark.parametrize("module", ["evals.router", "evals.persona", "evals.bench"])
def test_missing_file_exits_2(tmp_path: Path, module: str) -> None:
    proc = _run(module, "--data", str(tmp_path / "nope.jsonl"))
    assert proc.returncode == 2 and "not found" in proc.stderr


def test_quality_bad_judge_spec_exits_2() -> None:
    proc = _run("evals.quality", "--domain", "counseling", "--judge", "no_such_module_xyz:judge", "--limit", "1")
    assert proc.returncode == 2 and "cannot import" in proc.stderr


def test_safety_scripts_write_reports(tmp_path: Path) -> None:
    proc = _run("evals.output_safety", "--json", "--out", str(tmp_path / "o"))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["n"] > 0
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["output_safety.json", "output_safety.md", "output_safety_per_kind.png"]


# --- judge loading ------------------------------------------------------------------------

FAKE_JUDGE = FakeListChatModel(responses=["A"])


def make_fake_judge() -> FakeListChatModel:
    return FakeListChatModel(responses=["B"])


def test_load_judge_instance_factory_and_errors() -> None:
    from evals.common import DataError, load_judge

    assert load_judge("tests.test_evals_cli:FAKE_JUDGE") is FAKE_JUDGE
    assert isinstance(load_judge("tests.test_evals_cli:make_fake_judge"), FakeListChatModel)
    with pytest.raises(DataError, match="package.module:attribute"):
        load_judge("tests.test_evals_cli")
    with pytest.raises(DataError, match="no attribute"):
        load_judge("tests.test_evals_cli:missing")
    with pytest.raises(DataError, match="not a LangChain chat model"):
        load_judge("tests.test_evals_cli:ROOT")


# --- generation paths on the tiny engine ----------------------------------------------------


@pytest.fixture
def roomy_engine(tiny_model, tiny_tokenizer, tiny_bundle, fake_encoder):
    """The tiny engine with room for the domain packs' long system prompts (one token per byte)."""
    config = EngineConfig(base_model="tiny-llama", device="cpu", max_input_tokens=2000)
    engine = PersonaFuseEngine(tiny_model, tiny_tokenizer, tiny_bundle, fake_encoder, config)
    yield engine
    engine.mixer.remove()


def test_quality_counseling_with_fake_judge(roomy_engine: PersonaFuseEngine) -> None:
    rows = [{"id": "a", "text": "I feel lonely.", "context": [{"role": "user", "content": "I moved."}]}, {"id": "b", "text": "I can't sleep.", "context": []}]
    answer = '{"active_listening": 6, "empathy_validation": 8, "safety": 9, "openness_non_judgment": 7, "clarity_encouragement": 5, "boundaries": 9, "holistic_approach": 4}'
    judge = FakeListChatModel(responses=[answer, "no idea"])  # cycles: one parsable answer per row and arm pair
    result = quality.evaluate(roomy_engine, "counseling", rows, judge=judge, max_tokens=4, batch_size=2)
    assert result["n"] == 2 and set(result["arms"]) == {"persona_fuse", "base"}
    per_arm = result["judge_scores"]["per_arm"]
    assert per_arm["persona_fuse"]["empathy_validation"] == 8.0 and per_arm["base"]["empathy_validation"] is None
    assert per_arm["persona_fuse"]["overall"] == pytest.approx(48 / 7)
    assert result["judge_scores"]["unparsed_answers"] == 2


def test_quality_counseling_checks_on_fixed_replies(monkeypatch: pytest.MonkeyPatch) -> None:
    """The deterministic checks and the output check on replies fixed here (no model)."""
    rows = [{"id": "a", "text": "I feel lonely since I moved.", "context": []}, {"id": "b", "text": "I can't sleep.", "context": []}]
    replies = {
        "persona_fuse": ["It sounds like you feel lonely. What has the move changed for you?", "You should stop taking your antidepressants."],
        "base": ["Moving is hard.", "Thanks for telling me."],
    }
    monkeypatch.setattr(quality.run, "generate_arms", lambda engine, domain, rows, **kwargs: replies)
    result = quality.evaluate(None, "counseling", rows)
    fuse, base = result["arms"]["persona_fuse"], result["arms"]["base"]
    assert fuse["unsafe_rate"] == 0.5 and base["unsafe_rate"] == 0.0
    assert result["rows"][1]["arms"]["persona_fuse"]["checks"]["unsafe"] is True
    assert fuse["reflection_rate"] == 0.5 and base["reflection_rate"] == 0.0
    assert fuse["open_question_rate"] == 0.5 and base["open_question_rate"] == 0.0
    assert result["judge"] == quality.JUDGE_SKIPPED


def test_quality_customer_service_pairwise_cancels_position_bias(roomy_engine: PersonaFuseEngine) -> None:
    rows = [{"id": "a", "text": "The courier lost my parcel.", "rating": 1, "product": "lamp"},
            {"id": "b", "text": "Lovely staff, great coffee.", "rating": 5, "product": None}]
    always_first = FakeListChatModel(responses=["A"])
    result = quality.evaluate(roomy_engine, "customer_service", rows, judge=always_first, max_tokens=4, batch_size=2)
    assert result["pairwise"]["win_rate"] == 0.5 and result["pairwise"]["position_consistency"] == 0.0
    prefers_persona = FakeListChatModel(responses=["A", "B"])  # persona first -> A, base first -> B
    result = quality.evaluate(roomy_engine, "customer_service", rows, judge=prefers_persona, max_tokens=4, batch_size=2)
    assert result["pairwise"]["win_rate"] == 1.0 and result["pairwise"]["wins"] == 2
    skipped = quality.evaluate(roomy_engine, "customer_service", rows, max_tokens=4)
    assert skipped["judge"] == quality.JUDGE_SKIPPED and "pairwise" not in skipped
    assert skipped["arms"]["base"]["tone_fits_rating_n"] == 2 and skipped["arms"]["base"]["complaints_addressed_n"] == 1
    markdown = quality.markdown(skipped)
    assert "judge skipped" in markdown


def test_quality_rescore_both_domains_without_a_model(tmp_path: Path) -> None:
    """A saved run's replies scored again: the headline per domain, no model loaded."""
    replies = {
        "counseling": ["You are not alone. You are not alone. You are not alone in this", "That sounds hard. What helps?"],
        "customer_service": ["Sorry! Call us on 0800 123 4567.", "Thank you! Our returns window is 60 days."],
    }
    saved = {"domains": {}}
    for domain in quality.DOMAINS:
        rows = quality.load_rows(ROOT / "evals" / "data" / f"quality_{domain}.jsonl", domain)[:1]
        saved["domains"][domain] = {"domain": domain, "rows": [
            {"id": rows[0]["id"], "arms": {"persona_fuse": {"reply": replies[domain][0]}, "base": {"reply": replies[domain][1]}}}
        ]}
    path = tmp_path / "saved.json"
    path.write_text(json.dumps(saved))
    proc = _run("evals.quality", "--rescore", str(path), "--limit", "1", "--json", "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    head = result["headline"]
    assert head["counseling"]["persona_fuse"]["repeated_run_rate"] == 1.0
    assert head["counseling"]["base"] == {"repeated_run_rate": 0.0, "ends_complete_rate": 1.0,
                                          "invented_contact_replies": 0, "invented_fact_replies": 0}
    assert head["customer_service"]["persona_fuse"]["invented_contact_replies"] == 1
    assert head["customer_service"]["base"]["invented_fact_replies"] == 1
    assert result["domains"]["counseling"]["rescored"] is True
    assert {p.name for p in (tmp_path / "out").iterdir()} >= {"quality_counseling.json", "quality_customer_service.md"}
    bad = _run("evals.quality", "--rescore", str(tmp_path / "missing.json"))
    assert bad.returncode == 2 and "--rescore: file not found" in bad.stderr
    lonely = _run("evals.quality", "--data", str(path))
    assert lonely.returncode == 2 and "--data needs --domain" in lonely.stderr


class _LengthClassifier:
    """Stand-in pole classifier: longer replies read as more 'high'."""

    def prob_high(self, trait: str, texts: list[str]) -> list[float]:
        return [min(1.0, len(t) / 40) for t in texts]


def test_persona_evaluate_runs_every_condition(roomy_engine: PersonaFuseEngine) -> None:
    prompts = {"openness": ["What should I do this weekend?", "Any idea for dinner?"], "neuroticism": ["My flight is tomorrow."]}
    result = persona.evaluate(roomy_engine, _LengthClassifier(), prompts, max_tokens=4, batch_size=2)
    assert set(result["per_expert"]) == {"openness_high", "openness_low", "neuroticism_high", "neuroticism_low"}
    assert result["per_trait"]["openness"]["n"] == 2 and result["n_experts"] == 4
    assert set(result["samples"][0]) >= set(persona.CONDITIONS)
    assert "persona" in persona.markdown({**result, "classifier_accuracy": {"openness": 0.9}}).lower()


def test_bench_on_tiny_model_peft_arms_are_exact(roomy_engine: PersonaFuseEngine, expert_dirs, _tiny_model_master, tmp_path: Path) -> None:
    import shutil

    dirs = {}
    for name in EXPERT_NAMES:  # with lora_dropout > 0, like the shipped bundle: the cat adapter must run in eval mode
        dirs[name] = Path(shutil.copytree(expert_dirs[name], tmp_path / name))
        config_file = dirs[name] / "adapter_config.json"
        config = json.loads(config_file.read_text())
        config_file.write_text(json.dumps({**config, "lora_dropout": 0.3}))
    result = bench.run_bench(roomy_engine, dirs, lambda: copy.deepcopy(_tiny_model_master), repeats=2, new_tokens=3)
    exact = result["exactness_max_abs_logit_diff_vs_mixture"]
    assert exact["peft_set_scale"] < 1e-4 and exact["peft_cat"] < 1e-4
    assert exact["base_model_for_scale"] > 1e-3  # the experts do change the logits
    assert all(v == [3] for v in result["tokens_generated"].values()), result["tokens_generated"]
    for key in ("mixture_over_base", "router_ms", "batch8_speedup", "peft_set_scale_over_base", "peft_cat_over_base",
                "prompt_only_over_base", "peak_rss_mb"):
        assert isinstance(result[key], float) and result[key] > 0, key
    assert all(len(result["timings_s"][arm]) == 2 for arm in bench.ARMS)
    assert roomy_engine.model.generation_config.min_new_tokens is None  # restored


def test_loop_sweep_counts_per_decoding(roomy_engine: PersonaFuseEngine) -> None:
    """Every message under every setting, once per decoding, each summarised on its own."""
    from evals.quality.sweep import run_sweep
    from persona_agents.generation import GenerationParams

    messages = [[{"role": "user", "content": "I feel lonely."}], [{"role": "user", "content": "The kettle broke."}]]
    params = {"raw": GenerationParams.raw(max_new_tokens=6), "defaults": GenerationParams(max_new_tokens=6)}
    result = run_sweep(roomy_engine, messages, params, temperatures=(0.0, 0.8), personas=("routed", "base"))
    assert result["messages"] == 2 and set(result["decodings"]) == {"raw", "defaults"}
    for name, summary in result["decodings"].items():
        assert summary["n"] == 8, name  # 2 messages x 2 temperatures x 2 personas
        assert 0.0 <= summary["repeated_phrase_share"] <= 1.0 and 0.0 <= summary["ends_complete_share"] <= 1.0
        assert summary["settings"]["max_new_tokens"] == 6
    assert result["decodings"]["defaults"]["settings"]["word_run_limit"] == 2
    assert result["decodings"]["raw"]["settings"]["word_run_limit"] == 0
