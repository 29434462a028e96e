"""Speed of what the product exists to do, in ONE run on the default model (CPU).

``python -m evals.bench [--data FILE] [--repeats 5] [--new-tokens 32] [--bundle DIR] [--only serving|safety] [--json] [--out DIR]``

Every generation arm produces exactly ``--new-tokens`` tokens (greedy, ``min_new_tokens`` =
``max_new_tokens``) for the same conversation:

- ``mixture``: PersonaFuseEngine with the bundle, the conversation's routed weights (hooks on);
- ``base``: the same engine with ``persona_weights="base"`` (hooks skip);
- ``peft_set_scale``: a second copy of the base model with the bundle's ten expert folders
  loaded by ``PeftModel.from_pretrained`` + ``load_adapter``, all ten active
  (``base_model.set_adapter(list)``) and each adapter's scale set to its weight per turn;
- ``peft_cat``: ``add_weighted_adapter(..., combination_type="cat")`` created, used and deleted
  per turn;
- ``prompt_only``: the base model with the routed top pole described in the system prompt.

Also: router latency per turn (ms), a batch of 8 conversations with 8 different weight vectors
in one ``generate_batch`` against the same 8 one by one, peak memory (``ru_maxrss``), and a
one-forward exactness check of the peft arms against the mixer (max |logit difference|).
Arms are interleaved (the order rotates every repeat); medians are reported. The serving keys
(``concurrent8_speedup``, ``server_overhead``) come from ``evals/bench_serving.py``;
``--only serving`` measures just those. The safety layer's cost per turn (``safety_ms_per_turn``:
screening a user turn with two earlier turns plus checking one draft; ``screen_ms``,
``output_check_ms``, ``safety_classifier_kb``) comes from ``evals/bench_safety.py``;
``--only safety`` measures just that.

Conversation rows (JSONL, optional ``--data``): ``{"text"}`` user messages; the default is a
built-in set of 8.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import resource
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from evals.common import (
    DataError,
    emit,
    fail,
    fmt,
    md_table,
    progress,
    pyplot,
    read_jsonl,
    require_text,
    stdout_to_stderr,
    text_table,
    write_report,
)
from evals.metrics import median, ratio

ARMS = ("mixture", "base", "peft_set_scale", "peft_cat", "prompt_only")
TARGETS = {"mixture_over_base": ("<=", 1.10), "batch8_speedup": (">=", 2.0)}
DEFAULT_CONVERSATIONS = (
    "My grandmother died last week and I keep reaching for my phone to call her.",
    "I was charged twice for my order and nobody answers the phone. Sort it out.",
    "I just got the job I interviewed for! I can't stop smiling.",
    "Can you give me a step-by-step plan to prepare for my driving test?",
    "Be honest, is my business idea of selling ice to penguins any good?",
    "I've been so anxious about my exam results I can't eat.",
    "The delivery was late but the sofa is lovely. Mixed feelings really.",
    "What are some unusual things to do on a rainy weekend in a new city?",
)


# --- scoring (pure) -----------------------------------------------------------------------


def summarise(timings: Mapping[str, Sequence[float]], router_s: Sequence[float], batch_s: Sequence[float],
              sequential_s: Sequence[float], new_tokens: int) -> dict[str, Any]:
    """Medians, ratios to the base model, tokens/s and the batch speed-up."""
    medians = {arm: median(list(values)) for arm, values in timings.items()}
    base = medians.get("base")
    out: dict[str, Any] = {
        "medians_s": medians,
        "tokens_per_s": {arm: ratio(new_tokens, m) for arm, m in medians.items()},
        "mixture_over_base": ratio(medians.get("mixture"), base),
        "peft_set_scale_over_base": ratio(medians.get("peft_set_scale"), base),
        "peft_cat_over_base": ratio(medians.get("peft_cat"), base),
        "prompt_only_over_base": ratio(medians.get("prompt_only"), base),
        "router_ms": None if not router_s else median([s * 1000 for s in router_s]),
        "batch8_s": median(list(batch_s)),
        "sequential8_s": median(list(sequential_s)),
        "batch8_speedup": ratio(median(list(sequential_s)), median(list(batch_s))),
    }
    out["targets"] = {
        f"{key} {op} {bound}": (None if out[key] is None else (out[key] <= bound if op == "<=" else out[key] >= bound))
        for key, (op, bound) in TARGETS.items()
    }
    return out


def rotated(items: Sequence[str], shift: int) -> list[str]:
    shift %= len(items)
    return list(items[shift:]) + list(items[:shift])


def peak_rss_mb() -> float:
    """Peak resident set size of this process (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if platform.system() == "Darwin" else peak / 1024


def current_rss_mb() -> float | None:
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE") / (1024 * 1024)


# --- the peft arms --------------------------------------------------------------------------


class PeftArms:
    """A second copy of the base model with the ten experts loaded by peft."""

    def __init__(self, model: Any, expert_dirs: Mapping[str, Path]) -> None:
        from peft import PeftModel
        from peft.tuners.lora import LoraLayer

        names = list(expert_dirs)
        self.names = names
        self.model = PeftModel.from_pretrained(model, str(expert_dirs[names[0]]), adapter_name=names[0])
        for name in names[1:]:
            self.model.load_adapter(str(expert_dirs[name]), adapter_name=name)
        self.model.eval()
        self.lora_layers = [m for m in self.model.modules() if isinstance(m, LoraLayer)]

    def set_scales(self, weights: Sequence[float]) -> None:
        """All ten adapters active, each scaled by its weight (set_scale multiplies alpha/r)."""
        self.model.base_model.set_adapter(self.names)
        for layer in self.lora_layers:
            for name, weight in zip(self.names, weights):
                layer.set_scale(name, float(weight))

    def reset_scales(self) -> None:
        for layer in self.lora_layers:
            for name in self.names:
                layer.set_scale(name, 1.0)

    def add_cat(self, weights: Sequence[float], name: str = "mix") -> None:
        self.reset_scales()  # add_weighted_adapter reads each adapter's current scaling
        self.model.add_weighted_adapter(self.names, [float(w) for w in weights], name, combination_type="cat")
        self.model.set_adapter(name)
        # the new adapter's dropout modules are created in training mode: without this the
        # "cat" arm applies lora_dropout at inference and is neither exact nor deterministic
        for layer in self.lora_layers:
            if name in layer.lora_dropout:
                layer.lora_dropout[name].eval()

    def delete(self, name: str = "mix") -> None:
        self.model.set_adapter(self.names[0])  # PeftModel keeps its own active name: never the deleted one
        self.model.base_model.set_adapter(self.names)
        self.model.delete_adapter(name)

    def generate(self, input_ids: Any, new_tokens: int, pad_token_id: int) -> Any:
        import torch

        with torch.inference_mode():
            return self.model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                                       max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                                       do_sample=False, pad_token_id=pad_token_id)

    def logits(self, input_ids: Any) -> Any:
        import torch

        with torch.inference_mode():
            return self.model(input_ids=input_ids).logits


