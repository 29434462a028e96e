"""The engine's commands: generate, route, train, synth and serve.

``add_engine_commands`` registers them on any parser, so the full ``persona-agents`` command
(``graphs.apps.cli``, which adds the agents' commands on top) and this module's own
``python -m persona_agents.cli`` (the engine alone, as the serving process runs it) share
one definition of every flag. ``run`` is the shared entry: logging, dispatch, and bad input
turned into one error line and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from persona_agents.generation import DEFAULT_PARAMS

EXIT_BAD_INPUT = 2


def engine_config(args: argparse.Namespace) -> Any:
    """The engine settings, with the device checked before any model loads."""
    from persona_agents.config import EngineConfig

    config = EngineConfig.from_env(base_model=args.base_model, bundle=args.bundle, device=args.device, dtype=args.dtype)
    try:
        config.resolved_device()
    except RuntimeError as exc:  # e.g. --device cuda on a machine without a GPU
        raise ValueError(f"--device: {exc}") from None
    return config


def _persona_weights(raw: str | None) -> Any:
    """``--weights``: None, "base" (no experts), a name->weight object or a list of ten numbers."""
    from persona_agents.traits import PersonaWeights

    if raw is None:
        return None
    weights = json.loads(raw)
    if weights == "base":
        return weights
    if not isinstance(weights, (dict, list)):
        raise ValueError(f"--weights must be a JSON object of expert weights, a list of ten numbers or \"base\", got {raw!r}")
    try:
        PersonaWeights.coerce(weights)
    except (TypeError, KeyError) as exc:
        raise ValueError(f"--weights: {exc}") from None
    return weights


def add_engine_options(parser: argparse.ArgumentParser) -> None:
    """--base-model, --bundle, --device, --dtype: what ``engine_config`` reads."""
    group = parser.add_argument_group("model")
    group.add_argument("--base-model", help="'default', a Hugging Face id or a local folder")
    group.add_argument("--bundle", help="PersonaFuse bundle folder (default: the shipped bundle)")
    group.add_argument("--device", help="auto, cpu, cuda, cuda:N or mps")
    group.add_argument("--dtype", choices=["auto", "float32", "bfloat16", "float16"])


def _weights_bar(weights: dict[str, float], width: int = 20) -> str:
    lines = []
    for name, value in sorted(weights.items(), key=lambda kv: -kv[1]):
        lines.append(f"    {name:<22} {value:6.3f} {'#' * round(value * width)}")
    return "\n".join(lines)


def cmd_generate(args: argparse.Namespace) -> int:
    from persona_agents.messages import to_turns

    # check the input before importing torch and loading the model, so bad input fails fast
    to_turns(args.message)
    weights = _persona_weights(args.weights)
    config = engine_config(args)
    from persona_agents.engine import GenerationParams, PersonaFuseEngine

    params = GenerationParams(max_new_tokens=args.max_tokens, temperature=args.temperature, seed=args.seed)
    engine = PersonaFuseEngine.load(config)
    generation = engine.generate(args.message, persona_weights=weights, params=params)
    if args.json:
        out = generation.as_dict()
        print(json.dumps({k: out[k] for k in ("text", "persona_weights", "top_traits", "usage")}))
    else:
        print(generation.text)
        if generation.weights:
            print(f"\n[persona: {', '.join(generation.top_traits)}]", file=sys.stderr)
    return 0


def cmd_route(args: argparse.Namespace) -> int:
    from persona_agents.bundle import PersonaFuseBundle
    from persona_agents.config import default_bundle_dir
    from persona_agents.encoder import shared_encoder
    from persona_agents.messages import to_turns

    turns = to_turns(args.message)  # before the bundle and encoder load, so bad input fails fast
    bundle = PersonaFuseBundle.load(args.bundle or os.environ.get("PERSONA_AGENTS_BUNDLE") or default_bundle_dir())
    result = bundle.make_router(shared_encoder()).route(turns)
    if args.json:
        print(json.dumps(result.as_dict()))
    else:
        print(f"top traits: {', '.join(result.top_traits)}")
        print(_weights_bar(result.weights.as_dict()))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from persona_agents.training.config import DEFAULT_CONFIG, TrainConfig, find_config
    from persona_agents.training.pipeline import plan, run

    config = TrainConfig.from_file(find_config(args.config) if args.config else DEFAULT_CONFIG)
    overrides = {
        k: v
        for k, v in (("output", args.output), ("work_dir", args.work_dir), ("device", args.device), ("dtype", args.dtype))
        if v
    }
    if overrides:  # validated like the file's own values
        config = TrainConfig.model_validate({**config.model_dump(), **overrides})
    if args.dry_run:
        print(json.dumps(plan(config), indent=2))
        return 0
    report = run(config, skip_evaluation=args.skip_evaluation)
    router = report["router"]
    print(f"bundle: {config.output}")
    print(f"router (held-out): top pole {router['top_pole_agreement']:.3f}, sign {router['sign_agreement']:.3f}")
    if "experts" in report:
        experts = report["experts"]
        print(f"experts: all move toward their pole: {experts['all_experts_move_toward_pole']}, "
              f"min high/low separation {experts['min_high_low_separation']:.3f}")
        ability = report["general_ability"]
        print(f"plain questions: base {ability['base_accuracy']:.3f}, mixture {ability['mixture_accuracy']:.3f}")
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    from pathlib import Path

    from persona_agents.encoder import shared_encoder
    from persona_agents.training.corpus import CORPUS_DIR
    from persona_agents.training.synth import (
        append_to_corpus,
        existing_corpus_texts,
        load_teacher,
        synthesize,
    )

    teacher = load_teacher(args.teacher)
    corpus = Path(args.corpus or CORPUS_DIR)
    result = synthesize(
        teacher, args.count, encoder=shared_encoder(), seed=args.seed, existing_texts=existing_corpus_texts(corpus), id_prefix=args.tag
    )
    for path in append_to_corpus(result, corpus, tag=args.tag):
        print(f"appended to {path}")
    print(f"kept {len(result.situations)} items, rejected {len(result.rejected)}")
    for reason in result.rejected[:20]:
        print(f"  rejected: {reason}", file=sys.stderr)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from persona_agents.config import EngineConfig
    from persona_agents.serving.app import serve

    overrides = {"max_batch_size": args.max_batch_size, "max_batch_wait_ms": args.max_batch_wait_ms}
    config = EngineConfig.from_env(base_model=args.base_model, bundle=args.bundle, device=args.device, dtype=args.dtype,
                                   **overrides)  # checked here, before the server starts

    def load() -> Any:
        from persona_agents.engine import PersonaFuseEngine

        return PersonaFuseEngine.shared(config)

    print(f"persona-agents: serving on http://{args.host}:{args.port} (OpenAI API at /v1)", file=sys.stderr)
    serve(args.host, args.port, engine_factory=load, max_body_bytes=args.max_body_bytes,
          log_level="info" if args.verbose else "warning")
    return 0


def add_engine_commands(sub: argparse._SubParsersAction) -> None:
    """Register generate, route, train, synth and serve on ``sub`` (a parser's subparsers)."""
    p = sub.add_parser("generate", help="reply to one message with the routed persona")
    p.add_argument("--message", required=True)
    p.add_argument("--weights", help='fixed persona weights as JSON, e.g. \'{"extraversion_high": 1}\'')
    p.add_argument("--max-tokens", type=int, default=DEFAULT_PARAMS.max_new_tokens)
    p.add_argument("--temperature", type=float, default=DEFAULT_PARAMS.temperature)
    p.add_argument("--seed", type=int)
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    add_engine_options(p)
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("route", help="the persona weights for a message, without generating")
    p.add_argument("--message", required=True)
    p.add_argument("--bundle")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_route)

    p = sub.add_parser("train", help="train a PersonaFuse bundle (experts, router) and write its report")
    p.add_argument("--config", help="training config JSON, or the name of a shipped preset such as "
                   "'smollm2-1.7b-gpu' (default: the shipped default config)")
    p.add_argument("--output", help="bundle folder to write (overrides the config)")
    p.add_argument("--work-dir", help="checkpoints and resumable state (overrides the config)")
    p.add_argument("--device", help="auto, cpu, cuda, cuda:N, mps (overrides the config)")
    p.add_argument("--dtype", choices=["auto", "float32", "bfloat16"], help="base model weights (overrides the config)")
    p.add_argument("--skip-evaluation", action="store_true", help="skip the held-out generation measurements")
    p.add_argument("--dry-run", action="store_true",
                   help="print what would be trained (corpus files and counts, steps per expert) and exit without loading a model")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("synth", help="grow the seed corpus with a teacher chat model")
    p.add_argument("--teacher", required=True, help="'package.module:attribute' giving a LangChain chat model")
    p.add_argument("--count", type=int, default=50)
    p.add_argument("--corpus", help="corpus folder (default: the shipped corpus)")
    p.add_argument("--tag", default="synth", help="file suffix and id prefix for the new rows")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("serve", help="an OpenAI-compatible HTTP server that batches concurrent requests")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--max-batch-size", type=int, help="most requests decoded together (default 16)")
    p.add_argument("--max-batch-wait-ms", type=float, help="wait for more requests before a batch starts (default 5)")
    p.add_argument("--max-body-bytes", type=int, default=1_000_000, help="larger request bodies get a 413")
    add_engine_options(p)
    p.set_defaults(func=cmd_serve)


def new_parser(description: str | None) -> tuple[argparse.ArgumentParser, argparse._SubParsersAction]:
    """The ``persona-agents`` parser (with ``-v``) and its subparsers, still without commands."""
    parser = argparse.ArgumentParser(prog="persona-agents", description=description)
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    return parser, parser.add_subparsers(dest="command", required=True)


def build_parser() -> argparse.ArgumentParser:
    """The engine's commands alone (``graphs.apps.cli`` builds the full command)."""
    parser, sub = new_parser(__doc__)
    add_engine_commands(sub)
    return parser


def run(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen command; bad input prints one error line and returns 2."""
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    from persona_agents.bundle import BundleError
    from persona_agents.messages import InvalidMessageError

    try:
        return int(args.func(args) or 0)
    except (InvalidMessageError, BundleError, ValueError, json.JSONDecodeError) as exc:
        print(f"persona-agents: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


def main(argv: Sequence[str] | None = None) -> int:
    return run(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
