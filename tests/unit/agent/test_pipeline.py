"""One cycle end to end, pure: rules, the risk matrix, silences, inhibition and flapping."""

from __future__ import annotations

from typing import Any

from agent import config
from agent.model import AlertState, Priority, sample
from agent.pipeline import CycleState, Pipeline
from agent.series import SeriesStore

NOW = 1_700_000_000.0
BASE = """
agent: {name: web1, labels: {criticality: high}}
rules:
  - name: DiskWillFill
    expr: time_to_threshold(node_filesystem_avail_bytes[1h], 0)
    op: "<"
    warning: 14400
    critical: 3600
  - name: DiskFull
    expr: 100 * (1 - node_filesystem_avail_bytes / node_filesystem_size_bytes)
    warning: 80
    critical: 95
"""


def pipeline(extra: str = "") -> Pipeline:
    cfg = config.parse(BASE + extra)
    return Pipeline(cfg, {"host": cfg.agent.name})


def filling(store: SeriesStore, mountpoint: str, free_at_now: float, per_second: float) -> None:
    """A filesystem of 1000 bytes losing `per_second` bytes a second over the last hour."""
    for i in range(61):
        t = NOW - 3600 + 60 * i
        avail = free_at_now + per_second * (NOW - t)
        store.add([
            sample("node_filesystem_avail_bytes", avail, t, mountpoint=mountpoint),
            sample("node_filesystem_size_bytes", 1000.0, t, mountpoint=mountpoint),
        ])  # fmt: skip


def by_rule(alerts: list[Any]) -> dict[tuple[str, str], Any]:
    return {(a.rule, a.label("mountpoint")): a for a in alerts}


def test_a_prediction_is_rated_by_the_matrix_before_the_threshold_is_reached() -> None:
    store = SeriesStore(retention=7200)
    filling(store, "/srv", free_at_now=300.0, per_second=0.1)  # 70 % used, empty in 3000 s
    cycle = pipeline().run(store, NOW, CycleState())
    alerts = by_rule(cycle.alerts)
    predicted = alerts[("DiskWillFill", "/srv")]
    assert predicted.state is AlertState.FIRING
    assert predicted.value == 3000.0
    assert ("DiskFull", "/srv") not in alerts  # 70 % used: no threshold crossed yet
    # A perfect line, full within a quarter of the 4 h horizon: likely (a prediction is never
    # almost certain); the host's own criticality is high: high risk, P2 important.
    assert (predicted.likelihood, predicted.impact, predicted.risk) == ("likely", "high", "high")
    assert predicted.priority is Priority.P2
    assert predicted.policy == "approval"


def test_silenced_and_inhibited_alerts_say_by_what() -> None:
    store = SeriesStore(retention=7200)
    filling(store, "/srv", free_at_now=20.0, per_second=0.1)  # 98 % used and falling
    extra = """
silences:
  - id: night-work
    matchers: ['mountpoint="/srv"', 'alertname="DiskFull"']
    ends_at: "2030-01-01T00:00:00+00:00"
    author: alice
    comment: resizing /srv
inhibit_rules:
  - source_matchers: ['alertname="DiskFull"']
    target_matchers: ['alertname="DiskWillFill"']
    equal: [mountpoint]
"""
    alerts = by_rule(pipeline(extra).run(store, NOW, CycleState()).alerts)
    full, will_fill = alerts[("DiskFull", "/srv")], alerts[("DiskWillFill", "/srv")]
    assert full.silenced_by == "night-work" and full.suppressed
    assert will_fill.inhibited_by == full.fingerprint and will_fill.suppressed
    assert full.priority is Priority.P1  # still rated: critical on a high-impact host


def test_flapping_is_carried_between_cycles() -> None:
    pipe = pipeline("")
    state = CycleState()
    flapped = False
    for i in range(12):
        store = SeriesStore(retention=7200)
        used = 99.0 if i % 2 else 10.0
        t = NOW + 60 * i
        store.add([
            sample("node_filesystem_avail_bytes", 1000 - 10 * used, t, mountpoint="/"),
            sample("node_filesystem_size_bytes", 1000.0, t, mountpoint="/"),
        ])  # fmt: skip
        cycle = pipe.run(store, t, state)
        state = cycle.state
        flapped = flapped or any(a.flapping for a in cycle.alerts if a.rule == "DiskFull")
    assert flapped
