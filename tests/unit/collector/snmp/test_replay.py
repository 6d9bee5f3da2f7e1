"""A replayed render writes exactly what a full render of the same poll writes."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.model import Sample
from collector.snmp.model import Oid, Tag, VarBind
from collector.snmp.page import DevicePage
from collector.snmp.poller import PollTarget, SnmpPoller
from collector.snmp.profiles import MetricDef, Profile, available_profiles

PROFILES = available_profiles()
SCALED = Profile(
    "scaled",
    [
        MetricDef("cpuTenths", "1.3.6.1.4.1.99999.1.1", scale=0.1, indexes=["cpu"]),
        MetricDef("loadText", "1.3.6.1.4.1.99999.1.2", indexes=["cpu"]),  # "0.15": text
    ],
)
TARGET = PollTarget(
    "sw1",
    "10.0.0.1",
    (PROFILES["system"], PROFILES["if_mib"], PROFILES["entity_sensor"], SCALED),
    {"site": "lab"},
    community="x",
)
WANTED = frozenset({"ifOperStatus", "sysUpTime", "entPhySensorValue", "sysDescr_x"})
PORTS = (1, 2, 130)  # 130: an index of two BER bytes
SENSORS = (1001, 1002)


def device(values: dict[str, int]) -> list[VarBind]:
    """A switch's poll as the poller fetches it: system scalars, then the walked tables."""
    out: list[VarBind] = []

    def add(oid: str, tag: Tag, value: object) -> None:
        out.append(VarBind(Oid.parse(oid), tag, value))  # type: ignore[arg-type]

    add("1.3.6.1.2.1.1.3.0", Tag.TIMETICKS, values.get("uptime", 1000))
    add("1.3.6.1.2.1.1.1.0", Tag.OCTET_STRING, b"Switch OS 1.0")
    add("1.3.6.1.2.1.1.2.0", Tag.OBJECT_IDENTIFIER, Oid.parse("1.3.6.1.4.1.9.1.1"))
    add("1.3.6.1.2.1.1.5.0", Tag.OCTET_STRING, b"sw1")
    add("1.3.6.1.2.1.2.1.0", Tag.INTEGER, len(PORTS))
    columns = {
        1: (Tag.INTEGER, lambda p: p),
        2: (Tag.OCTET_STRING, lambda p: f"eth{p}".encode()),
        3: (Tag.INTEGER, lambda p: 6),
        5: (Tag.GAUGE32, lambda p: 1_000_000_000),
        6: (Tag.OCTET_STRING, lambda p: bytes([0, 1, 2, 3, 4, p % 256])),
        8: (Tag.INTEGER, lambda p: values.get(f"oper{p}", 1)),
        10: (Tag.COUNTER32, lambda p: values.get(f"in{p}", 0)),
        14: (Tag.COUNTER32, lambda p: values.get(f"err{p}", 0)),
    }
    for column, (tag, make) in columns.items():
        for port in PORTS:
            add(f"1.3.6.1.2.1.2.2.1.{column}.{port}", tag, make(port))
    x_columns = {
        1: (Tag.OCTET_STRING, lambda p: f"Gi0/{p}".encode()),
        6: (Tag.COUNTER64, lambda p: values.get(f"hc{p}", 0)),
        15: (Tag.GAUGE32, lambda p: 1000),
        18: (Tag.OCTET_STRING, lambda p: f"uplink {p}".encode()),
    }
    for column, (tag, make) in x_columns.items():
        for port in PORTS:
            add(f"1.3.6.1.2.1.31.1.1.1.{column}.{port}", tag, make(port))
    sensor_columns = {
        1: lambda s: 8,  # celsius
        2: lambda s: values.get("prefix", 9),
        3: lambda s: 1,
        4: lambda s: values.get(f"temp{s}", 415),
        5: lambda s: 1,
    }
    for column, make in sensor_columns.items():
        for sensor in SENSORS:
            add(f"1.3.6.1.2.1.99.1.1.1.{column}.{sensor}", Tag.INTEGER, make(sensor))
    add("1.3.6.1.4.1.99999.1.1.1", Tag.GAUGE32, values.get("cpu", 7))
    add("1.3.6.1.4.1.99999.1.2.1", Tag.OCTET_STRING, b"0.15")
    return out


