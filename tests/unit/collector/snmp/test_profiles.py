"""Profiles render varbinds into snmp_exporter's series: names, index labels and lookups."""

from __future__ import annotations

from agent.model import Sample
from collector.snmp.model import Oid, Tag, VarBind
from collector.snmp.profiles import Table, all_walks, available_profiles, render

NOW = 1_700_000_000.0
PROFILES = available_profiles()


def vb(oid: str, tag: Tag, value: object) -> VarBind:
    return VarBind(Oid.parse(oid), tag, value)  # type: ignore[arg-type]


IF_ROWS = [
    vb("1.3.6.1.2.1.2.1.0", Tag.INTEGER, 2),
    vb("1.3.6.1.2.1.2.2.1.2.1", Tag.OCTET_STRING, b"GigabitEthernet0/1"),
    vb("1.3.6.1.2.1.2.2.1.2.2", Tag.OCTET_STRING, b"Loopback0"),
    vb("1.3.6.1.2.1.2.2.1.3.1", Tag.INTEGER, 6),
    vb("1.3.6.1.2.1.2.2.1.6.1", Tag.OCTET_STRING, bytes.fromhex("001a2b3c4d5e")),
    vb("1.3.6.1.2.1.2.2.1.8.1", Tag.INTEGER, 1),
    vb("1.3.6.1.2.1.2.2.1.8.2", Tag.INTEGER, 2),
    vb("1.3.6.1.2.1.2.2.1.14.1", Tag.COUNTER32, 7),
    vb("1.3.6.1.2.1.31.1.1.1.1.1", Tag.OCTET_STRING, b"Gi0/1"),
    vb("1.3.6.1.2.1.31.1.1.1.1.2", Tag.OCTET_STRING, b"Lo0"),
    vb("1.3.6.1.2.1.31.1.1.1.6.1", Tag.COUNTER64, 2**40),
    vb("1.3.6.1.2.1.31.1.1.1.15.1", Tag.GAUGE32, 1000),
    vb("1.3.6.1.2.1.31.1.1.1.18.1", Tag.OCTET_STRING, "uplink to core \u2192 dc1".encode()),
    vb("1.3.6.1.2.1.31.1.1.1.18.2", Tag.OCTET_STRING, b""),
]


def find(samples: list[Sample], name: str, **labels: str) -> Sample:
    hits = [
        s for s in samples if s.name == name and all(s.label(k) == v for k, v in labels.items())
    ]
    assert len(hits) == 1, (name, labels, hits)
    return hits[0]


def test_if_mib_names_and_labels_match_snmp_exporter() -> None:
    samples = render(PROFILES["if_mib"], Table(IF_ROWS), NOW, {"target": "sw1"})
    octets = find(samples, "ifHCInOctets", ifIndex="1")
    assert octets.value == 2**40
    assert dict(octets.labels) == {
        "target": "sw1",
        "ifIndex": "1",
        "ifName": "Gi0/1",
        "ifDescr": "GigabitEthernet0/1",
        "ifAlias": "uplink to core \u2192 dc1",
    }
    assert find(samples, "ifOperStatus", ifIndex="2").value == 2
    assert find(samples, "ifInErrors", ifIndex="1").value == 7
    assert find(samples, "ifHighSpeed", ifIndex="1").value == 1000
    assert find(samples, "ifNumber").value == 2
    # an empty ifAlias is dropped like any empty label value
    assert "ifAlias" not in dict(find(samples, "ifOperStatus", ifIndex="2").labels)


def test_text_columns_become_labels_of_a_sample_of_one() -> None:
    samples = render(PROFILES["if_mib"], Table(IF_ROWS), NOW, {"target": "sw1"})
    assert find(samples, "ifPhysAddress", ifIndex="1").label("ifPhysAddress") == "00:1a:2b:3c:4d:5e"
    info = find(samples, "ifType_info", ifIndex="1")
    assert (info.label("ifType"), info.value) == ("ethernetCsmacd", 1.0)


