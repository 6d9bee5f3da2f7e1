"""Counters done right, and the indicators derived from them; pure, state passed in.

SNMP counters are raw running totals: a 32-bit one wraps (every 3.4 s at 10 Gbit/s), and all of
them restart from zero when the device reboots. A rate taken naively then spikes to petabits or
goes negative, and an alert fires on nonsense. Here a rate is only produced between two
readings of the same counter on the same boot: sysUpTime going back marks a reboot and drops
every baseline of that device; a 32-bit counter that went down by more than half its range
wrapped once; any other decrease is a reset and yields no rate this round.
"""

from __future__ import annotations

import math
from array import array
from collections import defaultdict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from agent.model import Labels, MetricMeta, MetricType, Sample

_WRAP32 = 2**32
# (derived name, 64-bit source, 32-bit source): the HC counter wins whenever the row has it.
_OCTETS = (
    ("in", "ifHCInOctets", "ifInOctets"),
    ("out", "ifHCOutOctets", "ifOutOctets"),
)
_PER_SECOND = (
    ("opswatch_if_in_errors_per_second", "ifInErrors"),
    ("opswatch_if_out_errors_per_second", "ifOutErrors"),
    ("opswatch_if_in_discards_per_second", "ifInDiscards"),
    ("opswatch_if_out_discards_per_second", "ifOutDiscards"),
)
INPUTS = frozenset(
    {*(m for _, hc, low in _OCTETS for m in (hc, low)), *(src for _, src in _PER_SECOND)}
    | {"ifHighSpeed", "ifSpeed", "ifIndex"}
)
"""The if_mib metrics `interface_indicators` reads: a poller that pre-renders keeps these."""
FAMILIES = (
    MetricMeta("opswatch_if_in_bytes_per_second", MetricType.GAUGE, "Inbound octets per second."),
    MetricMeta("opswatch_if_out_bytes_per_second", MetricType.GAUGE, "Outbound octets per second."),
    MetricMeta(
        "opswatch_if_in_utilization_ratio",
        MetricType.GAUGE,
        "Inbound bits per second over ifHighSpeed (ifSpeed if that is 0), 0..1.",
    ),
    MetricMeta(
        "opswatch_if_out_utilization_ratio",
        MetricType.GAUGE,
        "Outbound bits per second over ifHighSpeed (ifSpeed if that is 0), 0..1.",
    ),
    *(MetricMeta(n, MetricType.GAUGE, f"{src} per second.") for n, src in _PER_SECOND),
    MetricMeta(
        "opswatch_snmp_device_reboots_total",
        MetricType.COUNTER,
        "Times the device's sysUpTime went back since the agent started.",
    ),
)


_SLOTS = {
    name: slot
    for slot, name in enumerate(sorted({m for _, hc, low in _OCTETS for m in (hc, low)}
                                       | {src for _, src in _PER_SECOND}))
}  # fmt: skip
"""The counters `interface_indicators` takes rates of: a slot each in a row's baselines."""
_NO_READINGS = array("d", [math.nan] * (2 * len(_SLOTS)))


@dataclass(slots=True)
class CounterState:
    """Last readings of every counter of every target, and each target's last sysUpTime.

    The counters of one interface row share an array of (value, time) pairs, keyed by the hash
    of the row's labels: ~270 bytes a row (1.3 MiB for 100 48-port switches), where a dict
    entry and two tuples a counter cost ~1.7 KiB. Labels that differ in anything (a renamed
    ifAlias) start a new baseline; two rows of one target colliding on a 64-bit hash would
    share one, at odds below 10^-12 for a thousand rows.
    """

    rows: dict[str, dict[int, array[float]]] = field(default_factory=dict)
    others: dict[tuple[str, str, Labels], tuple[float, float]] = field(default_factory=dict)
    """Baselines of counters outside `_SLOTS`, one entry each."""
    uptime: dict[str, tuple[float, float]] = field(default_factory=dict)
    """Each target's last sysUpTime (ticks) and when it was read."""
    reboots: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def observe_uptime(self, target: str, ticks: float, now: float) -> bool:
        """Record sysUpTime; True (and every baseline of `target` dropped) if it went back.

        TimeTicks are 32-bit: a device up for 497 days wraps to 0. A drop whose wrapped
        difference matches the time since the last poll (within a minute and 1%) is that
        wrap, not a reboot: a rebooted device counts from 0 only since its boot.
        """
        last = self.uptime.get(target)
        self.uptime[target] = (ticks, now)
        if last is None or ticks >= last[0]:
            return False
        elapsed = now - last[1]
        wrapped = (ticks + 2**32 - last[0]) / 100  # seconds
        if abs(wrapped - elapsed) <= 60 + elapsed / 100:
            return False
        self.forget(target)
        self.reboots[target] += 1
        return True

    def forget(self, target: str) -> None:
        """Drop every counter baseline of `target` (after a reboot or a config change)."""
        self.rows.pop(target, None)
        for key in [k for k in self.others if k[0] == target]:
            del self.others[key]

    def prune(self, before: float) -> None:
        """Drop the baselines last read before `before`, once a round: rows that went away (a
        tunnel, a renamed ifAlias) would otherwise be kept for the life of the poller."""
        for rows in self.rows.values():
            for key in [k for k, row in rows.items() if _newest(row) < before]:
                del rows[key]
        for other in [k for k, (_, t) in self.others.items() if t < before]:
            del self.others[other]

    def rate(self, target: str, sample: Sample, bits: int = 64) -> float | None:
        """Per-second increase since the last reading, or None when there is no valid one."""
        slot = _SLOTS.get(sample.name)
        if slot is None:
            key = (target, sample.name, sample.labels)
            last = self.others.get(key, (math.nan, math.nan))
            self.others[key] = (sample.value, sample.timestamp)
        else:
            rows = self.rows.get(target)
            if rows is None:
                rows = self.rows[target] = {}
            row_key = hash(sample.labels)
            row = rows.get(row_key)
            if row is None:
                row = rows[row_key] = array("d", _NO_READINGS)
            last = (row[2 * slot], row[2 * slot + 1])
            row[2 * slot], row[2 * slot + 1] = sample.value, sample.timestamp
        if not sample.timestamp > last[1]:  # also when there is none: NaN compares false
            return None
        delta = counter_delta(last[0], sample.value, bits)
        return None if delta is None else delta / (sample.timestamp - last[1])


