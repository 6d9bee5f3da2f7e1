"""The agent polls real snmpd (v2c and v3) from agent.yaml; /metrics shows it in
snmp_exporter's names; a dead target is down without holding the others up."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
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

from .conftest import V3_USERS, Snmpd, free_udp_port

pytestmark = pytest.mark.integration


RULES = [
    # a polled column and a derived indicator: both reach the rules as samples, although the
    # agent writes the polled families straight as exposition lines
    {"name": "LoopbackUp", "expr": 'ifOperStatus{ifName="lo"}', "warning": 0.5},  # up(1)
    {"name": "LoopbackRateSeen", "expr": 'opswatch_if_in_bytes_per_second{ifName="lo"}',
     "warning": -1},  # any rate: snmpd's cached counters make some rounds 0
]  # fmt: skip


def config_for(tmp_path: Path, snmpd: Snmpd, port: int) -> Path:
    v3 = V3_USERS[1]  # SHA-256 / AES-256 (net-snmp: Blumenthal)
    return write_config(tmp_path / "agent.yaml", {
        "agent": {"name": "noc-poller", "state_dir": "state", "listen": f"127.0.0.1:{port}"},
        "collectors": only_collectors("loadavg"),
        "evaluation": {"interval": "1s"},
        "rules": RULES,
        "snmp": {
            "defaults": {"interval": "2s", "timeout": "1s", "retries": 0},
            "credentials": {
                "lab": {"version": "2c", "community": snmpd.community},
                "lab-v3": {"version": "3", "user": v3.name, "auth_protocol": "sha256",
                           "auth_key": v3.auth_key, "priv_protocol": "aes256",
                           "priv_key": v3.priv_key},
            },
            "targets": [
                {"name": "lab-v2c", "address": "127.0.0.1", "port": snmpd.port,
                 "credentials": "lab", "labels": {"criticality": "high"}},
                {"name": "lab-v3", "address": "127.0.0.1", "port": snmpd.port,
                 "credentials": "lab-v3", "profiles": ["system"]},
                {"name": "dead", "address": "127.0.0.1", "port": free_udp_port(),
                 "credentials": "lab"},
            ],
        },
    })  # fmt: skip


def value(text: str, pattern: str) -> float | None:
    match = re.search(pattern + r" ([0-9.e+-]+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else None


def test_agent_polls_snmpd_and_exports_if_mib(tmp_path: Path, snmpd: Snmpd) -> None:
    port = free_port()
    config = config_for(tmp_path, snmpd, port)
    with running_agent(config, port, tmp_path) as agent:

        def polled() -> str | None:
            text = agent.metrics()
            return text if 'opswatch_snmp_up{target="dead"}' in text else None

        text = wait_for("a full SNMP poll", polled, timeout=30)
        assert value(text, r'opswatch_snmp_up\{criticality="high",target="lab-v2c"\}') == 1
        assert value(text, r'opswatch_snmp_up\{target="lab-v3"\}') == 1
        assert value(text, r'opswatch_snmp_up\{target="dead"\}') == 0
        assert value(text, r'opswatch_collector_up\{collector="snmp"\}') == 1
        assert re.search(r'^ifHCInOctets\{.*ifName="lo".*target="lab-v2c"', text, re.MULTILINE)
        assert re.search(r'^ifOperStatus\{[^}]*criticality="high"', text, re.MULTILINE)
        assert re.search(r'^sysUpTime\{target="lab-v3"\}', text, re.MULTILINE)
        # every series once, under one HELP/TYPE per family
        series = [line.rpartition(" ")[0] for line in text.splitlines() if line[:1] != "#"]
        assert len(series) == len(set(series))
        types = [line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")]
        assert len(types) == len(set(types))

        def firing() -> set[str] | None:
            alerts = agent.get("/api/v1/alerts").json()
            rules = {a["rule"] for a in alerts if a["state"] == "firing"}
            return rules if {"LoopbackUp", "LoopbackRateSeen"} <= rules else None

        wait_for("rules on polled and derived SNMP series to fire", firing, timeout=30)
        history = agent.get("/api/v1/history?names=ifOperStatus").json()
        assert any(s["labels"].get("ifName") == "lo" for s in history), history
    command = [OPSWATCH, "snmp", "walk", "lab-v2c", "1.3.6.1.2.1.1.5", "-c", str(config)]
    walk = subprocess.run(command, capture_output=True, text=True, env=env(), timeout=60)
    assert walk.returncode == 0, walk.stderr
    assert walk.stdout.strip() == '.1.3.6.1.2.1.1.5.0 = STRING: "ow-test"'


def _poller_children(agent_pid: int) -> list[int]:
    """The agent's SNMP poller processes, from /proc (their parent is the agent)."""
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
            cmdline = (status.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if f"\nPPid:\t{agent_pid}\n" in text and b"collector.snmp.process" in cmdline:
            found.append(int(status.parent.name))
    return found


def _gone(pid: int) -> bool:
    try:
        return "\nState:\tZ" in Path(f"/proc/{pid}/status").read_text()  # exited, not reaped
    except FileNotFoundError:
        return True


@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
def test_the_poller_process_never_outlives_its_agent(
    tmp_path: Path, snmpd: Snmpd, how: str
) -> None:
    """Stopped cleanly, the agent stops its child by pid; killed, the child sees its pipe end."""
    port = free_port()
    config = config_for(tmp_path, snmpd, port)
    with running_agent(config, port, tmp_path) as agent:
        wait_for("a full SNMP poll", lambda: "opswatch_snmp_up{" in agent.metrics(), timeout=30)
        [child] = _poller_children(agent.proc.pid)
        # the polled series come from the child, and its page is only in the full scrape
        assert "ifHCInOctets{" in agent.get("/metrics?part=snmp").text
        assert "ifHCInOctets{" not in agent.get("/metrics?part=agent").text
        if how == "SIGKILL":
            agent.proc.kill()
            agent.proc.wait(timeout=10)
    try:
        assert wait_for("the poller process to end", lambda: _gone(child) or None, timeout=10)
    finally:
        with contextlib.suppress(ProcessLookupError):  # never left behind, even on failure
            os.kill(child, signal.SIGKILL)
