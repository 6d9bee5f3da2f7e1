"""SIGKILL while a run is in progress: after a restart the run is `interrupted`, never re-run."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from support.agentproc import (
    AgentProcess,
    cli_json,
    free_port,
    only_collectors,
    wait_for,
    write_config,
)

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).parent / "fixtures"


def config_for(tmp_path: Path, spool: Path, port: int) -> Path:
    return write_config(
        tmp_path / "agent.yaml",
        {
            "agent": {"name": "crashhost", "state_dir": "state", "listen": f"127.0.0.1:{port}"},
            "collectors": {
                **only_collectors("paths"),
                "paths": {"interval": "1s", "watch": [{"name": "spool", "path": str(spool)}]},
            },
            "evaluation": {"interval": "1s"},
            "rules": [
                {
                    "name": "SpoolNotEmpty",
                    "expr": 'opswatch_path_files{name="spool"}',
                    "critical": 0,
                    "actions": {"runbook": "slow_fix", "approval": "auto", "ticket": True},
                }
            ],
            # a critical alert is high risk, whose default policy wants a person: this host
            # lets every risk level run unattended, so the rule's approval: auto stands
            "risk": {"responses": {level: {"policy": "auto"}
                                   for level in ("low", "medium", "high", "critical")}},
            "remediation": {
                "runbooks_dir": str(FIXTURES / "runbooks"),
                "runbooks": {"slow_fix": {"playbook": "slow_fix.yml", "timeout": "5m"}},
            },
        },
    )


def runs(config: Path) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = cli_json(config, "runs", "list")
    return found


def test_killed_run_is_interrupted_and_not_repeated(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    (spool / "stuck.msg").write_text("x")
    port = free_port()
    config = config_for(tmp_path, spool, port)

    first = AgentProcess(config, port, tmp_path)
    try:
        first.wait_ready()
        wait_for("the run to start", lambda: [r for r in runs(config) if r["state"] == "running"])
        wait_for(
            "ansible to be running", lambda: [c for c in first.children() if c.name() == "sleep"]
        )
    finally:
        first.kill()

    second = AgentProcess(config, port, tmp_path)
    try:
        second.wait_ready()
        (run,) = wait_for(
            "the run to be marked interrupted",
            lambda: [r for r in runs(config) if r["state"] == "interrupted"],
        )
        # The alert is still firing (the spool is not empty); give the agent several cycles.
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline:
            assert not [c for c in second.children() if c.name() == "sleep"], (
                "the run was started again"
            )
            time.sleep(0.5)
        assert [r["id"] for r in runs(config)] == [run["id"]]
        assert 'alertname="SpoolNotEmpty"' in second.metrics()
        assert second.stop() == 0
    finally:
        second.stop()