def poll(poller: SnmpPoller, varbinds: list[VarBind], now: float) -> tuple[object, ...]:
    """What one poll gives: the page's text, the samples left over and the rule samples."""
    samples, texts, rules = poller._samples(TARGET, now, 0.0, 10, varbinds, 0.01)
    assert poller.pages is not None and texts == {}
    page = poller.pages[TARGET.name]
    text = "".join(page.text(name) for name in sorted(page.columns))
    timeless = [s for s in samples if s.name != "opswatch_snmp_poll_duration_seconds"]
    return text, _keyed(timeless), _keyed(rules)


def _keyed(samples: list[Sample]) -> list[tuple[str, object, float, float]]:
    return sorted((s.name, s.labels, s.value, s.timestamp) for s in samples)


def pollers() -> tuple[SnmpPoller, SnmpPoller]:
    replayed, full = SnmpPoller([TARGET]), SnmpPoller([TARGET])
    for poller in (replayed, full):
        poller.pre_render(WANTED, pages=True)
    return replayed, full


def full_render(poller: SnmpPoller, varbinds: list[VarBind], now: float) -> tuple[object, ...]:
    poller._replays.clear()  # every poll renders in full
    return poll(poller, varbinds, now)


NUMBERS = st.dictionaries(
    st.sampled_from([f"{k}{p}" for k in ("in", "err", "hc") for p in PORTS] + ["cpu", "temp1001"]),
    st.integers(min_value=0, max_value=2**32 - 1),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(NUMBERS, min_size=2, max_size=4))
def test_polls_that_only_move_numbers_are_replayed_as_rendered(
    rounds: list[dict[str, int]],
) -> None:
    replayed, full = pollers()
    recorded = None
    for n, values in enumerate(rounds):
        now = 1e9 + 30 * n
        varbinds = device({"uptime": 1000 + 3000 * n, **values})
        assert poll(replayed, varbinds, now) == full_render(full, varbinds, now)
        if recorded is None:
            recorded = replayed._replays[TARGET.name]
        assert replayed._replays[TARGET.name] is recorded  # replayed, not recorded again


CHANGES = st.sampled_from(
    [
        *("alias", "name", "tag", "type", "drop", "prefix", "oper", "oid", "descr", "dup"),
        *("precision-1", "precision-2", "iftype-1", "iftype-2", "same"),
    ]
)


def changed(varbinds: list[VarBind], change: str) -> list[VarBind]:
    """The poll with one thing other than a counter changed."""
    out = list(varbinds)
    at = {str(vb.oid): n for n, vb in enumerate(out)}

    def set_value(oid: str, tag: Tag, value: object) -> None:
        out[at[oid]] = VarBind(Oid.parse(oid), tag, value)  # type: ignore[arg-type]

    if change == "alias":
        set_value("1.3.6.1.2.1.31.1.1.1.18.2", Tag.OCTET_STRING, b"to core")
    elif change == "name":
        set_value("1.3.6.1.2.1.1.5.0", Tag.OCTET_STRING, b"sw1-renamed")
    elif change == "descr":
        set_value("1.3.6.1.2.1.2.2.1.2.130", Tag.OCTET_STRING, b'eth"130\n')
    elif change == "tag":
        set_value("1.3.6.1.2.1.2.2.1.10.1", Tag.NO_SUCH_INSTANCE, None)
    elif change == "type":
        set_value("1.3.6.1.2.1.2.2.1.8.2", Tag.OCTET_STRING, b"2")
    elif change == "drop":
        del out[at["1.3.6.1.2.1.31.1.1.1.6.130"]]
    elif change == "prefix":  # the sensor's SI prefix: milli
        set_value("1.3.6.1.2.1.99.1.1.1.2.1001", Tag.INTEGER, 8)
    elif change.startswith("precision"):  # CPython's hash(-1) == hash(-2)
        set_value("1.3.6.1.2.1.99.1.1.1.3.1001", Tag.INTEGER, int(change[9:]))
    elif change.startswith("iftype"):
        set_value("1.3.6.1.2.1.2.2.1.3.1", Tag.INTEGER, int(change[6:]))
    elif change == "oper":
        set_value("1.3.6.1.2.1.2.2.1.8.1", Tag.INTEGER, 2)
    elif change == "oid":  # the same count and tags, another row
        n = at["1.3.6.1.2.1.31.1.1.1.15.130"]
        out[n] = out[n]._replace(oid=Oid.parse("1.3.6.1.2.1.31.1.1.1.15.131"))
    elif change == "dup":  # a GET answered an OID a walk also gives: positions out of order
        out.insert(1, VarBind(Oid.parse("1.3.6.1.2.1.2.2.1.5.2"), Tag.GAUGE32, 7))
    return out


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(NUMBERS, CHANGES), min_size=2, max_size=5))
def test_any_other_change_renders_in_full_and_writes_the_same(
    rounds: list[tuple[dict[str, int], str]],
) -> None:
    replayed, full = pollers()
    for n, (values, change) in enumerate(rounds):
        now = 1e9 + 30 * n
        varbinds = changed(device({"uptime": 1000 + 3000 * n, **values}), change)
        assert poll(replayed, varbinds, now) == full_render(full, varbinds, now)


