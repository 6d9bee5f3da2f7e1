"""Backtest against a real Prometheus that scraped the real agent.

The agent watches a directory; Prometheus scrapes it every second. The directory goes over its
limit for a while and back, the agent itself fires once, opens one ticket and asks for one
approval; then `opswatch rules backtest --prometheus` replays what Prometheus recorded and must
count exactly that: one alert, one ticket, one approval, nothing automatic, no SLA breach.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from support.agentproc import (
    OPSWATCH,
    cli_json,
    env,
    free_port,
    only_collectors,
    running_agent,
    stop_process,
    wait_for,
    write_config,
)

pytestmark = pytest.mark.integration

LIMIT = 512 * 1024
RULE = "LogDirectoryOverLimit"


def agent_config(tmp_path: Path, logs: Path, port: int) -> Path:
    rule = {
        "name": RULE,
        "expr": 'opswatch_path_size_bytes{name="applogs"}',
        "warning": LIMIT,
        "for": "2s",
        "actions": {"ticket": True, "runbook": "clean_directory", "approval": "required"},
    }
    runbook = {"playbook": "clean_directory.yml", "vars": {"roots": [str(logs.parent)]}}
    return write_config(tmp_path / "agent.yaml", {
        "agent": {"name": "testhost", "state_dir": "state", "listen": f"127.0.0.1:{port}"},
        "collectors": {
            **only_collectors("paths"),
            "paths": {"interval": "1s", "watch": [{"name": "applogs", "path": str(logs)}]},
        },
        "evaluation": {"interval": "1s"},
        "rules": [rule],
        "remediation": {"runbooks": {"clean_directory": runbook}},
    })  # fmt: skip


@contextmanager
def running_prometheus(tmp_path: Path, target: str) -> Iterator[str]:
    """A Prometheus with its own config and storage scraping `target` every second."""
    binary = shutil.which("prometheus")
    assert binary, "prometheus (Debian package prometheus) is required for this test"
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [{"job_name": "opswatch", "static_configs": [{"targets": [target]}]}],
    }))  # fmt: skip
    port = free_port()
    log = (tmp_path / "prometheus.log").open("w")
    proc = subprocess.Popen(
        [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for("Prometheus to be ready", lambda: _ready(url, proc), timeout=60)
        yield url
    finally:
        stop_process(proc, grace=20)
        log.close()


def _ready(url: str, proc: subprocess.Popen[bytes]) -> bool:
    if proc.poll() is not None:
        raise AssertionError(f"prometheus exited with {proc.returncode}")
    try:
        return httpx.get(f"{url}/-/ready", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def size_in_prometheus(url: str) -> float | None:
    """The latest `opswatch_path_size_bytes` Prometheus holds for the watched directory."""
    try:
        query = {"query": 'opswatch_path_size_bytes{name="applogs"}'}
        answer = httpx.get(f"{url}/api/v1/query", params=query, timeout=5)
    except httpx.HTTPError:
        return None
    result = answer.json()["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def backtest(config: Path, prometheus: str, start: float, end: float) -> dict[str, Any]:
    proc = subprocess.run(
        [OPSWATCH, "rules", "backtest", "-c", str(config), "--prometheus", prometheus,
         "--from", f"{start:.3f}", "--to", f"{end:.3f}", "--step", "1s", "--json"],
        capture_output=True, text=True, env=env(), timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report: dict[str, Any] = yaml.safe_load(proc.stdout)  # JSON is YAML
    return report


def test_backtest_counts_what_the_agent_did_from_what_prometheus_scraped(tmp_path: Path) -> None:
    logs = tmp_path / "var" / "applogs"
    logs.mkdir(parents=True)
    port = free_port()
    config = agent_config(tmp_path, logs, port)
    with running_agent(config, port, tmp_path) as agent, \
            running_prometheus(tmp_path, f"127.0.0.1:{port}") as prometheus:  # fmt: skip
        wait_for("Prometheus to scrape the agent", lambda: size_in_prometheus(prometheus) == 0)
        start = time.time()
        (logs / "big.log").write_bytes(b"x" * (2 * LIMIT))
        wait_for("the agent's ticket", lambda: cli_json(config, "tickets", "list"), timeout=30)
        wait_for("Prometheus to see the full directory",
                 lambda: (size_in_prometheus(prometheus) or 0) > LIMIT)  # fmt: skip
        (logs / "big.log").unlink()
        wait_for("Prometheus to see the cleared directory",
                 lambda: size_in_prometheus(prometheus) == 0)  # fmt: skip
        wait_for(
            "the agent to resolve its ticket",
            lambda: all(t["state"] == "resolved" for t in cli_json(config, "tickets", "list")),
            timeout=30,
        )
        end = time.time() + 2
        wait_for("the last scrapes", lambda: time.time() > end + 1, timeout=10)
        assert agent.proc.poll() is None
        report = backtest(config, prometheus, start, end)

    tickets = cli_json(config, "tickets", "list")
    runs = cli_json(config, "runs", "list")
    assert (len(tickets), len(runs)) == (1, 1)  # what the agent itself did
    counts = report["rules"][RULE]
    assert counts["alerts"] == 1
    assert (counts["tickets"], counts["occurrences"]) == (len(tickets), 0)
    assert (counts["approvals"], counts["automatic_runs"]) == (len(runs), 0)
    assert counts["tickets_by_priority"] == {tickets[0]["priority"]: 1}
    assert (counts["response_breaches"], counts["resolution_breaches"]) == (0, 0)
    assert (counts["firing_at_end"], counts["open_tickets_at_end"], counts["suppressed"]) == (
        0, 0, 0,
    )  # fmt: skip
    assert report["evaluations"] == int(end - start) + 1
    assert report["samples"] >= report["evaluations"]  # a scraped point for every evaluation
