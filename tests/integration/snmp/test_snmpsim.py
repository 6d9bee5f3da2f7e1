"""snmpsim serving recorded real devices: if_mib series equal a walk of the same data.

Recordings come from the snmpsim-data package (Cisco, Juniper, Arista, Huawei, Palo Alto). A
hand-written device with snmpsim's `numeric` variation makes counters move at known rates, and a
second recording of it with a lower sysUpTime plays the device after a reboot. Re-record a real
device with `snmpsim-record-commands --agent-udpv4-endpoint=HOST --community=C`.
"""

from __future__ import annotations

import asyncio
import bz2
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import snmpsim_data
from integration.snmp.conftest import free_udp_port
from support.agentproc import stop_process

from agent.model import Sample
from collector.snmp import page
from collector.snmp.model import VarBind
from collector.snmp.poller import PollTarget, SnmpPoller
from collector.snmp.profiles import available_profiles
from exporters.prometheus import MetricsExporter, Snapshot

pytestmark = pytest.mark.integration
DATA = Path(snmpsim_data.__file__).parent / "data"
VENDORS = {
    "cisco-c3560": "network/switch/cisco-c3560.snmprec.bz2",
    "juniper-mx960": "network/router/juniper-mx960-13-3r9-13.snmprec.bz2",
    "arista-7150s": "cloud/arista-dcs-7150s-52-cl.snmprec.bz2",
    "huawei-s5720": "network/router/huawei-s5720.snmprec.bz2",
    "paloalto-pa5000": "network/firewall/paloalto-pa-5000.snmprec.bz2",
}
PROFILES = available_profiles()
IF_X, IF_T = "1.3.6.1.2.1.31.1.1.1", "1.3.6.1.2.1.2.2.1"
HC_RATE, LOW_RATE = 125_000.0, 50_000.0  # bytes/s of the moving device's two interfaces


def moving_device(uptime: int, hc_initial: int, boot_variation: bool) -> str:
    """Two interfaces: 1 has HC counters (1 Gbit/s), 2 only 32-bit ones about to wrap."""
    hc = (
        f"70:numeric|rate={HC_RATE:g},initial={hc_initial}"
        if boot_variation
        else f"70|{hc_initial}"
    )
    low = f"65:numeric|rate={LOW_RATE:g},initial=4294900000,max=4294967296,wrap=1"
    return "\n".join([
        "1.3.6.1.2.1.1.1.0|4|OpsWatch moving device",
        f"1.3.6.1.2.1.1.3.0|67|{uptime}",
        "1.3.6.1.2.1.1.5.0|4|moving",
        f"{IF_T}.1.1|2|1", f"{IF_T}.1.2|2|2",
        f"{IF_T}.2.1|4|GigabitEthernet0/1", f"{IF_T}.2.2|4|FastEthernet0/2",
        f"{IF_T}.5.1|66|1000000000", f"{IF_T}.5.2|66|100000000",
        f"{IF_T}.8.1|2|1", f"{IF_T}.8.2|2|1",
        f"{IF_T}.10.1|65|12345",
        f"{IF_T}.10.2|{low if boot_variation else '65|100'}",
        f"{IF_X}.1.1|4|Gi0/1", f"{IF_X}.1.2|4|Fa0/2",
        f"{IF_X}.6.1|{hc}",
        f"{IF_X}.15.1|66|1000", f"{IF_X}.15.2|66|100",
        "",
    ])  # fmt: skip


@dataclass(frozen=True)
class Snmpsim:
    port: int
    data: Path


@pytest.fixture(scope="module")
def snmpsim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Snmpsim]:
    binary = Path(sys.executable).parent / "snmpsim-command-responder"
    if not binary.exists():
        pytest.fail("snmpsim is not installed: pip install snmpsim snmpsim-data")
    home = tmp_path_factory.mktemp("snmpsim")
    data = home / "data"
    data.mkdir()
    for community, rel in VENDORS.items():
        (data / f"{community}.snmprec").write_bytes(bz2.decompress((DATA / rel).read_bytes()))
    (data / "moving.snmprec").write_text(moving_device(8_000_000, 10**12, True))
    (data / "rebooted.snmprec").write_text(moving_device(1_500, 5_000, False))
    sim = Snmpsim(free_udp_port(), data)
    env = dict(os.environ, SNMPSIM_ALLOW_ROOT="true", MIBS="")
    argv = [str(binary), f"--data-dir={data}", f"--cache-dir={home / 'cache'}",
            f"--agent-udpv4-endpoint=127.0.0.1:{sim.port}",
            f"--logging-method=file:{home / 'log'}"]  # fmt: skip
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait(sim, proc, home / "log")
        yield sim
    finally:
        stop_process(proc)