def test_system_profile_scalars() -> None:
    rows = [
        vb("1.3.6.1.2.1.1.2.0", Tag.OBJECT_IDENTIFIER, Oid.parse("1.3.6.1.4.1.9.1.1208")),
        vb("1.3.6.1.2.1.1.3.0", Tag.TIMETICKS, 123456),
        vb("1.3.6.1.2.1.1.5.0", Tag.OCTET_STRING, b"core-sw1\x00"),
    ]
    samples = render(PROFILES["system"], Table(rows), NOW, {"target": "sw1"})
    assert find(samples, "sysUpTime").value == 123456
    assert find(samples, "sysName").label("sysName") == "core-sw1"
    assert find(samples, "sysObjectID").label("sysObjectID") == "1.3.6.1.4.1.9.1.1208"


def test_entity_sensor_is_scaled_to_base_units() -> None:
    rows = [
        vb("1.3.6.1.2.1.99.1.1.1.1.5", Tag.INTEGER, 4),  # voltsDC
        vb("1.3.6.1.2.1.99.1.1.1.2.5", Tag.INTEGER, 8),  # milli
        vb("1.3.6.1.2.1.99.1.1.1.3.5", Tag.INTEGER, 1),  # one decimal place
        vb("1.3.6.1.2.1.99.1.1.1.4.5", Tag.INTEGER, 33012),
        vb("1.3.6.1.2.1.47.1.1.1.1.7.5", Tag.OCTET_STRING, b"PSU1 3.3V"),
    ]
    samples = render(PROFILES["entity_sensor"], Table(rows), NOW, {"target": "r1"})
    value = find(samples, "entPhySensorValue", entPhysicalIndex="5")
    assert abs(value.value - 3.3012) < 1e-9
    assert value.label("entPhySensorType") == "voltsDC"
    assert value.label("entPhysicalName") == "PSU1 3.3V"


def test_ucd_text_load_is_a_number_and_exceptions_are_skipped() -> None:
    rows = [
        vb("1.3.6.1.4.1.2021.10.1.2.1", Tag.OCTET_STRING, b"Load-1"),
        vb("1.3.6.1.4.1.2021.10.1.3.1", Tag.OCTET_STRING, b"0.42"),
        vb("1.3.6.1.4.1.2021.4.5.0", Tag.NO_SUCH_OBJECT, None),
    ]
    samples = render(PROFILES["ucd"], Table(rows), NOW, {"target": "h"})
    assert find(samples, "laLoad", laNames="Load-1").value == 0.42
    assert not [s for s in samples if s.name == "memTotalReal"]


def test_cisco_memory_pools_carry_their_names() -> None:
    rows = [
        vb("1.3.6.1.4.1.9.9.48.1.1.1.2.1", Tag.OCTET_STRING, b"Processor"),
        vb("1.3.6.1.4.1.9.9.48.1.1.1.5.1", Tag.GAUGE32, 1000),
        vb("1.3.6.1.4.1.9.9.109.1.1.1.1.8.1", Tag.GAUGE32, 12),
    ]
    samples = render(PROFILES["cisco"], Table(rows), NOW, {"target": "r"})
    used = find(samples, "ciscoMemoryPoolUsed", ciscoMemoryPoolType="1")
    assert (used.value, used.label("ciscoMemoryPoolName")) == (1000, "Processor")
    assert find(samples, "cpmCPUTotal5minRev", cpmCPUTotalIndex="1").value == 12


def test_walks_of_several_profiles_merge_nested_roots() -> None:
    walks = all_walks([PROFILES["if_mib"], PROFILES["system"], PROFILES["if_mib"]])
    assert walks == [Oid.parse("1.3.6.1.2.1.2.2.1"), Oid.parse("1.3.6.1.2.1.31.1.1.1")]


def test_every_shipped_profile_has_metrics_and_numeric_oids() -> None:
    assert set(PROFILES) >= {"system", "if_mib", "host_resources", "ucd", "entity_sensor", "cisco"}
    for profile in PROFILES.values():
        assert profile.metrics
        assert all(Oid.parse(m.oid) for m in profile.metrics)