# --- running ------------------------------------------------------------------------------


def bench_weights(engine: Any, conversations: Sequence[str]) -> list[Any]:
    """Eight different weight vectors: each conversation's routed weights blended half-way
    toward a different one-hot expert (so the batch rows differ even with an untrained router)."""
    from persona_agents.traits import EXPERT_NAMES, PersonaWeights

    out = []
    for i, text in enumerate(conversations):
        routed = engine.route(text).weights
        out.append(routed.blend(PersonaWeights.one_hot(EXPERT_NAMES[i % len(EXPERT_NAMES)]), 0.5))
    return out


def run_bench(engine: Any, expert_dirs: Mapping[str, Path], load_model_copy: Callable[[], Any], *,
              conversations: Sequence[str] = DEFAULT_CONVERSATIONS, repeats: int = 5, new_tokens: int = 32) -> dict[str, Any]:
    import torch

    from evals.persona import POLE_DESCRIPTIONS
    from persona_agents.engine import BASE_ONLY, GenerationParams
    from persona_agents.messages import to_turns

    conversations = list(conversations)[:8]
    if len(conversations) < 8:
        raise DataError(f"the bench needs 8 conversations, got {len(conversations)}")
    memory: dict[str, Any] = {"rss_after_engine_mb": peak_rss_mb()}
    mixer_bytes = sum(s.a_cat.numel() * s.a_cat.element_size() + s.b_cat_t.numel() * s.b_cat_t.element_size()
                      for s in engine.mixer._layers.values())
    memory["mixer_factors_mb"] = mixer_bytes / (1024 * 1024)
    weights = bench_weights(engine, conversations)
    # the raw distribution, as the peft arms decode it (transformers' greedy generate, no repetition rules)
    params = GenerationParams.raw(max_new_tokens=new_tokens, min_new_tokens=new_tokens, temperature=0.0)
    pad = engine.tokenizer.pad_token_id
    prompt_ids = [torch.tensor([engine.prompt_ids(to_turns(c))], device=engine.device) for c in conversations]
    system = engine.config.default_system_prompt

    peft_arms = PeftArms(load_model_copy(), expert_dirs)
    memory["rss_after_peft_copy_mb"] = peak_rss_mb()

    tokens_seen: dict[str, set[int]] = {arm: set() for arm in (*ARMS, "batch8", "sequential8")}

    def arm_call(arm: str, i: int) -> None:
        w = weights[i]
        if arm == "mixture":
            tokens_seen[arm].add(engine.generate(conversations[i], persona_weights=w, params=params).output_tokens)
        elif arm == "base":
            tokens_seen[arm].add(engine.generate(conversations[i], persona_weights=BASE_ONLY, params=params).output_tokens)
        elif arm == "prompt_only":
            pole = w.top_traits(1)[0]
            convo = [{"role": "system", "content": f"{system} {POLE_DESCRIPTIONS[pole]}"}, {"role": "user", "content": conversations[i]}]
            tokens_seen[arm].add(engine.generate(convo, persona_weights=BASE_ONLY, params=params).output_tokens)
        elif arm == "peft_set_scale":
            peft_arms.set_scales(w.values)
            out = peft_arms.generate(prompt_ids[i], new_tokens, pad)
            tokens_seen[arm].add(out.shape[1] - prompt_ids[i].shape[1])
        elif arm == "peft_cat":
            peft_arms.add_cat(w.values)
            try:
                out = peft_arms.generate(prompt_ids[i], new_tokens, pad)
            finally:
                peft_arms.delete()
            tokens_seen[arm].add(out.shape[1] - prompt_ids[i].shape[1])
        else:
            raise ValueError(arm)

    exactness = check_exactness(engine, peft_arms, prompt_ids[0], weights[0])
    for arm in ARMS:  # warm-up, not timed
        arm_call(arm, 0)
    engine.generate_batch(conversations, weights, params=params)
    for text in conversations:
        engine.route(text)

    timings: dict[str, list[float]] = {arm: [] for arm in ARMS}
    router_s: list[float] = []
    batch_s: list[float] = []
    sequential_s: list[float] = []
    for r in progress(range(repeats), desc="bench repeats", unit="repeat"):
        i = r % len(conversations)
        for arm in rotated(ARMS, r):
            gc.collect()
            start = time.perf_counter()
            arm_call(arm, i)
            timings[arm].append(time.perf_counter() - start)
        for text in conversations:
            start = time.perf_counter()
            engine.route(text)
            router_s.append(time.perf_counter() - start)
        for mode in rotated(("batch8", "sequential8"), r):
            gc.collect()
            start = time.perf_counter()
            if mode == "batch8":
                results = engine.generate_batch(conversations, weights, params=params)
            else:
                results = [engine.generate(c, persona_weights=w, params=params) for c, w in zip(conversations, weights)]
            elapsed = time.perf_counter() - start
            (batch_s if mode == "batch8" else sequential_s).append(elapsed)
            tokens_seen[mode].update(g.output_tokens for g in results)
    memory["peak_rss_mb"] = peak_rss_mb()
    result = summarise(timings, router_s, batch_s, sequential_s, new_tokens)
    return {
        **{k: result[k] for k in ("mixture_over_base", "router_ms", "batch8_speedup", "peft_set_scale_over_base",
                                  "peft_cat_over_base", "prompt_only_over_base")},
        "peak_rss_mb": memory["peak_rss_mb"],
        "targets": result["targets"],
        "new_tokens": new_tokens,
        "repeats": repeats,
        "tokens_generated": {arm: sorted(v) for arm, v in tokens_seen.items()},
        "medians_s": result["medians_s"],
        "tokens_per_s": result["tokens_per_s"],
        "batch8_s": result["batch8_s"],
        "sequential8_s": result["sequential8_s"],
        "memory": memory,
        "exactness_max_abs_logit_diff_vs_mixture": exactness,
        "timings_s": {**timings, "batch8": batch_s, "sequential8": sequential_s, "router": router_s},
        "torch_threads": torch.get_num_threads(),
    }