def _wait(sim: Snmpsim, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 90  # the first start indexes every recording
    for _ in range(900):
        if proc.poll() is not None:
            pytest.fail(f"snmpsim exited: {log.read_text(errors='replace')[-2000:]}")
        probe = ["snmpget", "-v2c", "-c", "moving", "-t", "0.5", "-r", "0", "-On",
                 f"127.0.0.1:{sim.port}", "1.3.6.1.2.1.1.5.0"]  # fmt: skip
        if subprocess.run(probe, capture_output=True, timeout=10).returncode == 0:
            return
        if time.monotonic() > deadline:
            break
        time.sleep(0.2)
    pytest.fail("snmpsim did not answer within 90 s")


def poll(
    sim: Snmpsim, community: str, poller: SnmpPoller | None = None, now: float = 0
) -> list[Sample]:
    target = PollTarget("dev", "127.0.0.1", (PROFILES["system"], PROFILES["if_mib"]),
                        port=sim.port, community=community, timeout=2.0, retries=1)  # fmt: skip
    poller = poller or SnmpPoller([target], timeout=30)
    poller.targets = (target,)  # same target name, maybe another recording
    return asyncio.run(asyncio.wait_for(poller.acollect(now), 60))


def walk(sim: Snmpsim, community: str, root: str) -> dict[str, tuple[str, str]]:
    """net-snmp's walk: OID -> (type, value), numeric OIDs, enums and timeticks as numbers."""
    argv = ["snmpbulkwalk", "-v2c", "-c", community, "-On", "-Oe", "-Ot",
            f"127.0.0.1:{sim.port}", root]  # fmt: skip
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True,
                         env=dict(os.environ, MIBS="")).stdout  # fmt: skip
    result: dict[str, tuple[str, str]] = {}
    oid = ""
    for line in out.splitlines():
        if " = " not in line:  # net-snmp wraps long Hex-STRINGs over several lines
            kind, value = result[oid]
            result[oid] = (kind, f"{value} {line.strip()}")
            continue
        oid, _, rest = line.partition(" = ")
        oid = oid.lstrip(".")
        kind, _, value = rest.partition(": ")
        result[oid] = (kind, value.strip().strip('"'))
    return {o: (k, _text(k, v)) for o, (k, v) in result.items()}


def _text(kind: str, value: str) -> str:
    """Hex-STRING is how net-snmp shows non-ASCII text; devices mean UTF-8 (Chinese ifAlias)."""
    if kind != "Hex-STRING":
        return value
    return bytes.fromhex(value.replace(" ", "")).decode("utf-8", errors="replace").rstrip("\x00")


@pytest.mark.parametrize("community", sorted(VENDORS))
def test_if_mib_series_equal_a_walk_of_the_same_data(snmpsim: Snmpsim, community: str) -> None:
    samples = poll(snmpsim, community)
    ifx = walk(snmpsim, community, IF_X)
    ift = walk(snmpsim, community, IF_T)
    hc = {s.label("ifIndex"): s for s in samples if s.name == "ifHCInOctets"}
    expected_hc = {
        oid.rsplit(".", 1)[1]: v for oid, (_, v) in ifx.items() if oid.startswith(f"{IF_X}.6.")
    }
    assert hc and set(hc) == set(expected_hc)
    for index, sample in hc.items():
        assert sample.value == float(expected_hc[index])
        assert sample.label("ifName") == ifx.get(f"{IF_X}.1.{index}", ("", ""))[1]
        assert sample.label("ifDescr") == ift.get(f"{IF_T}.2.{index}", ("", ""))[1]
        assert sample.label("ifAlias") == ifx.get(f"{IF_X}.18.{index}", ("", ""))[1]
    status = {s.label("ifIndex"): s.value for s in samples if s.name == "ifOperStatus"}
    assert status == {
        oid.rsplit(".", 1)[1]: float(v)
        for oid, (_, v) in ift.items()
        if oid.startswith(f"{IF_T}.8.")
    }
    assert [s.value for s in samples if s.name == "opswatch_snmp_up"] == [1.0]


def test_moving_counters_give_their_rates(snmpsim: Snmpsim) -> None:
    poller = SnmpPoller([], timeout=30)
    first_at = time.time()
    poll(snmpsim, "moving", poller, first_at)
    time.sleep(2.0)
    second = poll(snmpsim, "moving", poller, time.time())
    rates = {
        (s.name, s.label("ifIndex")): s.value for s in second if s.name.startswith("opswatch_if_")
    }
    assert rates[("opswatch_if_in_bytes_per_second", "1")] == pytest.approx(HC_RATE, rel=0.1)
    # interface 2 has only a 32-bit counter, which wrapped between the polls
    assert rates[("opswatch_if_in_bytes_per_second", "2")] == pytest.approx(LOW_RATE, rel=0.1)
    assert rates[("opswatch_if_in_utilization_ratio", "1")] == pytest.approx(
        HC_RATE * 8 / 1e9, rel=0.1
    )


def test_reboot_gives_no_spike(snmpsim: Snmpsim) -> None:
    poller = SnmpPoller([], timeout=30)
    poll(snmpsim, "moving", poller, time.time())
    time.sleep(1.0)
    after = poll(snmpsim, "rebooted", poller, time.time())  # sysUpTime and counters went back
    assert not [s for s in after if s.name == "opswatch_if_in_bytes_per_second"]
    assert [s.value for s in after if s.name == "opswatch_snmp_device_reboots_total"] == [1.0]
    assert all(s.value >= 0 for s in after if s.name.startswith("opswatch_if_"))


