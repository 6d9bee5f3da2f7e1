"""A real net-snmp `snmpd` on 127.0.0.1, with its own config, started and stopped by pid."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.agentproc import stop_process

COMMUNITY = "ow-test-community"
SYS_DESCR = "OpsWatch integration snmpd"


@dataclass(frozen=True)
class V3User:
    """A USM user snmpd creates at start (net-snmp names: SHA, SHA-256, AES, AES-256)."""

    name: str
    auth: str
    auth_key: str
    priv: str
    priv_key: str


V3_USERS = (
    V3User("ow-sha-aes", "SHA", "ow-auth-sha1", "AES", "ow-priv-aes128"),
    V3User("ow-sha256-aes256", "SHA-256", "ow-auth-sha256", "AES-256", "ow-priv-aes256"),
    # SHA-1 with AES-256: the two key extensions differ, so the dialect matters here
    V3User("ow-sha-aes256", "SHA", "ow-auth-sha1x", "AES-256", "ow-priv-aes256x"),
)


@dataclass(frozen=True)
class Snmpd:
    port: int
    community: str
    env: dict[str, str]
    sys_descr: str = SYS_DESCR

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _answers(snmpd: Snmpd) -> bool:
    probe = ["snmpget", "-v2c", "-c", snmpd.community, "-t", "0.3", "-r", "0", "-On",
             snmpd.address, "1.3.6.1.2.1.1.3.0"]  # fmt: skip
    done = subprocess.run(probe, env=snmpd.env, capture_output=True, timeout=10)
    return done.returncode == 0


@pytest.fixture(scope="session")
def snmpd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Snmpd]:
    """snmpd serving v2c/v1 community COMMUNITY on a free high port; as root it needs no -u."""
    if shutil.which("snmpd") is None or shutil.which("snmpbulkwalk") is None:
        pytest.fail("net-snmp is not installed: apt-get install -y snmpd snmp")
    home = tmp_path_factory.mktemp("snmpd")
    conf = home / "snmpd.conf"
    users = "".join(
        f'createUser {u.name} {u.auth} "{u.auth_key}" {u.priv} "{u.priv_key}"\n'
        f"rouser {u.name} priv\n"
        for u in V3_USERS
    )
    conf.write_text(
        f"rocommunity {COMMUNITY} 127.0.0.1\nsysDescr {SYS_DESCR}\nsysName ow-test\n{users}"
    )
    # SNMPCONFPATH and -C keep snmpd (and the CLI tools) off /etc/snmp; persistent state stays
    # in the tmp dir; MIBS="" because Debian ships no IETF MIB text.
    env = dict(os.environ, MIBS="", SNMPCONFPATH=str(home), SNMP_PERSISTENT_DIR=str(home))
    server = Snmpd(free_udp_port(), COMMUNITY, env)
    log = home / "snmpd.log"
    command = ["snmpd", "-f", "-C", "-c", str(conf), "-Lf", str(log), f"udp:{server.address}"]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_until_answering(server, proc, log)
        yield server
    finally:
        stop_process(proc)


def _wait_until_answering(server: Snmpd, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 15
    for _ in range(100):
        if proc.poll() is not None:
            pytest.fail(f"snmpd exited with {proc.returncode}: {log.read_text(errors='replace')}")
        if _answers(server):
            return
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)
    pytest.fail("snmpd did not answer within 15 s")
