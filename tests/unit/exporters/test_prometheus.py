"""The exposition: node_exporter-shaped families, agent state, and no collection during a scrape."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from agent.model import (
    Alert,
    AlertState,
    Level,
    MetricMeta,
    MetricType,
    Priority,
    Sample,
    make_labels,
    sample,
)
from exporters import prometheus as prom
from exporters import text
from exporters.prometheus import MetricsExporter, Snapshot

META = {
    "node_cpu_seconds_total": MetricMeta(
        "node_cpu_seconds_total", MetricType.COUNTER, "CPU seconds."
    ),
    "node_load1": MetricMeta("node_load1", MetricType.GAUGE, "1m load average."),
}


def parse(body: bytes) -> dict[str, list[tuple[dict[str, str], float]]]:
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


def alert(state: AlertState, level: Level, **labels: str) -> Alert:
    return Alert(
        fingerprint="f" * 16,
        rule="DiskFull",
        state=state,
        level=level,
        labels=make_labels({"host": "web1", **labels}),
        annotations=(),
        value=97.0,
        starts_at=100.0,
        priority=Priority.P1,
    )


def test_samples_render_with_types_and_labels() -> None:
    exporter = MetricsExporter(process_metrics=False)
    exporter.publish(
        Snapshot(
            samples=[
                sample("node_cpu_seconds_total", 12.5, 1.0, cpu="0", mode="idle"),
                sample("node_load1", 0.25, 1.0),
                sample("node_load1", 0.5, 2.0),  # a later reading of the same series wins
            ],
            meta=META,
        )
    )
    body = exporter.render()
    assert b"# TYPE node_cpu_seconds_total counter" in body
    assert b"# TYPE node_load1 gauge" in body
    parsed = parse(body)
    assert parsed["node_cpu_seconds_total"] == [({"cpu": "0", "mode": "idle"}, 12.5)]
    assert parsed["node_load1"] == [({}, 0.5)]


def test_agent_state_is_exported() -> None:
    exporter = MetricsExporter(process_metrics=False)
    exporter.publish(
        Snapshot(
            alerts=[
                alert(AlertState.FIRING, Level.CRITICAL, mountpoint="/"),
                alert(AlertState.RESOLVED, Level.WARNING, mountpoint="/srv"),
            ],
            run_counts={("clean_directory", "succeeded"): 2},
            open_tickets={Priority.P1: 1},
        )
    )
    parsed = parse(exporter.render())
    assert parsed["opswatch_alert"] == [
        (
            {
                "alertname": "DiskFull",
                "alertstate": "firing",
                "level": "critical",
                "priority": "P1",
                "host": "web1",
                "mountpoint": "/",
            },
            1.0,
        )
    ]
    assert parsed["opswatch_alerts"] == [({"state": "firing", "level": "critical"}, 1.0)]
    assert parsed["opswatch_remediation_runs"] == [
        ({"runbook": "clean_directory", "state": "succeeded"}, 2.0)
    ]
    assert ({"priority": "P1"}, 1.0) in parsed["opswatch_tickets_open"]
    assert ({"priority": "P3"}, 0.0) in parsed["opswatch_tickets_open"]


def test_untrusted_label_values_are_escaped() -> None:
    exporter = MetricsExporter(process_metrics=False)
    hostile = 'a"b\\c\nd{{ 7*7 }}'
    exporter.publish(Snapshot(samples=[sample("node_load1", 1.0, 1.0, device=hostile)], meta=META))
    body = exporter.render()
    assert b'device="a\\"b\\\\c\\nd{{ 7*7 }}"' in body
    assert parse(body)["node_load1"] == [({"device": hostile}, 1.0)]


def test_render_is_cached_until_the_next_publish() -> None:
    exporter = MetricsExporter(process_metrics=False)
    exporter.publish(Snapshot(samples=[sample("node_load1", 1.0, 1.0)], meta=META))
    first = exporter.render()
    assert exporter.render() is first
    exporter.publish(Snapshot(samples=[sample("node_load1", 2.0, 2.0)], meta=META))
    assert parse(exporter.render())["node_load1"] == [({}, 2.0)]


def test_process_metrics_of_the_agent_itself() -> None:
    exporter = MetricsExporter(process_metrics=True)
    parsed = parse(exporter.render())
    ((_labels, rss),) = parsed["process_resident_memory_bytes"]
    assert rss > 1_000_000


def test_alerts_carry_their_risk_and_suppression() -> None:
    import dataclasses

    exporter = MetricsExporter(process_metrics=False)
    firing = alert(AlertState.FIRING, Level.WARNING, mountpoint="/")
    rated = dataclasses.replace(
        firing, risk="high", impact="medium", likelihood="likely", silenced_by="silence-1"
    )
    exporter.publish(Snapshot(alerts=[rated]))
    ((labels, value),) = parse(exporter.render())["opswatch_alert"]
    assert value == 1.0
    assert {k: labels[k] for k in ("risk", "impact", "likelihood", "suppressed")} == {
        "risk": "high", "impact": "medium", "likelihood": "likely", "suppressed": "silenced",
    }  # fmt: skip


def full_render(snapshot: Snapshot) -> bytes:
    """What the exporter rendered before it kept family texts: the whole registry at once."""
    from prometheus_client import generate_latest

    fresh = MetricsExporter(process_metrics=False)
    fresh.publish(snapshot)
    return generate_latest(fresh.registry)


def test_a_family_fed_by_two_batches_stays_one_valid_family() -> None:
    exporter = MetricsExporter(process_metrics=False)
    host = [sample("node_load1", 1.0, 1.0, host="a"), sample("node_cpu_seconds_total", 5.0, 1.0)]
    snmp = [sample("node_load1", 2.0, 1.0, host="sw1")]
    exporter.publish(Snapshot(samples=[*host, *snmp], meta=META))
    exporter.render()
    snmp = [sample("node_load1", 3.0, 2.0, host="sw1")]  # only the second batch is new
    snapshot = Snapshot(samples=[*host, *snmp], meta=META)
    exporter.publish(snapshot)
    body = exporter.render()
    assert body.count(b"# TYPE node_load1 gauge") == 1
    assert body.count(b"# HELP node_load1 ") == 1
    assert sorted(parse(body)["node_load1"], key=lambda s: s[1]) == [
        ({"host": "a"}, 1.0),
        ({"host": "sw1"}, 3.0),
    ]
    assert body == full_render(snapshot)


def test_unchanged_families_are_reused_and_changed_ones_re_rendered() -> None:
    exporter = MetricsExporter(process_metrics=False)
    cpu = [sample("node_cpu_seconds_total", 5.0, 1.0, cpu="0", mode="idle")]
    exporter.publish(Snapshot(samples=[*cpu, sample("node_load1", 1.0, 1.0)], meta=META))
    exporter.render()
    # same sample objects, new value elsewhere: equal to a full render, new value shown
    snapshot = Snapshot(samples=[*cpu, sample("node_load1", 2.0, 2.0)], meta=META)
    exporter.publish(snapshot)
    assert exporter.render() == full_render(snapshot)
    assert parse(exporter.render())["node_load1"] == [({}, 2.0)]
    # same sample objects, new help text: the family is re-rendered
    meta = dict(META, node_cpu_seconds_total=MetricMeta(
        "node_cpu_seconds_total", MetricType.COUNTER, "Seconds the CPUs spent in each mode."
    ))  # fmt: skip
    exporter.publish(Snapshot(samples=[*cpu], meta=meta))
    body = exporter.render()
    assert b"# HELP node_cpu_seconds_total Seconds the CPUs spent in each mode." in body
    assert b"node_load1" not in body  # a family gone from the snapshot is gone from the page
    assert body == full_render(Snapshot(samples=[*cpu], meta=meta))


def test_a_repeated_series_in_an_unchanged_batch_keeps_the_last_reading() -> None:
    exporter = MetricsExporter(process_metrics=False)
    old, new = sample("node_load1", 1.0, 1.0), sample("node_load1", 2.0, 2.0)
    exporter.publish(Snapshot(samples=[old, new], meta=META))
    assert parse(exporter.render())["node_load1"] == [({}, 2.0)]
    exporter.publish(Snapshot(samples=[new, old], meta=META))
    assert parse(exporter.render())["node_load1"] == [({}, 1.0)]


def test_a_publish_that_changes_one_batch_renders_only_its_families(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import exporters.prometheus as prom

    rendered: list[str] = []
    render_family = prom.render_family

    def spy(name: str, *args: Any) -> bytes:
        rendered.append(name)
        return render_family(name, *args)

    monkeypatch.setattr(prom, "render_family", spy)
    exporter = MetricsExporter(process_metrics=False)
    snmp = [sample("ifHCInOctets", float(i), 1.0, ifIndex=str(i)) for i in range(48)]
    exporter.publish(Snapshot(samples=[*snmp, sample("node_load1", 1.0, 1.0)], meta=META))
    exporter.render()
    rendered.clear()
    exporter.publish(Snapshot(samples=[*snmp, sample("node_load1", 2.0, 2.0)], meta=META))
    exporter.render()
    assert "ifHCInOctets" not in rendered
    assert "node_load1" in rendered


# --- the direct renderer writes exactly what prometheus_client writes ----------------------

SPECIAL_VALUES = [
    0.0, -0.0, 1.0, -1.0, 0.25, 1e-9, 123456.0, 1234567.0, 12345678.9, 1e7, 1e15, 1e16, 1e22,
    1.5e300, -1234567.0, -1e22, 2.0**64, 2.0**32 - 1, math.inf, -math.inf, math.nan, 5e-324,
]  # fmt: skip
HOSTILE_VALUES = ['a"b', "back\\slash", "new\nline", '\\"\n', "", "ünï©ødé ☃", "{{ x }}", " "]


def reference(snapshot: Snapshot) -> bytes:
    """prometheus_client's own rendering of the snapshot's sample families."""
    from prometheus_client import generate_latest

    metrics = prom.sample_families(snapshot.samples, snapshot.meta)
    return generate_latest(prom._Metrics(metrics))


def ours(snapshot: Snapshot) -> bytes:
    return prom.FamilyTexts().render(snapshot.samples, snapshot.meta)


@pytest.mark.parametrize("value", SPECIAL_VALUES)
def test_values_are_spelled_as_prometheus_client_spells_them(value: float) -> None:
    from prometheus_client import utils

    floatToGoString: Callable[[float], str] = utils.floatToGoString  # untyped upstream
    assert text.go_float(value) == floatToGoString(value)
    if math.isfinite(value):  # an int value (a counter as read) is written as a float
        assert text.go_float(int(value)) == floatToGoString(int(value))


def test_a_family_of_every_type_with_hostile_labels_is_byte_equal() -> None:
    meta = {
        "c_total": MetricMeta("c_total", MetricType.COUNTER, 'count\\ "of"\nthings'),
        "c_plain": MetricMeta("c_plain", MetricType.COUNTER, "a counter without _total"),
        "g": MetricMeta("g", MetricType.GAUGE, ""),
        "u": MetricMeta("u", MetricType.UNTYPED, "untyped ünï"),
    }
    samples = [
        Sample(name, make_labels({"a": v, "b_2": "x", "_z": str(i)}), value, 1.0)
        for name in ("c_total", "c_plain", "g", "u", "no_meta", "ns:colon")
        for i, (v, value) in enumerate(zip(HOSTILE_VALUES * 3, SPECIAL_VALUES, strict=False))
    ]
    samples += [Sample("g", (), 3.0, 1.0), Sample("no_meta", (), -0.0, 1.0)]
    snapshot = Snapshot(samples, meta)
    assert ours(snapshot) == reference(snapshot)


def test_random_samples_are_byte_equal() -> None:
    rng = random.Random(20261122)
    alphabet = 'abc_:XYZ019"\\\n ü☃{}=,'
    names = ["ifHCInOctets", "node_load1", "x_total", "opswatch_if_in_bytes_per_second"]
    meta = {n: MetricMeta(n, rng.choice(list(MetricType)), "help " + n) for n in names[:3]}
    samples = []
    for _ in range(2000):
        labels = {
            rng.choice(["ifIndex", "ifName", "target", "mode", "cpu"]): "".join(
                rng.choices(alphabet, k=rng.randrange(0, 8))
            )
            for _ in range(rng.randrange(0, 5))
        }
        value = rng.choice([rng.uniform(-1e12, 1e12), float(rng.randrange(2**64)), *SPECIAL_VALUES])
        samples.append(Sample(rng.choice(names), make_labels(labels), value, 1.0))
    snapshot = Snapshot(samples, meta)
    assert ours(snapshot) == reference(snapshot)


@pytest.mark.parametrize(
    "sample_",
    [
        Sample("ok_name", (("b", "1"), ("a", "2")), 1.0, 1.0),  # not sorted
        Sample("ok_name", (("a", "1"), ("a", "2")), 1.0, 1.0),  # a name twice
        Sample("ok_name", (("bad-label", "1"),), 1.0, 1.0),  # outside the legacy set
        Sample("ok_name", (("", "1"),), 1.0, 1.0),
        Sample("bad.name-x", (("a", "1"),), 1.0, 1.0),
        Sample("ünï", (), 1.0, 1.0),
    ],
)
def test_labels_or_names_it_cannot_vouch_for_go_to_prometheus_client(sample_: Sample) -> None:
    snapshot = Snapshot([sample_, Sample("after", (("a", "1"),), 2.0, 1.0)])
    assert ours(snapshot) == reference(snapshot)


def test_a_whole_scrape_equals_the_registry_rendering() -> None:
    exporter = MetricsExporter(process_metrics=False)
    shared = make_labels({"target": "sw1", "ifIndex": "3", "ifName": 'ge"0\\3'})
    samples = [Sample(n, shared, float(i), 1.0) for i, n in enumerate(["ifInErrors", "ifSpeed"])]
    snapshot = Snapshot(
        [*samples, *(Sample(n, shared, 7.0, 1.0) for n in ("ifOutErrors", "ifSpeed"))],
        {"ifSpeed": MetricMeta("ifSpeed", MetricType.GAUGE, "Speed.")},
        alerts=[alert(AlertState.FIRING, Level.CRITICAL, mountpoint='/"x"')],
    )
    exporter.publish(snapshot)
    assert exporter.render() == full_render(snapshot)


def test_alert_label_names_the_format_cannot_carry_are_dropped() -> None:
    import dataclasses

    exporter = MetricsExporter(process_metrics=False)
    firing = alert(AlertState.FIRING, Level.WARNING)
    bad = dataclasses.replace(
        firing, labels=make_labels({"host": "web1", "x\n": "v", "__name__": "evil", "ok_1": "y"})
    )
    exporter.publish(Snapshot(alerts=[bad]))
    ((labels, _),) = parse(exporter.render())["opswatch_alert"]
    assert "__name__" not in labels and "x\n" not in labels
    assert labels["ok_1"] == "y"


def test_the_page_in_parts_joins_to_the_page() -> None:
    exporter = MetricsExporter(process_metrics=False)
    exporter.publish(Snapshot([sample("node_load1", 1.0, 1.0), sample("x", 2.0, 1.0)], META))
    parts = exporter.render_parts()
    assert len(parts) == 3  # two sample families and the agent's own
    assert b"".join(parts) == exporter.render()
    exporter.publish(Snapshot([sample("node_load1", 3.0, 1.0)], META))
    assert b"".join(exporter.render_parts()) == exporter.render()
    assert b"node_load1 3.0" in exporter.render()


def test_pre_rendered_lines_equal_the_samples_they_stand_for() -> None:
    """Half of each gauge or untyped family as `sample_line`s, half as samples: same bytes."""
    rng = random.Random(7)
    meta = {
        "g": MetricMeta("g", MetricType.GAUGE, "a gauge"),
        "u": MetricMeta("u", MetricType.UNTYPED, "untyped"),
    }
    samples = [
        Sample(
            rng.choice(["g", "u", "no_meta"]),
            make_labels({"ifIndex": str(i), "ifAlias": rng.choice(HOSTILE_VALUES)}),
            rng.choice([rng.uniform(-1e12, 1e12), float(rng.randrange(2**64)), *SPECIAL_VALUES]),
            1.0,
        )
        for i in range(600)
    ]
    kept, texts = [], {}
    for s in samples:
        if rng.random() < 0.5:
            kept.append(s)
        else:
            line = text.sample_line(s.name, s.labels, s.value).encode()
            texts.setdefault(s.name, []).append(line)
    # lines follow a family's samples: order the reference the same way
    by_family = sorted(samples, key=lambda s: (s.name, s not in kept))
    expected = reference(Snapshot(by_family, meta))
    assert prom.FamilyTexts().render(kept, meta, texts) == expected


@pytest.mark.parametrize(
    ("name", "labels"),
    [("bad.name", ()), ("ok", (("bad-label", "1"),)), ("ok", (("b", "1"), ("a", "2")))],
)
def test_a_line_the_direct_renderer_cannot_vouch_for_is_refused(name: str, labels: Any) -> None:
    with pytest.raises(ValueError):
        text.sample_line(name, labels, 1.0)


def test_lines_for_a_counter_family_are_dropped_with_a_warning_not_a_failed_scrape(
    caplog: pytest.LogCaptureFixture,
) -> None:
    meta = {"c_total": MetricMeta("c_total", MetricType.COUNTER, "count")}
    page = prom.FamilyTexts().render([sample("c_total", 2.0, 1.0)], meta, {"c_total": [b"c 1\n"]})
    assert page == b"# HELP c_total count\n# TYPE c_total counter\nc_total 2.0\n"
    assert "counter family c_total dropped" in caplog.text


def test_a_family_of_lines_is_reused_while_its_fragments_are_the_same_objects(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    families = prom.FamilyTexts()
    fragment = b'ifSpeed{target="sw1"} 1.0\n'
    first = families.render([], {}, {"ifSpeed": [fragment]})
    calls: list[str] = []
    render_family = prom.render_family

    def spy(name: str, *args: Any) -> bytes:
        calls.append(name)
        return render_family(name, *args)

    monkeypatch.setattr(prom, "render_family", spy)
    assert families.render([], {}, {"ifSpeed": [fragment]}) == first
    assert calls == []
    again = b"".join([b'ifSpeed{target="sw1"} ', b"2.0\n"])  # a new round: a new object
    assert families.render([], {}, {"ifSpeed": [again]}).endswith(b"2.0\n")
    assert calls == ["ifSpeed"]


@given(st.one_of(st.integers(-(2**70), 2**70), st.sampled_from(
    [0, -1, 999_999, 1_000_000, 1_000_001, -1_000_000, 10**15, 2**53 - 1, 2**53, 2**53 + 1,
     2**64 - 1, 10**21, 12_300_000])))  # fmt: skip
def test_integers_are_spelled_as_their_float_would_be(n: int) -> None:
    assert text.int_text(n) == text.go_float(float(n))
