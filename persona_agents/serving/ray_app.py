"""PersonaFuse replicas on Ray Serve: N engines, each with its own batching scheduler, behind
Ray Serve's HTTP proxy, with the same API as ``persona-agents serve`` (the same FastAPI app,
mounted with ``@serve.ingress``).

Each replica asks for one GPU when the cluster has GPUs (Ray then gives each replica its own
device through ``CUDA_VISIBLE_DEVICES``), otherwise ``cpus_per_replica`` CPUs. Requests are
spread over replicas by Ray Serve; inside a replica, concurrent requests share a batch.

Run it with the ``ray`` extra installed (in a virtualenv of its own, see the README)::

    python -m persona_agents.serving.ray_app --replicas 2 --port 8000
    # or: serve run persona_agents.serving.ray_app:build_app replicas=2
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from persona_agents.config import EngineConfig


def _gpus_available() -> float:
    import ray

    return float(ray.cluster_resources().get("GPU", 0)) if ray.is_initialized() else 0.0


def make_deployment(config: EngineConfig, *, replicas: int = 2, gpus_per_replica: float | None = None,
                    cpus_per_replica: float = 1.0, max_ongoing_requests: int | None = None) -> Any:
    """A bound Ray Serve application: ``replicas`` copies of the engine behind one HTTP API."""
    from ray import serve

    from persona_agents.serving.app import create_app

    if gpus_per_replica is None:
        gpus_per_replica = 1.0 if _gpus_available() >= 1 else 0.0
    options: dict[str, Any] = {"num_cpus": cpus_per_replica}
    if gpus_per_replica:
        options["num_gpus"] = gpus_per_replica
    # a replica takes this many requests at once; the scheduler batches them
    ongoing = max_ongoing_requests or max(2 * config.max_batch_size, 8)

    def replica_engine() -> Any:
        from persona_agents.engine import PersonaFuseEngine

        return PersonaFuseEngine.shared(config)

    fastapi_app = create_app(engine_factory=replica_engine)

    @serve.deployment(name="PersonaFuse", num_replicas=replicas, ray_actor_options=options,
                      max_ongoing_requests=ongoing)
    @serve.ingress(fastapi_app)
    class PersonaFuseDeployment:
        def __init__(self) -> None:
            # loaded before the replica takes traffic; the app's own start-up finds it shared
            self.engine = replica_engine()

        def check_health(self) -> None:
            if self.engine is None:
                raise RuntimeError("the engine is not loaded")

    return PersonaFuseDeployment.bind()


def build_app(args: dict[str, str]) -> Any:
    """Application builder for ``serve run persona_agents.serving.ray_app:build_app key=value...``."""
    overrides = {k: v for k, v in args.items() if k in EngineConfig.model_fields}
    config = EngineConfig.from_env(**overrides)
    gpus = args.get("gpus_per_replica")
    return make_deployment(config, replicas=int(args.get("replicas", 2)),
                           gpus_per_replica=None if gpus is None else float(gpus),
                           cpus_per_replica=float(args.get("cpus_per_replica", 1)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m persona_agents.serving.ray_app",
                                     description="PersonaFuse replicas on Ray Serve")
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--gpus-per-replica", type=float, help="default: 1 when the cluster has GPUs, else 0")
    parser.add_argument("--cpus-per-replica", type=float, default=1.0)
    parser.add_argument("--address", help="an existing Ray cluster (default: start a local one)")
    args = parser.parse_args(argv)

    import ray
    from ray import serve

    ray.init(address=args.address, include_dashboard=False)
    serve.start(http_options={"host": args.host, "port": args.port})
    app = make_deployment(EngineConfig.from_env(), replicas=args.replicas, gpus_per_replica=args.gpus_per_replica,
                          cpus_per_replica=args.cpus_per_replica)
    print(f"persona-agents: {args.replicas} replicas on http://{args.host}:{args.port} (pid {os.getpid()})", flush=True)
    serve.run(app, blocking=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
