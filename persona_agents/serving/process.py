"""``persona-agents serve`` in a child process: a free port, wait until ready, stop by PID.

Used by the bench and the tests; handy for scripts too::

    with ServerProcess() as server:
        ChatPersonaFuse(base_url=server.url).invoke("Hi")
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import httpx


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """A PersonaFuse server on ``host:port`` (a free port by default) in a child process."""

    def __init__(self, args: Sequence[str] = (), *, host: str = "127.0.0.1", port: int | None = None,
                 env: dict[str, str] | None = None, ready_timeout: float = 600.0) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.args = list(args)
        self.env = {**os.environ, **(env or {})}
        # the child imports the same persona_agents as this process (a worktree, not an installed copy)
        root = str(Path(__file__).resolve().parents[2])
        self.env["PYTHONPATH"] = os.pathsep.join(p for p in (root, self.env.get("PYTHONPATH", "")) if p)
        self.ready_timeout = ready_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self.log = Path(tempfile.mkstemp(prefix="persona-serve-", suffix=".log")[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> ServerProcess:
        command = [sys.executable, "-m", "persona_agents.cli", "serve", "--host", self.host, "--port", str(self.port),
                   *self.args]
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=self.env)
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with {self.process.returncode}:\n{self.tail()}")
            try:
                response = httpx.get(f"{self.url}/ready", timeout=2)
                if response.status_code == 200:
                    return self
                if response.json().get("status") == "failed":
                    raise RuntimeError(f"the server could not load its model:\n{self.tail()}")
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"the server was not ready within {self.ready_timeout:.0f} s:\n{self.tail()}")

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.kill(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=15)

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
        self.log.unlink(missing_ok=True)
