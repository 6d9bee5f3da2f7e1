"""Real net-snmp `snmptrap`/`snmpinform` (v1, v2c, v3) against the receiver on 127.0.0.1.

Each test starts a receiver on a free port inside its own event loop, runs the net-snmp tool as
a child process (bounded in time, killed by its pid if it hangs) and checks what a user would:
the events with their labels, the tool's exit status (an inform exits 0 only once answered)
and the drop counters.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.model import Event
from collector.snmp.trap_config import TrapConfig
from collector.snmp.traps import TrapReceiver

pytestmark = pytest.mark.integration

SENDER_ENGINE = "0x8000000001aabbccdd"
AUTH_KEY, PRIV_KEY = "integration-auth", "integration-priv"
LINK_DOWN = ["1.3.6.1.6.3.1.1.5.3", "1.3.6.1.2.1.2.2.1.1.5", "i", "5",
             "1.3.6.1.2.1.31.1.1.1.1.5", "s", "eth5"]  # fmt: skip
USERS = {  # name: (auth, priv)
    "sha-aes": ("SHA", "AES"),
    "sha256-aes256": ("SHA-256", "AES-256"),
    "md5-des": ("MD5", "DES"),
}


@pytest.fixture(scope="module")
def net_snmp_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    if shutil.which("snmptrap") is None or shutil.which("snmpinform") is None:
        pytest.fail("net-snmp tools are not installed: apt-get install -y snmp")
    home: Path = tmp_path_factory.mktemp("net-snmp")
    # MIBS="" as Debian ships no IETF MIBs; SNMPCONFPATH and the persistent dir keep the tools
    # off /etc/snmp and /var/lib/snmp.
    yield dict(os.environ, MIBS="", SNMPCONFPATH=str(home), SNMP_PERSISTENT_DIR=str(home))


def config(**overrides: Any) -> TrapConfig:
    users = [{"name": n, "engine_id": SENDER_ENGINE, "auth_protocol": a, "auth_key": AUTH_KEY,
              "priv_protocol": p, "priv_key": PRIV_KEY} for n, (a, p) in USERS.items()]  # fmt: skip
    base = {"enabled": True, "listen": "127.0.0.1:0", "communities": ["ow-traps"],
            "users": users, "devices": {"127.0.0.1": "lab-switch"}}  # fmt: skip
    return TrapConfig.model_validate(base | overrides)


def usm(user: str, auth_key: str = AUTH_KEY) -> list[str]:
    auth, priv = USERS[user]
    return ["-u", user, "-l", "authPriv", "-a", auth, "-A", auth_key, "-x", priv, "-X", PRIV_KEY]


async def run_tool(args: list[str], env: dict[str, str]) -> int:
    proc = await asyncio.create_subprocess_exec(
        *args, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    try:
        return await asyncio.wait_for(proc.wait(), timeout=20)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, 9)
        await proc.wait()
        raise


async def settle(rx: TrapReceiver, count: int) -> None:
    """Traps are one-way: poll (bounded) until `count` datagrams were accepted or dropped."""
    for _ in range(100):
        if sum(rx.received.values()) + sum(rx.dropped.values()) >= count:
            return
        await asyncio.sleep(0.02)


def send(env: dict[str, str], *commands: list[str], cfg: TrapConfig | None = None,
         expect: int = 0) -> tuple[TrapReceiver, list[Event], list[int]]:  # fmt: skip
    """Start a receiver, run each tool with `{to}` replaced by its address, stop it."""
    events: list[Event] = []

    async def scenario() -> tuple[TrapReceiver, list[int]]:
        async with TrapReceiver(cfg or config(), events.append) as rx:
            to = f"127.0.0.1:{rx.address[1]}"
            codes = [await run_tool([a.replace("{to}", to) for a in c], env) for c in commands]
            await settle(rx, expect)
        return rx, codes

    rx, codes = asyncio.run(scenario())
    return rx, events, codes


def check_link_down(event: Event) -> None:
    assert event.name == "linkDown"
    assert dict(event.labels) == {"target": "lab-switch", "trap": "linkDown", "ifIndex": "5",
                                  "ifName": "eth5"}  # fmt: skip


def test_v1_trap(net_snmp_env: dict[str, str]) -> None:
    command = ["snmptrap", "-v1", "-c", "ow-traps", "{to}", "1.3.6.1.4.1.8072.3.2.10",
               "127.0.0.1", "2", "0", "4200", *LINK_DOWN[1:]]  # fmt: skip
    rx, events, codes = send(net_snmp_env, command, expect=1)
    assert codes == [0]
    check_link_down(events[0])
    assert rx.received == {("1", "linkDown"): 1}


def test_v2c_trap_and_inform(net_snmp_env: dict[str, str]) -> None:
    trap = ["snmptrap", "-v2c", "-c", "ow-traps", "{to}", "4200", *LINK_DOWN]
    inform = ["snmpinform", "-v2c", "-c", "ow-traps", "-t", "2", "-r", "1", "{to}", "4200",
              "1.3.6.1.6.3.1.1.5.1"]  # fmt: skip
    rx, events, codes = send(net_snmp_env, trap, inform, expect=2)
    assert codes == [0, 0]  # snmpinform got its Response
    check_link_down(events[0])
    assert events[1].name == "coldStart"
    assert rx.informs_acknowledged == 1


@pytest.mark.parametrize("user", sorted(USERS))
def test_v3_trap_authpriv(net_snmp_env: dict[str, str], user: str) -> None:
    command = ["snmptrap", "-v3", "-e", SENDER_ENGINE, *usm(user), "{to}", "4200", *LINK_DOWN]
    rx, events, codes = send(net_snmp_env, command, expect=1)
    assert codes == [0] and rx.dropped == {}
    check_link_down(events[0])
    assert rx.received == {("3", "linkDown"): 1}


@pytest.mark.parametrize("user", sorted(USERS))
def test_v3_inform_discovers_our_engine_and_is_acknowledged(
    net_snmp_env: dict[str, str], user: str
) -> None:
    command = ["snmpinform", "-v3", "-t", "2", "-r", "1", *usm(user), "{to}", "4200", *LINK_DOWN]
    rx, events, codes = send(net_snmp_env, command, expect=1)
    assert codes == [0]
    check_link_down(events[0])
    assert rx.reports["discovery"] >= 1 and rx.informs_acknowledged == 1


def test_wrong_v3_key_is_dropped_and_counted(net_snmp_env: dict[str, str]) -> None:
    wrong = usm("sha-aes", auth_key="not-the-right-key")
    trap = ["snmptrap", "-v3", "-e", SENDER_ENGINE, *wrong, "{to}", "4200", *LINK_DOWN]
    inform = ["snmpinform", "-v3", "-t", "1", "-r", "0", *wrong, "{to}", "4200", *LINK_DOWN]
    rx, events, codes = send(net_snmp_env, trap, inform, expect=2)
    assert events == []
    assert codes[1] != 0  # the inform is refused with a usmStatsWrongDigests report
    assert rx.dropped == {"wrong_digest": 2} and rx.reports["wrong_digest"] == 1


def test_wrong_community_is_dropped_and_an_inform_is_not_answered(
    net_snmp_env: dict[str, str],
) -> None:
    trap = ["snmptrap", "-v2c", "-c", "guess", "{to}", "4200", *LINK_DOWN]
    inform = ["snmpinform", "-v2c", "-c", "guess", "-t", "0.5", "-r", "0", "{to}", "4200",
              *LINK_DOWN]  # fmt: skip
    rx, events, codes = send(net_snmp_env, trap, inform, expect=2)
    assert events == [] and codes[1] != 0
    assert rx.dropped == {"unknown_community": 2}