def counter_delta(old: float, new: float, bits: int) -> float | None:
    """Increase from `old` to `new`: one wrap allowed for 32-bit counters, else None on a drop."""
    if new >= old:
        return new - old
    if bits == 32 and old - new > _WRAP32 / 2:  # small after large: it wrapped, not reset
        return new + _WRAP32 - old
    return None


def _newest(row: array[float]) -> float:
    return max((t for t in row[1::2] if t == t), default=-math.inf)  # t != t: never read (NaN)


def interface_indicators(
    state: CounterState, target: str, samples: Iterable[Sample], now: float
) -> list[Sample]:
    """Utilisation, byte, error and discard rates per interface from if_mib samples."""
    rows: dict[str, dict[str, Sample]] = defaultdict(dict)
    # The numeric metrics of a row share one label tuple (profiles.render): find its ifIndex
    # once per tuple rather than scanning the labels of each of ~2,000 samples.
    index_of: dict[Labels, str] = {}
    for s in samples:
        index = index_of.get(s.labels)
        if index is None:
            index = index_of[s.labels] = s.label("ifIndex")
        if index:
            rows[index][s.name] = s
    out: list[Sample] = []
    for row in rows.values():
        out.extend(_row_indicators(state, target, row, now))
    return out


def _row_indicators(
    state: CounterState, target: str, row: Mapping[str, Sample], now: float
) -> list[Sample]:
    # Labels of a numeric column: target, ifIndex and lookups (text columns add their own label).
    # Only the first is needed, and it is nearly always the row's first sample (ifIndex).
    numeric = (s for s in row.values() if not s.label(s.name) and not s.name.endswith("_info"))
    first = next(numeric, None)
    if first is None:
        return []
    labels = first.labels
    out: list[Sample] = []
    speed = _speed_bps(row)
    for direction, hc, low in _OCTETS:
        source, bits = (row.get(hc), 64) if hc in row else (row.get(low), 32)
        rate = None if source is None else state.rate(target, source, bits)
        if rate is None:
            continue
        out.append(Sample(f"opswatch_if_{direction}_bytes_per_second", labels, rate, now))
        if speed:
            util = rate * 8 / speed
            out.append(Sample(f"opswatch_if_{direction}_utilization_ratio", labels, util, now))
    for name, src in _PER_SECOND:
        if src in row:
            rate = state.rate(target, row[src], 32)
            if rate is not None:
                out.append(Sample(name, labels, rate, now))
    return out


def _speed_bps(row: Mapping[str, Sample]) -> float:
    high = row.get("ifHighSpeed")
    if high is not None and high.value > 0:
        return high.value * 1_000_000
    low = row.get("ifSpeed")
    return low.value if low is not None else 0.0


@dataclass(slots=True)
class Availability:
    """Share of successful polls per target over a sliding window of seconds."""

    window: float
    polls: dict[str, deque[tuple[float, bool]]] = field(default_factory=dict)

    def record(self, target: str, now: float, up: bool) -> float:
        """Add one poll outcome; return the ratio of good polls in the window."""
        history = self.polls.setdefault(target, deque())
        history.append((now, up))
        while history and history[0][0] <= now - self.window:
            history.popleft()
        return sum(1 for _, ok in history if ok) / len(history)
