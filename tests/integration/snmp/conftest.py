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

COMMUNITY = "ow-test-community"
SYS_DESCR = "OpsWatch integration snmpd"


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
    conf.write_text(f"rocommunity {COMMUNITY} 127.0.0.1\nsysDescr {SYS_DESCR}\nsysName ow-test\n")
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
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


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
