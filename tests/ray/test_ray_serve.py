"""Two PersonaFuse replicas on Ray Serve (CPU, the default model) behind Ray's HTTP proxy.

Ray's grpcio/protobuf pins clash with langgraph-api's, so Ray lives in a virtualenv of its own:
created here on first use under ``$PERSONA_AGENTS_HOME/ray-venv`` (about a minute: only
``ray[serve]`` is installed; torch, transformers and the rest come from this interpreter's
site-packages, appended after Ray's own by a ``.pth`` file) and reused afterwards. Set
``PERSONA_AGENTS_RAY_VENV`` to use another one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sysconfig
import venv
from pathlib import Path

import pytest

from persona_agents.config import home_dir
from persona_agents.serving.process import free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
RAY_REQUIREMENT = "ray[serve]>=2.40,<3"


def ray_python() -> Path:
    """The ray virtualenv's python, created when missing (the test skips if that fails)."""
    root = Path(os.environ.get("PERSONA_AGENTS_RAY_VENV") or home_dir() / "ray-venv")
    python = root / "bin" / "python"
    marker = root / ".persona-agents-ready"
    if marker.exists():
        return python
    try:
        venv.EnvBuilder(with_pip=True, clear=True).create(root)
        subprocess.run([str(python), "-m", "pip", "install", "-q", RAY_REQUIREMENT], check=True, timeout=900,
                       capture_output=True)
    except (subprocess.SubprocessError, OSError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        pytest.skip(f"could not build the ray virtualenv at {root}: {exc} {detail[-500:].decode(errors='replace')}")
    site_packages = Path(sysconfig.get_paths(vars={"base": str(root), "platbase": str(root)})["purelib"])
    ours = sysconfig.get_paths()["purelib"]
    (site_packages / "zz_persona_agents_base.pth").write_text(f"import site; site.addsitedir({ours!r})\n")
    marker.write_text(RAY_REQUIREMENT + "\n")
    return python


def test_two_replicas_on_ray_serve() -> None:
    python = ray_python()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p),
           "RAY_USAGE_STATS_ENABLED": "0"}
    process = subprocess.Popen([str(python), "-m", "tests.ray.driver", str(free_port())], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = process.communicate(timeout=600)
    except subprocess.TimeoutExpired:
        process.kill()  # by PID: the Popen handle
        out, err = process.communicate()
        pytest.fail(f"the Ray driver timed out:\n{err.decode(errors='replace')[-3000:]}")
    assert process.returncode == 0, err.decode(errors="replace")[-3000:]
    lines = [line for line in out.decode(errors="replace").splitlines() if line.startswith("RESULT ")]
    assert lines, f"no result from the driver:\n{out.decode(errors='replace')[-2000:]}"
    result = json.loads(lines[-1][len("RESULT ") :])
    assert len(result["replicas"]) == 2  # both replicas answered
    for reply in result["replies"]:
        assert reply["status"] == 200, reply
        body = reply["body"]
        assert body["choices"][0]["message"]["content"].strip()
        assert body["usage"]["completion_tokens"] <= 8
        assert body["persona"]["routed"] is False and body["persona"]["top_traits"]
    assert "data: [DONE]" in result["stream"] and '"usage"' not in result["stream"]
    assert result["bad"][0] == 400 and result["bad"][1]["error"]["type"] == "invalid_request_error"
