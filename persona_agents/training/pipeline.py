"""``persona-agents train``: experts -> router -> bundle -> held-out evaluation -> report.

Every stage is resumable: finished experts leave a marker in the work directory, and the
router and evaluation are cheap to recompute.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import torch

from persona_agents.base_model import base_model_identity, load_base_model
from persona_agents.bundle import BundleManifest, PersonaFuseBundle
from persona_agents.encoder import shared_encoder
from persona_agents.engine import GenerationParams, PersonaFuseEngine
from persona_agents.mixer import load_peft_expert
from persona_agents.training.config import TrainConfig
from persona_agents.training.corpus import (
    CORPUS_DIR,
    load_general_questions,
    load_responses,
    load_situations,
)
from persona_agents.training.evaluation import evaluate_experts, evaluate_general_ability
from persona_agents.training.experts import train_expert
from persona_agents.training.pole_classifier import EmbeddingPoleClassifier, LexicalPoleClassifier
from persona_agents.training.report import plot_losses, plot_pole_strength, write_report
from persona_agents.training.router_training import evaluate_router, train_router
from persona_agents.traits import EXPERT_NAMES

log = logging.getLogger(__name__)
STAGES = ("experts", "router", "evaluate")


def corpus_dir(config: TrainConfig) -> Path:
    return Path(config.corpus_dir) if config.corpus_dir else CORPUS_DIR


def plan(config: TrainConfig) -> dict[str, Any]:
    """What a run would train on, read from the corpus without loading any model (``--dry-run``)."""
    corpus = corpus_dir(config)
    responses = load_responses(corpus)
    situations = load_situations(corpus)
    settings = config.experts
    experts: dict[str, dict[str, int]] = {}
    for name in EXPERT_NAMES:
        train = sum(r.expert == name and r.split == "train" for r in responses)
        micro_batches = math.ceil(train / settings.batch_size)
        experts[name] = {
            "train": train,
            "test": sum(r.expert == name and r.split == "test" for r in responses),
            "epochs": settings.epochs_for(name),
            "optimizer_steps": math.ceil(micro_batches / settings.gradient_accumulation_steps) * settings.epochs_for(name),
        }
    return {
        "corpus_dir": str(corpus),
        "response_files": sorted(p.name for p in corpus.glob("responses_*.jsonl")),
        "situations": {"train": sum(s.split == "train" for s in situations), "test": sum(s.split == "test" for s in situations)},
        "responses": {"train": sum(r.split == "train" for r in responses), "test": sum(r.split == "test" for r in responses)},
        "experts": experts,
        "base_model": config.base_model,
        "device": config.device,
        "dtype": config.dtype,
        "device_map": config.device_map,
        "output": config.output,
    }


def run(config: TrainConfig, *, skip_evaluation: bool = False) -> dict[str, Any]:
    started = time.perf_counter()
    work = Path(config.work_dir)
    corpus = corpus_dir(config)
    responses = load_responses(corpus)
    situations = load_situations(corpus)
    engine_config = config.engine_config()
    log.info("base model %s on %s in %s", config.base_model, engine_config.device, engine_config.dtype)
    model, tokenizer = load_base_model(engine_config)

    expert_losses: dict[str, list[float]] = {}
    for index, name in enumerate(EXPERT_NAMES):
        rows = [r for r in responses if r.expert == name and r.split == "train"]
        if not rows:
            raise ValueError(f"the corpus has no training responses for {name}")
        expert_losses[name] = train_expert(model, tokenizer, name, rows, config, work / "experts" / name, config.seed + index)
    experts_seconds = time.perf_counter() - started

    encoder = shared_encoder()
    train_situations = [s for s in situations if s.split == "train"]
    test_situations = [s for s in situations if s.split == "test"]
    router_result = train_router(encoder, train_situations, config.router, config.seed)
    router_eval = evaluate_router(router_result.router(encoder), test_situations)

    experts = [load_peft_expert(name, work / "experts" / name / "adapter") for name in EXPERT_NAMES]
    manifest = BundleManifest(
        name="persona-fuse-smollm2-135m" if config.base_model == "default" else "persona-fuse",
        base_model=base_model_identity(config.base_model),
        lora=config.lora,
        router=router_result.head.settings,
        experts_trained=True,
        notes=(
            "Ten Big-Five persona LoRA experts and a router trained by `persona-agents train` on the "
            "project's seed corpus (persona_agents/training/corpus). See report/ for held-out numbers."
        ),
    )
    bundle = PersonaFuseBundle(manifest, experts, router_result.head, encoder_adapter=router_result.encoder_adapter)

    report: dict[str, Any] = {
        "config": config.model_dump(),
        "corpus": {
            "situations_train": len(train_situations),
            "situations_test": len(test_situations),
            "responses_train": sum(r.split == "train" for r in responses),
            "responses_test": sum(r.split == "test" for r in responses),
        },
        "router": {k: v for k, v in router_eval.items()},
        "experts_final_loss": {name: losses[-1] for name, losses in expert_losses.items()},
        "timing_seconds": {"experts": experts_seconds},
    }
    if not skip_evaluation:
        engine = PersonaFuseEngine(model, tokenizer, bundle, encoder, engine_config)
        params = GenerationParams(max_new_tokens=config.evaluation.max_new_tokens)
        train_responses = [r for r in responses if r.split == "train"]
        test_responses = [r for r in responses if r.split == "test"]
        classifier = LexicalPoleClassifier.fit(train_responses)
        second_opinion = EmbeddingPoleClassifier.fit(encoder, train_responses, seed=config.seed)
        report["pole_classifier"] = classifier.name
        report["pole_classifier_held_out_accuracy"] = classifier.accuracy(test_responses)
        report["second_opinion_classifier"] = second_opinion.name
        report["second_opinion_held_out_accuracy"] = second_opinion.accuracy(test_responses)
        report["experts"] = evaluate_experts(
            engine,
            classifier,
            responses,
            prompts_per_trait=config.evaluation.prompts_per_trait,
            params=params,
            batch_size=config.evaluation.batch_size,
            second_opinion=second_opinion,
        )
        report["general_ability"] = evaluate_general_ability(
            engine, load_general_questions(corpus), params=GenerationParams(max_new_tokens=48), batch_size=config.evaluation.batch_size
        )
        engine.mixer.remove()
    report["timing_seconds"]["total"] = time.perf_counter() - started
    manifest.training = _summary(report)
    out = bundle.save(config.output)
    report_dir = out / "report"
    plot_losses(expert_losses, router_result.history, report_dir / "loss_curves.png")
    if "experts" in report:
        plot_pole_strength(report["experts"]["per_expert"], report_dir / "pole_strength.png")
    write_report(report_dir, report)
    log.info("bundle written to %s", out)
    return report


def _summary(report: dict[str, Any]) -> dict[str, Any]:
    router = report["router"]
    summary: dict[str, Any] = {
        "router_top_pole_agreement": round(router["top_pole_agreement"], 4),
        "router_sign_agreement": round(router["sign_agreement"], 4),
        "router_per_trait_sign_agreement": {k: round(v, 4) for k, v in router["per_trait_sign_agreement"].items() if v is not None},
    }
    if "experts" in report:
        experts = report["experts"]
        summary["all_experts_move_toward_pole"] = experts["all_experts_move_toward_pole"]
        summary["min_high_low_separation"] = round(experts["min_high_low_separation"], 4)
        summary["general_ability"] = {
            "base_accuracy": report["general_ability"]["base_accuracy"],
            "mixture_accuracy": report["general_ability"]["mixture_accuracy"],
        }
    return summary


def main(config_path: str | Path, *, skip_evaluation: bool = False) -> dict[str, Any]:
    torch.manual_seed(0)
    return run(TrainConfig.from_file(config_path), skip_evaluation=skip_evaluation)


if __name__ == "__main__":
    import sys

    logging.basicConfig(level=logging.INFO)
    result = main(sys.argv[1])
    print(json.dumps({k: result[k] for k in ("router", "timing_seconds")}, default=str)[:2000])
