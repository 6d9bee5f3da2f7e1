"""Webhook events reach a running agent: an event rule fires, opens a ticket and clears."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from support.agentproc import (
    cli_json,
    free_port,
    only_collectors,
    running_agent,
    wait_for,
    write_config,
)

pytestmark = pytest.mark.integration
TOKEN = "backup-hook-6f1d0c2b9a7e4d3f"


def config_for(tmp_path: Path, port: int) -> Path:
    token_file = tmp_path / "hook.token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    return write_config(tmp_path / "agent.yaml", {
        "agent": {"name": "backuphost", "state_dir": "state", "listen": f"127.0.0.1:{port}"},
        "api": {"tokens": [
            {"name": "backup-system", "role": "events", "token_file": str(token_file)},
        ]},
        "collectors": only_collectors("loadavg"),
        "evaluation": {"interval": "1s"},
        "event_rules": [{
            "name": "BackupFailed", "event": {"name": "backup_failed"}, "identify": ["job"],
            "clear_event": {"name": "backup_ok"}, "level": "critical",
            "annotations": {"summary": "backup {job} failed"}, "actions": {"ticket": True},
        }],
    })  # fmt: skip


def tickets(config: Path) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = cli_json(config, "tickets", "list")
    return found


def test_a_failed_backup_event_opens_a_ticket_and_a_success_resolves_it(tmp_path: Path) -> None:
    port = free_port()
    config = config_for(tmp_path, port)
    with running_agent(config, port, tmp_path) as agent:
        url = f"{agent.url}/api/v1/events"
        failed = {"name": "backup_failed", "labels": {"job": "db-nightly"},
                  "fields": {"error": "{{ 7*7 }} disk quota exceeded"}}  # fmt: skip
        assert httpx.post(url, json=failed, timeout=5).status_code == 401
        headers = {"Authorization": f"Bearer {TOKEN}"}
        assert httpx.post(url, json=failed, headers=headers, timeout=5).status_code == 202
        (ticket,) = wait_for("a P1 ticket", lambda: tickets(config))
        assert ticket["priority"] == "P1" and "BackupFailed" in ticket["title"]
        assert agent.get("/api/v1/alerts").status_code == 401, "reads need a token once any exists"
        alerts = httpx.get(f"{agent.url}/api/v1/alerts", headers=headers, timeout=5).json()
        assert [(a["rule"], a["labels"]["job"]) for a in alerts] == [("BackupFailed", "db-nightly")]
        ok = {"name": "backup_ok", "labels": {"job": "db-nightly"}}
        assert httpx.post(url, json=ok, headers=headers, timeout=5).status_code == 202
        wait_for("the ticket to be resolved",
                 lambda: [t for t in tickets(config) if t["state"] == "resolved"])  # fmt: skip
        assert TOKEN not in agent.output(), "a token must never reach the logs"