def check_exactness(engine: Any, peft_arms: PeftArms, input_ids: Any, weights: Any) -> dict[str, float]:
    """Max |logit difference| of each peft arm against the mixer, on one forward pass."""
    import torch

    with engine.mixer.active(torch.tensor(weights.values)), torch.inference_mode():
        reference = engine.model(input_ids=input_ids).logits
    with engine.mixer.active(None), torch.inference_mode():
        base = engine.model(input_ids=input_ids).logits
    peft_arms.set_scales(weights.values)
    set_scale = peft_arms.logits(input_ids)
    peft_arms.add_cat(weights.values)
    try:
        cat = peft_arms.logits(input_ids)
    finally:
        peft_arms.delete()
    return {
        "peft_set_scale": float((set_scale - reference).abs().max()),
        "peft_cat": float((cat - reference).abs().max()),
        "base_model_for_scale": float((base - reference).abs().max()),
    }


# --- presenting ---------------------------------------------------------------------------

HEADLINE = ("mixture_over_base", "batch8_speedup", "concurrent8_speedup", "server_overhead", "router_ms", "peft_set_scale_over_base", "peft_cat_over_base",
            "prompt_only_over_base", "peak_rss_mb")


def _arm_rows(result: Mapping[str, Any]) -> list[list[Any]]:
    return [[arm, result["medians_s"][arm], result["tokens_per_s"][arm],
             ratio(result["medians_s"][arm], result["medians_s"]["base"]), result["tokens_generated"][arm]] for arm in ARMS]


