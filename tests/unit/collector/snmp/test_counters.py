"""Counters: HC preferred, 32-bit wraps handled, reboots and resets never give a spike."""

from __future__ import annotations

import pytest

from agent.model import Sample, make_labels
from collector.snmp.counters import Availability, CounterState, counter_delta, interface_indicators

LABELS = {"target": "sw1", "ifIndex": "1", "ifName": "Gi0/1"}


def row(now: float, **values: float) -> list[Sample]:
    return [Sample(name, make_labels(LABELS), v, now) for name, v in values.items()]


def by_name(samples: list[Sample]) -> dict[str, float]:
    return {s.name: s.value for s in samples}


@pytest.mark.parametrize(
    ("old", "new", "bits", "expected"),
    [
        (100, 350, 32, 250),
        (2**32 - 100, 50, 32, 150),  # wrapped once
        (5_000, 10, 32, None),  # dropped by little: a reset, not a wrap
        (2**63, 10, 64, None),  # 64-bit counters never wrap in practice
    ],
)
def test_counter_delta(old: float, new: float, bits: int, expected: float | None) -> None:
    assert counter_delta(old, new, bits) == expected


def test_utilisation_from_hc_octets_over_high_speed() -> None:
    state = CounterState()
    interface_indicators(state, "sw1", row(0, ifHCInOctets=0, ifHighSpeed=1000, ifInOctets=0), 0)
    out = by_name(
        interface_indicators(
            state, "sw1", row(10, ifHCInOctets=625_000_000, ifHighSpeed=1000, ifInOctets=5), 10
        )
    )
    assert out["opswatch_if_in_bytes_per_second"] == 62_500_000
    assert out["opswatch_if_in_utilization_ratio"] == pytest.approx(0.5)  # 500 of 1000 Mbit/s


def test_32_bit_octets_used_when_no_hc_and_wrap_gives_true_rate() -> None:
    state = CounterState()
    interface_indicators(state, "sw1", row(0, ifInOctets=2**32 - 1000, ifSpeed=10_000_000), 0)
    out = by_name(interface_indicators(state, "sw1", row(10, ifInOctets=9000, ifSpeed=10e6), 10))
    assert out["opswatch_if_in_bytes_per_second"] == 1000
    assert out["opswatch_if_in_utilization_ratio"] == pytest.approx(0.0008)


def test_sysuptime_wrapping_after_497_days_is_not_a_reboot() -> None:
    state = CounterState()
    assert not state.observe_uptime("sw1", 2**32 - 1000, now=0)  # 10 s before the wrap
    interface_indicators(state, "sw1", row(0, ifHCInOctets=10**12), 0)
    assert not state.observe_uptime("sw1", 2000, now=30)  # 30 s later: wrapped, same boot
    assert state.reboots["sw1"] == 0
    after = by_name(interface_indicators(state, "sw1", row(30, ifHCInOctets=10**12 + 30_000), 30))
    assert after["opswatch_if_in_bytes_per_second"] == 1000  # the baseline was kept
    # a reboot near the wrap is still one: up 5 s now, but 30 min since the last poll
    assert state.observe_uptime("sw1", 500, now=1830)
    # ... and a device that came back up days after its last poll, whatever it showed
    assert not state.observe_uptime("sw2", 2**32 - 100, now=0)
    assert state.observe_uptime("sw2", 10**6, now=3 * 86400)


def test_reboot_drops_baselines_so_no_spike() -> None:
    state = CounterState()
    assert not state.observe_uptime("sw1", 100_000, now=0)
    interface_indicators(state, "sw1", row(0, ifHCInOctets=10**12, ifInErrors=500), 0)
    assert state.observe_uptime("sw1", 300, now=60)  # sysUpTime went back: the device rebooted
    after = interface_indicators(state, "sw1", row(60, ifHCInOctets=10**6, ifInErrors=2), 60)
    assert after == []
    later = by_name(
        interface_indicators(state, "sw1", row(120, ifHCInOctets=2 * 10**6, ifInErrors=8), 120)
    )
    assert later["opswatch_if_in_bytes_per_second"] == pytest.approx(10**6 / 60)
    assert later["opswatch_if_in_errors_per_second"] == pytest.approx(0.1)
    assert state.reboots["sw1"] == 1


def test_counter_reset_without_reboot_yields_no_rate() -> None:
    state = CounterState()
    interface_indicators(state, "sw1", row(0, ifHCInOctets=10**9), 0)
    assert interface_indicators(state, "sw1", row(10, ifHCInOctets=5), 10) == []


def test_derived_samples_keep_the_interface_labels() -> None:
    state = CounterState()
    interface_indicators(state, "sw1", row(0, ifInDiscards=0), 0)
    [sample] = interface_indicators(state, "sw1", row(5, ifInDiscards=10), 5)
    assert sample.name == "opswatch_if_in_discards_per_second"
    assert dict(sample.labels) == LABELS and sample.value == 2


def test_availability_over_a_window() -> None:
    avail = Availability(window=100)
    assert avail.record("a", 0, True) == 1.0
    assert avail.record("a", 50, False) == 0.5
    assert avail.record("a", 99, True) == pytest.approx(2 / 3)
    assert avail.record("a", 140, True) == pytest.approx(2 / 3)  # t=0 left the window


def test_a_row_keeps_its_baselines_in_one_array_and_other_counters_still_get_rates() -> None:
    state = CounterState()
    interface_indicators(state, "sw1", row(0, ifHCInOctets=0, ifInErrors=0, ifOutErrors=0), 0)
    assert [len(rows) for rows in state.rows.values()] == [1]  # three counters, one row
    labels = make_labels(LABELS)
    assert state.rate("sw1", Sample("hrProcessorTicks", labels, 100.0, 0)) is None
    assert state.rate("sw1", Sample("hrProcessorTicks", labels, 400.0, 30)) == 10
    state.forget("sw1")
    assert state.rows == {} and state.others == {}
    assert interface_indicators(state, "sw1", row(10, ifHCInOctets=5), 10) == []


def test_baselines_of_rows_that_went_away_are_dropped() -> None:
    state = CounterState()
    gone = [Sample("ifHCInOctets", make_labels({"ifIndex": "7"}), 5.0, 0)]
    interface_indicators(state, "sw1", row(0, ifHCInOctets=10, ifInErrors=1) + gone, 0)
    state.rate("sw1", Sample("ciscoCpu_total", make_labels({}), 1.0, 0))  # outside the rows
    interface_indicators(state, "sw1", row(60, ifHCInOctets=70), 60)
    state.prune(before=30)
    # the row still polled keeps its baseline (its errors slot, last read at 0, with it)
    assert [len(state.rows["sw1"]), len(state.others)] == [1, 0]
    after = by_name(interface_indicators(state, "sw1", row(120, ifHCInOctets=130), 120))
    assert after["opswatch_if_in_bytes_per_second"] == 1
