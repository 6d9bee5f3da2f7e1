"""Start the real `opswatch` command as a process on loopback, and always stop it by its pid."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psutil
import yaml

from agent.config import CollectorsSection

BIN = Path(sys.executable).parent
OPSWATCH = str(BIN / "opswatch")
T = TypeVar("T")


def stop_process(proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """SIGTERM a process this test started, by its pid; SIGKILL it if it has not gone in `grace`."""
    proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for(
    what: str, probe: Callable[[], T | None], timeout: float = 60.0, every: float = 0.25
) -> T:
    """Poll `probe` until it returns something truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


def env(extra: dict[str, str] | None = None) -> dict[str, str]:
    out = dict(os.environ)
    out["PATH"] = f"{BIN}{os.pathsep}{out.get('PATH', '')}"
    out.update(extra or {})
    return out


def cli(
    config: Path, *args: str, check: bool = True, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `opswatch ARGS -c CONFIG` and return the finished process."""
    proc = subprocess.run(
        [OPSWATCH, *args, "-c", str(config)],
        capture_output=True,
        text=True,
        env=env(extra_env),
        timeout=120,
        check=False,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"opswatch {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
    return proc


def cli_json(config: Path, *args: str) -> Any:
    return json.loads(cli(config, *args, "--json").stdout)


class AgentProcess:
    """A running `opswatch run`; `.url` is its HTTP base."""

    def __init__(self, config: Path, port: int, cwd: Path, extra_env: dict[str, str] | None = None):
        self.config, self.port, self.url = config, port, f"http://127.0.0.1:{port}"
        self.log = (cwd / f"agent-{time.monotonic_ns()}.log").open("w")
        self.proc = subprocess.Popen(
            [OPSWATCH, "run", "-c", str(config)],
            cwd=cwd,
            env=env(extra_env),
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.url + path, timeout=5)

    def wait_ready(self, timeout: float = 60) -> None:
        def ready() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"agent exited with {self.proc.returncode}: {self.output()}")
            try:
                return self.get("/-/ready").status_code == 200
            except httpx.HTTPError:
                return False

        wait_for("the agent to be ready", ready, timeout)

    def metrics(self) -> str:
        return self.get("/metrics").text

    def output(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text()

    def children(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def kill(self) -> None:
        """SIGKILL the agent, then every process it had started, each by its pid."""
        orphans = self.children()
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        for child in orphans:
            with suppress(psutil.NoSuchProcess):
                child.kill()

    def stop(self) -> int:
        """SIGTERM and wait; SIGKILL if it does not stop within 20 s. Returns the exit code."""
        if self.proc.poll() is None:
            orphans = self.children()
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()
            for child in orphans:
                if child.is_running():
                    child.kill()
        self.log.close()
        return self.proc.returncode


@contextmanager
def running_agent(
    config: Path, port: int, cwd: Path, extra_env: dict[str, str] | None = None
) -> Iterator[AgentProcess]:
    agent = AgentProcess(config, port, cwd, extra_env)
    try:
        agent.wait_ready()
        yield agent
    finally:
        agent.stop()


def write_config(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def only_collectors(*enabled: str, interval: str = "1s") -> dict[str, Any]:
    """A collectors section with every collector off except `enabled`, all at `interval`."""
    names = list(CollectorsSection.model_fields)
    return {n: {"enabled": n in enabled, "interval": interval} for n in names}