def print_table(result: Mapping[str, Any]) -> None:
    print(f"bench  model={result.get('model')}  new_tokens={result['new_tokens']}  repeats={result['repeats']}  threads={result['torch_threads']}")
    print(text_table(["arm", "median s", "tok/s", "x base", "tokens"], _arm_rows(result)))
    print(text_table(["metric", "value"], [[k, result[k]] for k in HEADLINE]))
    print(f"batch of 8: {fmt(result['batch8_s'])} s vs one by one {fmt(result['sequential8_s'])} s")
    print("targets: " + ", ".join(f"{k}: {'met' if v else 'NOT met' if v is not None else '-'}" for k, v in result["targets"].items()))
    print("exactness (max |logit diff| vs mixer): " + ", ".join(f"{k} {v:.2e}" for k, v in result["exactness_max_abs_logit_diff_vs_mixture"].items()))


def print_serving(result: Mapping[str, Any]) -> None:
    keys = ("concurrent8_speedup", "concurrent8_s", "one_by_one8_s", "concurrent8_same_replies", "scheduler_max_batch",
            "server_overhead", "server_http_s", "server_in_process_s", "server_same_reply")
    print(f"serving bench  model={result.get('model')}  new_tokens={result['new_tokens']}  repeats={result['repeats']}")
    print(text_table(["metric", "value"], [[k, result[k]] for k in keys]))
    print("targets: " + ", ".join(f"{k}: {'met' if v else 'NOT met'}" for k, v in result["serving_targets"].items()))


def markdown(result: Mapping[str, Any]) -> str:
    return "\n".join([
        "# Bench", "",
        f"Model `{result.get('model')}`, bundle `{result.get('bundle')}`, {result['new_tokens']} new tokens per arm "
        f"(greedy, min_new_tokens = max_new_tokens), {result['repeats']} interleaved repeats, medians; "
        f"{result['torch_threads']} torch threads on {os.cpu_count()} CPUs.", "",
        md_table(["metric", "value"], [[k, result[k]] for k in HEADLINE]), "",
        "Targets: " + "; ".join(f"`{k}`: {'met' if v else 'NOT met' if v is not None else '-'}" for k, v in result["targets"].items()), "",
        md_table(["arm", "median s", "tokens/s", "x base", "tokens generated"], _arm_rows(result)), "",
        f"Batch of 8 conversations with 8 different weight vectors: {fmt(result['batch8_s'])} s in one generate_batch "
        f"vs {fmt(result['sequential8_s'])} s one by one (speed-up {fmt(result['batch8_speedup'])}).", "",
        "Exactness, max |logit difference| against the mixer on one forward pass: "
        + ", ".join(f"{k} {v:.2e}" for k, v in result["exactness_max_abs_logit_diff_vs_mixture"].items())
        + " (base_model_for_scale: how far the experts move the logits at all).", "",
        "Memory (MB): " + ", ".join(f"{k} {fmt(v, 1)}" for k, v in result["memory"].items())
        + ". peak_rss_mb includes the second model copy the peft arms need.",
    ])


