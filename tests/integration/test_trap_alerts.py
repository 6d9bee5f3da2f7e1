"""Real `snmptrap` linkDown/linkUp against a running agent: an event rule fires and clears."""

from __future__ import annotations

import os
import shutil
import subprocess
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
IF_INDEX = "1.3.6.1.2.1.2.2.1.1.7"
LINK = {"linkDown": "1.3.6.1.6.3.1.1.5.3", "linkUp": "1.3.6.1.6.3.1.1.5.4"}


def free_udp_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def trap(kind: str, port: int, home: Path) -> None:
    assert shutil.which("snmptrap"), "net-snmp snmptrap is required: run scripts/install-test-peers"
    command = ["snmptrap", "-v2c", "-c", "lab-traps", f"127.0.0.1:{port}", "", LINK[kind],
               IF_INDEX, "i", "7"]  # fmt: skip
    # MIBS="": Debian ships no IETF MIB text; a private config/persistent dir for the tool.
    env = {**os.environ, "MIBS": "", "SNMPCONFPATH": str(home), "SNMP_PERSISTENT_DIR": str(home)}
    subprocess.run(command, env=env, check=True, timeout=30, capture_output=True)


def config_for(tmp_path: Path, port: int, trap_port: int) -> Path:
    return write_config(tmp_path / "agent.yaml", {
        "agent": {"name": "poller1", "state_dir": "state", "listen": f"127.0.0.1:{port}"},
        "collectors": only_collectors("loadavg"),
        "evaluation": {"interval": "1s"},
        "traps": {"enabled": True, "listen": f"127.0.0.1:{trap_port}",
                  "communities": ["lab-traps"], "devices": {"127.0.0.1": "access-sw3"}},
        "event_rules": [{
            "name": "InterfaceDown", "event": {"name": "linkDown"},
            "identify": ["target", "ifIndex"],
            "clear_event": {"name": "linkUp"}, "level": "critical", "actions": {"ticket": True},
            "annotations": {"summary": "interface {ifIndex} on {target} is down"},
        }],
    })  # fmt: skip


def alerts(agent: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = agent.get("/api/v1/alerts").json()
    return found


def test_link_down_trap_fires_and_link_up_clears(tmp_path: Path) -> None:
    port, trap_port = free_port(), free_udp_port()
    config = config_for(tmp_path, port, trap_port)
    with running_agent(config, port, tmp_path) as agent:
        trap("linkDown", trap_port, tmp_path)
        (alert,) = wait_for("the InterfaceDown alert", lambda: [
            a for a in alerts(agent) if a["state"] == "firing"])  # fmt: skip
        assert {k: alert["labels"][k] for k in ("target", "ifIndex")} == {
            "target": "access-sw3", "ifIndex": "7"}  # fmt: skip
        assert alert["annotations"]["summary"] == "interface 7 on access-sw3 is down"
        (ticket,) = wait_for("its ticket", lambda: cli_json(config, "tickets", "list"))
        assert ticket["priority"] == "P1"
        text = agent.metrics()
        assert 'opswatch_snmp_traps_received_total{trap="linkDown",version="2c"} 1.0' in text
        trap("linkUp", trap_port, tmp_path)
        def resolved_tickets() -> list[dict[str, Any]]:
            return [t for t in cli_json(config, "tickets", "list") if t["state"] == "resolved"]

        resolved = wait_for("the ticket to be resolved", resolved_tickets)
        assert [t["id"] for t in resolved] == [ticket["id"]]