def test_integers_that_python_hashes_alike_are_told_apart() -> None:
    # hash(-1) == hash(-2): a sensor precision of -1 then -2 must scale by 100, not 10
    for first, then in (("precision-1", "precision-2"), ("iftype-1", "iftype-2")):
        replayed, full = pollers()
        for n, change in enumerate((first, then)):
            varbinds, now = changed(device({"uptime": 1000 + 3000 * n}), change), 1e9 + 30 * n
            assert poll(replayed, varbinds, now) == full_render(full, varbinds, now)
        assert TARGET.name in replayed._replays  # recorded again from the second poll


def test_another_set_of_rule_series_drops_the_recordings() -> None:
    replayed, _ = pollers()
    poll(replayed, device({}), 1e9)
    assert TARGET.name in replayed._replays
    replayed.pre_render(WANTED, pages=True)  # the same set: kept
    assert TARGET.name in replayed._replays
    replayed.pre_render(WANTED | {"cpuTenths"}, pages=True)
    assert replayed._replays == {}
    _, _, rule = poll(replayed, device({}), 1e9 + 30)
    assert "cpuTenths" in {key[0] for key in rule}  # type: ignore[attr-defined]


def test_a_changed_label_records_the_render_again() -> None:
    replayed, _ = pollers()
    first = device({})
    poll(replayed, first, 1e9)
    recorded = replayed._replays[TARGET.name]
    text, _, _ = poll(replayed, changed(device({}), "alias"), 1e9 + 30)
    assert replayed._replays[TARGET.name] is not recorded
    assert 'ifAlias="to core"' in str(text)
    # and a numbers-only poll after it is replayed from the new recording
    again = replayed._replays[TARGET.name]
    poll(replayed, changed(device({"in1": 5}), "alias"), 1e9 + 60)
    assert replayed._replays[TARGET.name] is again


def test_a_family_written_twice_is_not_replayed() -> None:
    twice = replace(TARGET, profiles=(*TARGET.profiles, PROFILES["if_mib"]))
    poller = SnmpPoller([twice])
    poller.pre_render(WANTED, pages=True)
    poller._samples(twice, 1e9, 0.0, 10, device({}), 0.01)
    assert twice.name not in poller._replays
    assert poller.pages is not None
    page: DevicePage = poller.pages[twice.name]
    assert page.text("ifMtu") == "" and page.text("ifOperStatus").count("\n") == len(PORTS)



def test_shaping_integers_a_multiple_of_the_int_hash_modulus_apart_are_told_apart() -> None:
    # an int hashes modulo 2^61 - 1: an ifType that far from the last is still a change
    replayed, full = pollers()
    recorded = device({"uptime": 1000})
    poll(replayed, recorded, 1e9)
    full_render(full, recorded, 1e9)
    iftype = "1.3.6.1.2.1.2.2.1.3.1"
    moved = [vb._replace(value=6 + 2**61 - 1) if str(vb.oid) == iftype else vb for vb in recorded]
    assert poll(replayed, moved, 1e9 + 30) == full_render(full, moved, 1e9 + 30)
    assert 'ifType="2305843009213693957"' in str(poll(replayed, moved, 1e9 + 60)[0])
