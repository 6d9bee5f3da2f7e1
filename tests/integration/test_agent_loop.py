"""The whole loop on one host, with the agent as a real process.

A directory over its size limit fires an alert and opens a ticket; the cleanup run waits for
`opswatch runs approve`; ansible-runner really removes the old files; the alert clears and the
ticket is resolved with the run's outcome; /metrics shows it all and passes `promtool check
metrics`. Jinja in a directory name and a file name is never executed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from support.agentproc import (
    OPSWATCH,
    cli,
    cli_json,
    free_port,
    only_collectors,
    running_agent,
    wait_for,
    write_config,
)

from agent.store import Store

pytestmark = pytest.mark.integration

OLD = 10 * 86400
JINJA = "{{ lookup('pipe', 'touch $OPSWATCH_MARKER') }}"


def fill(directory: Path, old: int, fresh: int, size: int = 100 * 1024) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for i in range(old):
        path = directory / f"app.{i}.log.gz"
        path.write_bytes(b"x" * size)
        os.utime(path, (time.time() - OLD, time.time() - OLD))
    for i in range(fresh):
        (directory / f"current-{i}.log").write_bytes(b"y" * 1024)


def agent_config(tmp_path: Path, logs: Path, port: int, **rule_extra: Any) -> Path:
    rule: dict[str, Any] = {
        "name": "LogDirectoryOverLimit",
        "expr": 'opswatch_path_size_bytes{name="applogs"}',
        "warning": 1024 * 1024,
        "for": "2s",
        "annotations": {"summary": "{path} holds {value} bytes, limit {threshold}"},
        "actions": {
            "ticket": True,
            "runbook": "clean_directory",
            "approval": "required",
            "vars": {"path": "{path}"},
        },
    }
    rule.update(rule_extra)
    return write_config(
        tmp_path / "agent.yaml",
        {
            "agent": {
                "name": "testhost",
                "state_dir": "state",
                "listen": f"127.0.0.1:{port}",
                "log": {"level": "info", "format": "json"},
            },
            "collectors": {
                **only_collectors("paths", "memory", "loadavg", "cpu"),
                "paths": {"interval": "1s", "watch": [{"name": "applogs", "path": str(logs)}]},
            },
            "evaluation": {"interval": "1s"},
            "rules": [rule],
            "remediation": {
                "approval_ttl": "10m",
                "verify_within": "2m",
                "runbooks": {
                    "clean_directory": {
                        "playbook": "clean_directory.yml",
                        "timeout": "2m",
                        "vars": {
                            "roots": [str(logs.parent)],
                            "older_than_days": 7,
                            "mode": "remove",
                        },
                    }
                },
            },
        },
    )


def runs(config: Path) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = cli_json(config, "runs", "list")
    return found


def tickets(config: Path) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = cli_json(config, "tickets", "list")
    return found


def metric(text: str, metric_name: str, **labels: str) -> float | None:
    """The value of the first sample of `metric_name` whose labels include `labels`."""
    for line in text.splitlines():
        if not line.startswith(metric_name + "{") and not line.startswith(metric_name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


# node_exporter's meminfo names keep the kernel's CamelCase fields (node_memory_MemTotal_bytes);
# promtool's linter flags them on node_exporter itself. We keep them so dashboards work.
NODE_EXPORTER_CAMELCASE = re.compile(
    r"^node_memory_[A-Za-z0-9_()]+ metric names should be written in 'snake_case' not 'camelCase'$"
)


def promtool_check(text: str) -> None:
    """promtool parses the exposition and finds nothing but node_exporter's own CamelCase names."""
    promtool = shutil.which("promtool")
    assert promtool, (
        "promtool (Debian package prometheus) is required: run scripts/install-test-peers"
    )
    proc = subprocess.run(
        [promtool, "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    findings = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()]
    assert proc.returncode in (0, 3), f"promtool could not parse the exposition: {findings}"
    assert [f for f in findings if not NODE_EXPORTER_CAMELCASE.match(f)] == []
    without_meminfo = "\n".join(ln for ln in text.splitlines() if "node_memory_" not in ln) + "\n"
    strict = subprocess.run(
        [promtool, "check", "metrics"],
        input=without_meminfo,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert strict.returncode == 0, strict.stdout + strict.stderr


def test_fault_alert_approval_fix_and_ticket(tmp_path: Path) -> None:
    logs = tmp_path / "logs" / f"app-{JINJA}"
    fill(logs, old=30, fresh=3)
    hostile_file = logs / f"{JINJA}.log"
    hostile_file.write_bytes(b"z" * 1024)
    os.utime(hostile_file, (time.time() - OLD, time.time() - OLD))
    marker = tmp_path / "pwned"
    port = free_port()
    config = agent_config(tmp_path, logs, port)
    extra_env = {"OPSWATCH_MARKER": str(marker)}

    with running_agent(config, port, tmp_path, extra_env) as agent:
        pending = wait_for(
            "a run waiting for approval",
            lambda: [r for r in runs(config) if r["state"] == "pending_approval"],
        )
        (run,) = pending
        assert run["runbook"] == "clean_directory"
        assert run["variables"]["path"] == str(logs)

        (ticket,) = wait_for("a ticket", lambda: tickets(config))
        assert ticket["state"] == "open"
        assert ticket["priority"] == "P2"
        assert ticket["response_due"] - ticket["opened_at"] == pytest.approx(4 * 3600)
        assert "LogDirectoryOverLimit" in ticket["title"]
        shown = cli(config, "tickets", "show", str(ticket["id"])).stdout
        assert "testhost" in shown
        assert str(logs) in shown

        text = agent.metrics()
        assert (
            metric(text, "opswatch_alert", alertname="LogDirectoryOverLimit", alertstate="firing")
            == 1
        )
        assert (
            metric(
                text,
                "opswatch_remediation_runs",
                runbook="clean_directory",
                state="pending_approval",
            )
            == 1
        )
        assert metric(text, "opswatch_tickets_open", priority="P2") == 1
        assert metric(text, "opswatch_path_size_bytes", name="applogs") > 1024 * 1024
        assert metric(text, "opswatch_collector_up", collector="paths") == 1
        promtool_check(text)

        time.sleep(2)  # nothing runs before an approval
        assert len(list(logs.glob("app.*.log.gz"))) == 30

        # Two engineers approve at once: exactly one wins, the run happens once.
        racers = [
            subprocess.Popen(
                [OPSWATCH, "runs", "approve", run["id"], "--as", who, "-c", str(config)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for who in ("alice", "bob")
        ]
        outcomes = [(p.wait(60), *p.communicate()) for p in racers]
        assert sorted(rc for rc, _, _ in outcomes) == [0, 1], outcomes
        loser = next(err for rc, _, err in outcomes if rc == 1)
        assert "already approved" in loser

        done = wait_for(
            "the run to finish",
            lambda: [r for r in runs(config) if r["state"] in ("succeeded", "verified", "failed")],
            timeout=120,
        )
        assert done[0]["state"] in ("succeeded", "verified"), cli(
            config, "runs", "show", run["id"]
        ).stdout
        assert sorted(p.name for p in logs.iterdir()) == [f"current-{i}.log" for i in range(3)]

        resolved = wait_for(
            "the ticket to be resolved",
            lambda: [t for t in tickets(config) if t["state"] == "resolved"],
            timeout=60,
        )
        detail = cli_json(config, "tickets", "show", str(resolved[0]["id"]))
        assert run["id"] in detail["resolution"]
        assert "clean_directory" in detail["resolution"]
        assert wait_for(
            "the run to be verified",
            lambda: [r for r in runs(config) if r["state"] == "verified"],
            timeout=30,
        )
        assert len(runs(config)) == 1, "the run must happen exactly once"

        def cleared() -> str | None:
            text = agent.metrics()
            firing = metric(text, "opswatch_alert", alertname="LogDirectoryOverLimit")
            verified = metric(text, "opswatch_remediation_runs", state="verified")
            return text if firing is None and verified == 1 else None

        text = wait_for("metrics to show the fix", cleared, timeout=30)
        assert metric(text, "opswatch_tickets_open", priority="P2") == 0
        promtool_check(text)
        approvals = [
            e
            for e in Store(f"sqlite:///{tmp_path / 'state' / 'opswatch.db'}").list_audit()
            if e.action == "run.approve"
        ]
        assert [(e.actor in ("alice", "bob"), e.object) for e in approvals] == [
            (True, f"run/{run['id']}")
        ]

    assert not marker.exists(), "a Jinja expression from a file or directory name was executed"
    state = tmp_path / "state" / "opswatch.db"
    assert state.stat().st_mode & 0o077 == 0, "run output and tickets: readable by the owner only"
