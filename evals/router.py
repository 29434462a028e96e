"""Router eval: does the router push each trait the way a situation calls for?

``python -m evals.router [--data FILE] [--bundle DIR] [--json] [--out DIR]``

Rows are JSON lines ``{"domain", "text", "expect": {trait: "high"|"low", ...}, "context": [..]?}``.
For every (row, trait) pair the routed ``weight(trait_high) - weight(trait_low)`` must have the
expected sign (positive for "high", negative for "low"; exactly 0 counts as wrong).

The default set is the held-out (split "test") situations of the training corpus, converted
with :func:`situations_to_rows` (``python -m evals.router --convert-corpus FILE`` rewrites it).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from evals.common import (
    DATA_DIR,
    DataError,
    emit,
    fail,
    fmt,
    md_table,
    pyplot,
    read_jsonl,
    require_text,
    stdout_to_stderr,
    text_table,
    where,
    write_report,
)
from evals.metrics import agreement_by, share
from persona_agents.jsonl import write_jsonl
from persona_agents.traits import POLES, TRAITS

DEFAULT_DATA = DATA_DIR / "router_default.jsonl"


# --- data ---------------------------------------------------------------------------------


def situations_to_rows(situations: Sequence[Any], split: str | None = "test") -> list[dict[str, Any]]:
    """Corpus situations -> eval rows: expect = trait -> pole for each pole in the activation."""
    rows = []
    for s in situations:
        if split is not None and s.split != split:
            continue
        expect = {}
        for name in s.activation:
            trait, pole = name.rsplit("_", 1)
            expect[trait] = pole
        row: dict[str, Any] = {"id": s.id, "domain": s.domain, "text": s.text, "expect": expect}
        if s.context:
            row["context"] = list(s.context)
        rows.append(row)
    return rows


def convert_corpus(out: Path) -> int:
    from persona_agents.training.corpus import load_situations

    rows = situations_to_rows(load_situations())
    write_jsonl(out, rows)
    return len(rows)


def load_rows(path: Path) -> list[dict[str, Any]]:
    rows = []
    for obj in read_jsonl(path):
        at = where(path, obj)
        text = require_text(path, obj, "text")
        domain = obj.get("domain", "unspecified")
        if not isinstance(domain, str):
            raise DataError(f"{at}: 'domain' must be a string")
        expect = obj.get("expect")
        if not isinstance(expect, Mapping) or not expect:
            raise DataError(f"{at}: 'expect' must be a non-empty object {{trait: 'high'|'low'}}")
        for trait, pole in expect.items():
            if trait not in TRAITS:
                raise DataError(f"{at}: unknown trait {trait!r}; expected one of {', '.join(TRAITS)}")
            if pole not in POLES:
                raise DataError(f"{at}: unknown label {pole!r} for {trait}; expected 'high' or 'low'")
        context = obj.get("context", [])
        if not isinstance(context, list) or not all(isinstance(c, str) and c.strip() for c in context):
            raise DataError(f"{at}: 'context' must be a list of non-empty strings")
        rows.append({"id": obj.get("id", f"line-{obj['_line']}"), "domain": domain, "text": text,
                     "context": context, "expect": dict(expect)})
    return rows


# --- scoring (pure) -----------------------------------------------------------------------


def sign_ok(score: float, pole: str) -> bool:
    """Does ``high - low`` point at ``pole``? Zero points nowhere."""
    return score > 0 if pole == "high" else score < 0


def score_router(expects: Sequence[Mapping[str, str]], trait_scores: Sequence[Mapping[str, float]]) -> dict[str, Any]:
    """Agreement over (row, trait) pairs, per trait, per pole, and the indices of rows with any miss."""
    if len(expects) != len(trait_scores):
        raise ValueError(f"{len(expects)} rows but {len(trait_scores)} routing results")
    pairs = [(index, trait, pole, sign_ok(scores[trait], pole))
             for index, (expect, scores) in enumerate(zip(expects, trait_scores)) for trait, pole in expect.items()]
    hits = [ok for *_, ok in pairs]
    missed_rows: dict[int, list[str]] = {}
    for index, trait, _, ok in pairs:
        if not ok:
            missed_rows.setdefault(index, []).append(trait)
    return {
        "n": len(expects),
        "pairs": len(pairs),
        "agreement": share(hits),
        "per_trait": agreement_by([trait for _, trait, _, _ in pairs], hits, every=TRAITS),
        "per_pole": agreement_by([f"{trait}_{pole}" for _, trait, pole, _ in pairs], hits,
                                 every=[f"{t}_{p}" for t in TRAITS for p in POLES]),
        "missed_rows": list(missed_rows.items()),
    }


# --- running ------------------------------------------------------------------------------


def load_router(bundle_dir: Path | None) -> tuple[Any, dict[str, Any]]:
    from persona_agents.bundle import PersonaFuseBundle
    from persona_agents.config import default_bundle_dir
    from persona_agents.encoder import shared_encoder

    path = bundle_dir or default_bundle_dir()
    bundle = PersonaFuseBundle.load(path)
    info = {"bundle": str(path), "router_trained": bundle.manifest.router.trained}
    info["encoder_adapter"] = bundle.encoder_adapter is not None
    return bundle.make_router(shared_encoder()), info


def evaluate(router: Any, rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    from persona_agents.messages import ChatTurn

    conversations = [[ChatTurn("user", c) for c in r["context"]] + [ChatTurn("user", r["text"])] for r in rows]
    results = []
    batch = 64
    for start in range(0, len(conversations), batch):
        results.extend(router.route_many(conversations[start : start + batch]))
    scores = [r.trait_scores for r in results]
    scored = score_router([r["expect"] for r in rows], scores)
    misses = []
    for index, wrong in scored.pop("missed_rows"):
        row = rows[index]
        misses.append({
            "id": row["id"], "domain": row["domain"], "text": row["text"], "expect": row["expect"],
            "wrong_traits": wrong, "trait_scores": {t: round(v, 4) for t, v in scores[index].items()},
            "top_experts": results[index].top_traits,
        })
    per_domain = {}
    for domain in sorted({r["domain"] for r in rows}):
        idx = [i for i, r in enumerate(rows) if r["domain"] == domain]
        per_domain[domain] = score_router([rows[i]["expect"] for i in idx], [scores[i] for i in idx])["agreement"]
    points = [
        {"trait": t, "pole": p, "score": scores[i][t]} for i, r in enumerate(rows) for t, p in r["expect"].items()
    ]
    return {**scored, "per_domain": per_domain, "misses": misses, "_points": points}


# --- presenting ---------------------------------------------------------------------------


def print_table(result: Mapping[str, Any]) -> None:
    print(f"router  n={result['n']}  pairs={result['pairs']}  agreement={fmt(result['agreement'])}  bundle={result.get('bundle')}")
    if result.get("router_trained") is False:
        print("warning: the bundle's router is untrained (uniform weights score 0 everywhere)")
    print(text_table(["trait", "n", "agreement"], [[t, v["n"], v["agreement"]] for t, v in result["per_trait"].items()]))
    print(text_table(["domain", "agreement"], list(result["per_domain"].items())))
    for miss in result["misses"][:25]:
        print(f"MISS {miss['id']} wrong={','.join(miss['wrong_traits'])} scores={miss['trait_scores']}: {miss['text'][:90]}")
    if len(result["misses"]) > 25:
        print(f"... {len(result['misses']) - 25} more misses (see --json)")


def markdown(result: Mapping[str, Any]) -> str:
    lines = [
        "# Router eval", "",
        f"n = {result['n']} rows, {result['pairs']} (row, trait) pairs; bundle `{result.get('bundle')}`; "
        f"**agreement = {fmt(result['agreement'])}** (share of pairs where sign(high - low) matches).", "",
        md_table(["trait", "n", "agreement"], [[t, v["n"], v["agreement"]] for t, v in result["per_trait"].items()]), "",
        md_table(["pole", "n", "agreement"], [[p, v["n"], v["agreement"]] for p, v in result["per_pole"].items()]), "",
        md_table(["domain", "agreement"], list(result["per_domain"].items())), "",
        f"## Misses ({len(result['misses'])})", "",
        md_table(["id", "wrong", "expect", "text"], [[m["id"], ",".join(m["wrong_traits"]), m["expect"], m["text"][:100]] for m in result["misses"][:40]]),
    ]
    return "\n".join(lines)


def figures(result: Mapping[str, Any], points: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    plt = pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    traits = list(result["per_trait"])
    values = [result["per_trait"][t]["agreement"] or 0.0 for t in traits]
    ax1.bar(traits, values, color="#4c72b0")
    ax1.axhline(result["agreement"] or 0.0, color="k", ls="--", lw=1, label=f"overall {fmt(result['agreement'])}")
    ax1.axhline(0.5, color="grey", ls=":", lw=1, label="coin flip")
    ax1.set_ylim(0, 1)
    ax1.set_ylabel("sign agreement")
    ax1.set_title("Router: per-trait agreement")
    ax1.tick_params(axis="x", rotation=30)
    ax1.legend(fontsize=8)
    for i, trait in enumerate(traits):
        for pole, colour, offset in (("high", "#dd8452", -0.15), ("low", "#55a868", 0.15)):
            ys = [p["score"] for p in points if p["trait"] == trait and p["pole"] == pole]
            ax2.scatter([i + offset] * len(ys), ys, s=10, alpha=0.6, color=colour, label=f"expected {pole}" if i == 0 else None)
    ax2.axhline(0, color="k", lw=0.8)
    ax2.set_xticks(range(len(traits)), traits, rotation=30)
    ax2.set_ylabel("routed weight(high) - weight(low)")
    ax2.set_title("Routed trait scores by expected pole")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    return {"agreement": fig}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evals.router", description="Router sign-agreement eval")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="JSONL rows {domain, text, expect}")
    parser.add_argument("--bundle", type=Path, help="bundle directory (default: the shipped bundle)")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument("--out", type=Path, help="also write JSON, markdown and PNGs into this folder")
    parser.add_argument("--convert-corpus", type=Path, metavar="FILE", help="write the corpus's held-out situations as eval rows and exit")
    args = parser.parse_args(argv)
    if args.convert_corpus:
        print(f"wrote {convert_corpus(args.convert_corpus)} rows to {args.convert_corpus}", file=sys.stderr)
        return 0
    try:
        rows = load_rows(args.data)
    except DataError as exc:
        return fail(str(exc))
    with stdout_to_stderr(args.json):
        try:
            router, info = load_router(args.bundle)
        except ValueError as exc:  # BundleError
            return fail(str(exc))
        result = evaluate(router, rows)
        points = result.pop("_points")
        result = {"data": str(args.data), **info, **result}
        if args.out:
            write_report(args.out, "router", result, markdown(result), figures(result, points))
    emit(result, args.json, print_table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