def _fetch(sim: Snmpsim, community: str) -> list[VarBind]:
    target = _target(sim, community)
    poller = SnmpPoller([target], timeout=30)

    async def once() -> list[VarBind]:
        try:
            await poller.open()
            varbinds, _ = await poller._fetch(target)
            return varbinds
        finally:
            poller.close()

    return asyncio.run(asyncio.wait_for(once(), 60))


def _target(sim: Snmpsim, community: str) -> PollTarget:
    return PollTarget("dev", "127.0.0.1", (PROFILES["system"], PROFILES["if_mib"]),
                      port=sim.port, community=community, timeout=2.0, retries=1)  # fmt: skip


def _page(poller: SnmpPoller, target: PollTarget, rounds: list[list[VarBind]]) -> str:
    """The exposition after feeding `rounds` of varbinds to `poller`, 30 s apart."""
    for n, varbinds in enumerate(rounds):
        samples, texts, rules = poller._samples(target, 1e9 + 30 * n, 0.0, 79, varbinds, 0.01)
    meta = {m.name: m for m in poller.describe()}
    exporter = MetricsExporter(process_metrics=False)
    exporter.publish(Snapshot(samples, meta, texts={f: [t] for f, t in texts.items()}))
    poller.rule_samples = rules
    page = exporter.render().decode()
    # the only line that depends on the clock of the run
    return "\n".join(x for x in page.splitlines() if "poll_duration_seconds{" not in x)


@pytest.mark.parametrize("community", [*sorted(VENDORS), "moving"])
def test_pre_rendered_lines_give_the_same_page_as_samples(snmpsim: Snmpsim, community: str) -> None:
    """The agent's pre-rendered path writes exactly what samples through the exporter write."""
    rounds = [_fetch(snmpsim, community), _fetch(snmpsim, community)]
    target = _target(snmpsim, community)
    plain = SnmpPoller([target])
    pre = SnmpPoller([target])
    wanted = {"ifOperStatus", "opswatch_if_in_bytes_per_second", "sysUpTime"}
    pre.pre_render(wanted)
    assert _page(pre, target, rounds) == _page(plain, target, rounds)
    # the series rules read still arrive as samples, with the values the page shows
    expected, _, _ = plain._samples(target, 1e9 + 60, 0.0, 79, rounds[1], 0.01)
    _, _, for_rules = pre._samples(target, 1e9 + 60, 0.0, 79, rounds[1], 0.01)
    assert sorted((s.name, s.labels, s.value) for s in for_rules) == sorted(
        (s.name, s.labels, s.value) for s in expected if s.name in wanted
    )
    assert {s.name for s in for_rules} >= {"ifOperStatus", "sysUpTime"}


def _families(page: str) -> dict[str, list[str]]:
    """A page's lines by family, each family's HELP and TYPE first."""
    out: dict[str, list[str]] = {}
    name = ""
    for line in page.splitlines():
        if line.startswith("# HELP "):
            name = line.split(" ", 3)[2]
        out.setdefault(name, []).append(line)
    return out


@pytest.mark.parametrize("community", [*sorted(VENDORS), "moving"])
def test_compact_pages_write_the_same_families_as_pre_rendered_lines(
    snmpsim: Snmpsim, community: str
) -> None:
    """What the poller process keeps between scrapes (`page.DevicePage`) writes the same page.

    The first round is rendered in full and recorded, the later ones are replayed from it.
    """
    rounds = [_fetch(snmpsim, community) for _ in range(3)]
    target = _target(snmpsim, community)
    lines, compact = SnmpPoller([target]), SnmpPoller([target])
    wanted = {"ifOperStatus", "opswatch_if_in_bytes_per_second", "sysUpTime"}
    lines.pre_render(wanted)
    compact.pre_render(wanted, pages=True)
    expected = _families(_page(lines, target, rounds))
    recorded = []
    for n, varbinds in enumerate(rounds):
        samples, texts, _ = compact._samples(target, 1e9 + 30 * n, 0.0, 79, varbinds, 0.01)
        recorded.append(compact._replays[target.name])
    assert recorded[2] is recorded[1] is recorded[0]  # the recorded devices are replayable
    assert texts == {}  # nothing left as lines: the page holds it all
    assert compact.pages is not None
    meta = {m.name: m for m in compact.describe()}
    exporter = MetricsExporter(process_metrics=False)
    exporter.publish(Snapshot(samples, meta))
    written = b"".join(page.render(compact.pages, meta)).decode()
    got = _families(exporter.render().decode() + written)
    got[""] = expected[""] = []  # nothing precedes the first family
    drop = "opswatch_snmp_poll_duration_seconds"  # the clock of the run
    assert {k: v for k, v in got.items() if k != drop} == {
        k: v for k, v in expected.items() if k != drop
    }
    assert sum(len(v) for v in got.values()) > 50  # the two-port moving device: 72
