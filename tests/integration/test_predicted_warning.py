"""A directory filling at a steady rate raises a *predicted* warning before its limit is
reached; the time to threshold is right and the ticket carries the matrix's priority and due."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

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

LIMIT = 4_000_000  # bytes: the threshold the prediction is about
CHUNK, EVERY = 20_000, 0.5  # 40 kB/s


def writer(spool: Path, stop: threading.Event) -> None:
    """Append CHUNK bytes every EVERY seconds; at most 240 times (two minutes)."""
    for i in range(240):
        if stop.wait(EVERY):
            return
        (spool / f"part-{i:04d}.dat").write_bytes(b"\0" * CHUNK)


def config_for(tmp_path: Path, spool: Path, port: int) -> Path:
    return write_config(tmp_path / "agent.yaml", {
        "agent": {"name": "fillhost", "state_dir": "state", "listen": f"127.0.0.1:{port}"},
        "collectors": {
            **only_collectors("paths"),
            "paths": {"interval": "1s", "watch": [{"name": "spool", "path": str(spool)}]},
        },
        "evaluation": {"interval": "1s"},
        "rules": [{
            "name": "SpoolWillFill",
            "expr": f'time_to_threshold(opswatch_path_size_bytes{{name="spool"}}[20s], {LIMIT})',
            "op": "<", "warning": 600, "critical": 10, "for": "12s",
            "annotations": {"summary": "{path} reaches its limit in {value} s"},
            "actions": {"ticket": True},
        }],
    })  # fmt: skip


def size(text: str) -> float:
    line = next(ln for ln in text.splitlines() if ln.startswith("opswatch_path_size_bytes{"))
    return float(line.rsplit(" ", 1)[1])


def test_filling_directory_raises_a_predicted_warning_with_matrix_priority(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    port = free_port()
    config = config_for(tmp_path, spool, port)
    stop = threading.Event()
    fill = threading.Thread(target=writer, args=(spool, stop), daemon=True)
    with running_agent(config, port, tmp_path) as agent:
        fill.start()
        try:
            def firing() -> dict[str, Any] | None:
                alerts = agent.get("/api/v1/alerts").json()
                return next((a for a in alerts if a["state"] == "firing"), None)

            alert = wait_for("the predicted warning", firing, timeout=90)
            now_size = size(agent.metrics())
            (ticket,) = wait_for("its ticket", lambda: cli_json(config, "tickets", "list"))
        finally:
            stop.set()
            fill.join(10)
    assert now_size < LIMIT, "the warning must come before the threshold is reached"
    assert alert["level"] == "warning"
    expected = (LIMIT - now_size) / (CHUNK / EVERY)
    assert alert["value"] == pytest.approx(expected, rel=0.35)
    # Full within a quarter of the 600 s horizon, on a steady line of 10+ points: likely;
    # medium (default) impact: high risk, P2 important.
    assert (alert["likelihood"], alert["impact"], alert["risk"]) == ("likely", "medium", "high")
    assert alert["priority"] == "P2"
    assert ticket["priority"] == "P2"
    assert ticket["response_due"] - ticket["opened_at"] == pytest.approx(4 * 3600)
    assert ticket["resolution_due"] - ticket["opened_at"] == pytest.approx(24 * 3600)
    assert "[P2 important] SpoolWillFill" in ticket["title"]
