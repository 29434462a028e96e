"""Run by tests/ray/test_ray_serve.py with the ray virtualenv's python: a local Ray cluster,
two PersonaFuse replicas on CPU behind Ray Serve's proxy, concurrent requests; prints JSON."""

from __future__ import annotations

import json
import sys
import threading

import httpx
import ray
from ray import serve

from persona_agents.config import EngineConfig
from persona_agents.serving.ray_app import make_deployment


def main(port: int) -> None:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(make_deployment(EngineConfig.from_env(max_batch_size=8), replicas=2, cpus_per_replica=1))
    url = f"http://127.0.0.1:{port}"
    status = serve.status().applications["default"].deployments["PersonaFuse"]
    print(f"deployment: {status.status} {status.replica_states}", file=sys.stderr, flush=True)
    replicas = {httpx.get(f"{url}/ready", timeout=60).json()["replica"] for _ in range(30)}
    replies: list[dict] = [{}] * 8
    barrier = threading.Barrier(8)
    experts = ["openness_high", "conscientiousness_high", "extraversion_high", "agreeableness_high",
               "neuroticism_low", "openness_low", "extraversion_low", "agreeableness_low"]

    def call(i: int) -> None:
        barrier.wait()
        body = {"messages": [{"role": "user", "content": f"Say hello to person {i}."}], "max_tokens": 8,
                "persona_weights": {experts[i]: 1.0}}
        response = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=300)
        replies[i] = {"status": response.status_code, "body": response.json(),
                      "replica": response.headers.get("x-persona-replica")}

    threads = [threading.Thread(target=call, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stream = httpx.post(f"{url}/v1/chat/completions", timeout=300, json={
        "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 6, "stream": True})
    bad = httpx.post(f"{url}/v1/chat/completions", json={"messages": []}, timeout=60)
    replicas |= {r["replica"] for r in replies}
    print("RESULT " + json.dumps({"replicas": sorted(replicas), "replies": replies, "stream": stream.text,
                      "bad": [bad.status_code, bad.json()]}), flush=True)
    serve.shutdown()
    ray.shutdown()


if __name__ == "__main__":
    main(int(sys.argv[1]))
