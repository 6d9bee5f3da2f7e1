"""Silences from the command line reach the running agent; exported rules pass promtool."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from support.agentproc import (
    cli,
    cli_json,
    free_port,
    only_collectors,
    running_agent,
    wait_for,
    write_config,
)

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def config_for(tmp_path: Path, spool: Path, port: int) -> Path:
    return write_config(tmp_path / "agent.yaml", {
        "agent": {"name": "silenthost", "state_dir": "state", "listen": f"127.0.0.1:{port}"},
        "collectors": {
            **only_collectors("paths"),
            "paths": {"interval": "1s", "watch": [{"name": "spool", "path": str(spool)}]},
        },
        "evaluation": {"interval": "1s"},
        "rules": [{"name": "SpoolNotEmpty", "expr": 'opswatch_path_files{name="spool"}',
                   "warning": 0, "actions": {"ticket": True}}],
    })  # fmt: skip


def tickets(config: Path) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = cli_json(config, "tickets", "list")
    return found


def test_a_silenced_alert_is_exported_but_opens_no_ticket_until_the_silence_ends(
    tmp_path: Path,
) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    port = free_port()
    config = config_for(tmp_path, spool, port)
    added = cli_json(config, "silences", "add", "-m", 'alertname="SpoolNotEmpty"', "--for", "1h",
                     "--comment", "mail relay migration", "--as", "alice")  # fmt: skip
    assert added["author"] == "alice"
    (spool / "stuck.msg").write_text("x")
    with running_agent(config, port, tmp_path) as agent:
        line = wait_for("the silenced alert on /metrics", lambda: next(
            (ln for ln in agent.metrics().splitlines()
             if ln.startswith("opswatch_alert{") and 'alertname="SpoolNotEmpty"' in ln), None))
        assert 'suppressed="silenced"' in line and 'alertstate="firing"' in line
        (alert,) = agent.get("/api/v1/alerts").json()
        assert alert["silenced_by"] == added["id"]
        assert tickets(config) == []
        cli(config, "silences", "expire", added["id"], "--as", "bob")
        (ticket,) = wait_for("a ticket once the silence ended", lambda: tickets(config))
        assert ticket["state"] == "open"
    window = cli_json(config, "silences", "add", "-m", 'alertname="SpoolNotEmpty"', "--window",
                      "02:00-04:00", "--weekday", "sun", "--time-zone", "Europe/Berlin",
                      "--comment", "weekly maintenance")  # fmt: skip
    assert window["ends_at"] is None
    assert window["recurring"] == [{"weekdays": ["sun"], "start": "02:00:00", "end": "04:00:00",
                                    "time_zone": "Europe/Berlin"}]  # fmt: skip
    listed = cli_json(config, "silences", "list", "--all")
    assert [s["id"] for s in listed] == [window["id"], added["id"]]


def test_exported_rules_of_the_shipped_config_pass_promtool(tmp_path: Path) -> None:
    out = tmp_path / "opswatch.rules.yml"
    proc = cli(REPO / "agent.yaml", "rules", "export", "-o", str(out))
    assert "skipped" not in proc.stderr
    promtool = shutil.which("promtool")
    assert promtool, "promtool (Debian package prometheus) is required"
    check = subprocess.run([promtool, "check", "rules", str(out)], capture_output=True, text=True,
                           timeout=60, check=False)  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS: 13 rules found" in check.stdout