def figures(result: Mapping[str, Any]) -> dict[str, Any]:
    plt = pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4), gridspec_kw={"width_ratios": [3, 2]})
    timings = result["timings_s"]
    ax1.boxplot([timings[a] for a in ARMS])
    ax1.set_xticks(range(1, len(ARMS) + 1), [f"{a}\n{fmt(ratio(result['medians_s'][a], result['medians_s']['base']), 2)}x" for a in ARMS], fontsize=8)
    ax1.set_ylabel(f"seconds for {result['new_tokens']} new tokens")
    ax1.set_title("Generation time per turn (ratio to base under each arm)")
    ax2.bar(["batch of 8", "8 one by one"], [result["batch8_s"] or 0, result["sequential8_s"] or 0], color=["#55a868", "#8c8c8c"])
    ax2.set_ylabel("seconds")
    ax2.set_title(f"8 conversations, 8 weight vectors: {fmt(result['batch8_speedup'], 2)}x")
    fig.tight_layout()
    return {"timings": fig}


def load_conversations(path: Path | None) -> list[str]:
    if path is None:
        return list(DEFAULT_CONVERSATIONS)
    rows = [require_text(path, obj, "text") for obj in read_jsonl(path)]
    if len(rows) < 8:
        raise DataError(f"{path}: the bench needs at least 8 conversations, got {len(rows)}")
    return rows[:8]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evals.bench", description="Speed of mixing persona experts")
    parser.add_argument("--data", type=Path, help="JSONL rows {text}: 8 user messages (default: built in)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--bundle", type=Path, help="bundle directory (default: the shipped bundle)")
    parser.add_argument("--only", choices=["all", "serving", "safety"], default="all",
                        help="'serving': only concurrent8_speedup and server_overhead; "
                             "'safety': only the safety layer's cost per turn (no model loaded)")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument("--out", type=Path, help="also write JSON, markdown and PNGs into this folder")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.new_tokens < 1:
        return fail("--repeats and --new-tokens must be positive")
    try:
        conversations = load_conversations(args.data)
    except DataError as exc:
        return fail(str(exc))
    from evals.bench_safety import SAFETY_TARGET_MS, measure_safety

    if args.only == "safety":
        with stdout_to_stderr(args.json):
            safety = measure_safety()
        safety["targets"] = {f"safety_ms_per_turn <= {SAFETY_TARGET_MS}": safety["safety_ms_per_turn"] <= SAFETY_TARGET_MS}
        emit(safety, args.json, lambda r: print(text_table(["metric", "value"], [[k, v] for k, v in r.items()])))
        return 0
    with stdout_to_stderr(args.json):
        from persona_agents.base_model import load_base_model
        from persona_agents.config import EngineConfig
        from persona_agents.engine import PersonaFuseEngine

        config = EngineConfig.from_env(bundle=str(args.bundle) if args.bundle else None)
        try:
            engine = PersonaFuseEngine.load(config)
        except ValueError as exc:  # BundleError
            return fail(str(exc))
        from evals.bench_serving import run_serving_bench

        bundle_path = Path(engine.bundle.path)
        expert_dirs = {name: bundle_path / "experts" / name for name in engine.bundle.manifest.expert_names}
        serving = run_serving_bench(engine, conversations, bench_weights(engine, conversations), repeats=args.repeats,
                                    new_tokens=args.new_tokens, bundle=str(args.bundle) if args.bundle else None)
        result = {"model": engine.model_name, "bundle": str(bundle_path),
                  "untrained_parts": engine.bundle.manifest.untrained_parts, **serving}
        if args.only == "serving":
            result.update(new_tokens=args.new_tokens, repeats=args.repeats)
        else:
            result.update(run_bench(engine, expert_dirs, lambda: load_base_model(config)[0],
                                    conversations=conversations, repeats=args.repeats, new_tokens=args.new_tokens))
            result["targets"].update(result["serving_targets"])
            result.update(measure_safety())
            result["targets"][f"safety_ms_per_turn <= {SAFETY_TARGET_MS}"] = result["safety_ms_per_turn"] <= SAFETY_TARGET_MS
            if args.out:
                write_report(args.out, "bench", result, markdown(result), figures(result))
    emit(result, args.json, print_serving if args.only == "serving" else print_table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
