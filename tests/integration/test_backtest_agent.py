"""Backtest over the agent's own retained history (no Prometheus needed)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
from support.agentproc import (
    OPSWATCH,
    env,
    free_port,
    only_collectors,
    running_agent,
    wait_for,
    write_config,
)

pytestmark = pytest.mark.integration


def test_backtest_replays_the_agents_own_history(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    port = free_port()
    config = write_config(tmp_path / "agent.yaml", {
        "agent": {"name": "histhost", "state_dir": "state", "listen": f"127.0.0.1:{port}"},
        "collectors": {
            **only_collectors("paths"),
            "paths": {"interval": "1s", "watch": [{"name": "spool", "path": str(spool)}]},
        },
        "evaluation": {"interval": "1s"},
        "rules": [{"name": "SpoolBusy", "expr": 'opswatch_path_files{name="spool"}', "warning": 2,
                   "for": "2s", "actions": {"ticket": True}}],
    })  # fmt: skip
    started = time.time()
    with running_agent(config, port, tmp_path) as agent:
        for i in range(4):
            (spool / f"m{i}").write_text("x")
        wait_for("the alert", lambda: [a for a in agent.get("/api/v1/alerts").json()
                                       if a["state"] == "firing"])  # fmt: skip
        for path in spool.iterdir():
            path.unlink()
        wait_for("the clear", lambda: not agent.get("/api/v1/alerts").json() or None)
        history = agent.get("/api/v1/history?names=opswatch_path_files").json()
        assert history and history[0]["labels"]["name"] == "spool"
        assert agent.get("/api/v1/history").status_code == 400
        command = [
            OPSWATCH,
            "rules",
            "backtest",
            "-c",
            str(config),
            "--agent",
            agent.url,
            "--from",
            str(started),
            "--to",
            str(time.time()),
            "--step",
            "1s",
            "--json",
        ]
        done = subprocess.run(command, capture_output=True, text=True, env=env(), timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    counts = report["rules"]["SpoolBusy"]
    assert (counts["alerts"], counts["tickets"]) == (1, 1)
