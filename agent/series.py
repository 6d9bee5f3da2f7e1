"""In-memory windows of recent samples, indexed by metric name, for the rule engine.

`SeriesStore` owns the data; rule evaluation reads it only through `SeriesView.select`. Each
series keeps its points as two parallel `array('d')` (timestamps, values): 16 bytes a point and
binary-searchable, so a window lookup is two bisects, not a scan.
"""

from __future__ import annotations

import math
import re
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from agent.model import Labels, Sample

MatchOp = Literal["=", "!=", "=~", "!~"]


@dataclass(frozen=True, slots=True)
class Matcher:
    """One label matcher of a selector; regexes are compiled once and fully anchored."""

    name: str
    op: MatchOp
    value: str
    regex: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def make(cls, name: str, op: MatchOp, value: str) -> Matcher:
        """Build a matcher, compiling (and raising `re.error` for) a regex value."""
        regex = re.compile(f"(?:{value})\\Z", re.DOTALL) if op in ("=~", "!~") else None
        return cls(name, op, value, regex)

    def matches(self, value: str) -> bool:
        """True when a label value (`""` when the label is missing) satisfies the matcher."""
        if self.op == "=":
            return value == self.value
        if self.op == "!=":
            return value != self.value
        assert self.regex is not None
        found = self.regex.match(value) is not None
        return found if self.op == "=~" else not found


class Series:
    """One (name, labels) series: time-ordered parallel arrays of timestamps and values."""

    __slots__ = ("label_map", "labels", "last_drop", "name", "timestamps", "values")

    def __init__(self, name: str, labels: Labels) -> None:
        self.name = name
        self.labels = labels
        self.label_map = dict(labels)
        self.timestamps = array("d")
        self.values = array("d")
        self.last_drop = -math.inf
        """No value fell at or before this time after an earlier point (no counter reset)."""

    def __repr__(self) -> str:
        return f"Series({self.name!r}, {self.labels!r}, {len(self.timestamps)} points)"

    def __len__(self) -> int:
        return len(self.timestamps)

    def span(self, start: float, end: float) -> tuple[int, int]:
        """Index range [lo, hi) of the points with start < timestamp <= end."""
        ts = self.timestamps
        lo = bisect_right(ts, start)
        if ts and ts[-1] <= end:  # the usual case: nothing newer than the evaluation time
            return lo, len(ts)
        return lo, bisect_right(ts, end, lo)

    def matches(self, matchers: Sequence[Matcher]) -> bool:
        get = self.label_map.get
        return all(m.matches(get(m.name, "")) for m in matchers)

    def _add(self, timestamp: float, value: float, limit: int) -> None:
        ts = self.timestamps
        if not ts or timestamp > ts[-1]:
            if ts and value < self.values[-1]:
                self.last_drop = timestamp
            ts.append(timestamp)
            self.values.append(value)
            return self._limit(limit)
        self.last_drop = ts[-1]  # rare: rather than work out where drops now are, assume one
        if timestamp == ts[-1]:
            self.values[-1] = value  # a re-reading of the same instant replaces the old one
        else:
            index = bisect_right(ts, timestamp)
            if ts[index - 1] == timestamp:
                self.values[index - 1] = value
            else:  # a late result from a slow collector thread still belongs in order
                ts.insert(index, timestamp)
                self.values.insert(index, value)
        self._limit(limit)

    def _limit(self, limit: int) -> None:
        if len(self.timestamps) > limit:
            self._drop(len(self.timestamps) - limit)

    def _drop(self, count: int) -> None:
        del self.timestamps[:count]
        del self.values[:count]


class SeriesView(Protocol):
    """What rule evaluation may do with the store: look series up, never change them."""

    def select(self, name: str, matchers: Sequence[Matcher]) -> Iterable[Series]: ...


class SeriesStore:
    """Recent samples kept for `retention` seconds, at most `max_points_per_series` per series."""

    def __init__(self, retention: float, max_points_per_series: int = 2048) -> None:
        if retention <= 0 or max_points_per_series <= 0:
            raise ValueError("retention and max_points_per_series must be positive")
        self.retention = retention
        self.max_points = max_points_per_series
        self._by_name: dict[str, dict[Labels, Series]] = {}
        self._count = 0
        # Selections change only when a family gains or loses a series, which is rare next to
        # the 200 rules that select every cycle: keep them until their family changes.
        self._selections: dict[str, dict[tuple[Matcher, ...], tuple[Series, ...]]] = {}
        # family -> label -> value -> its series, built on the first `=` selection and dropped
        # with the family's selections: the first cycle's rules then do not each scan the family
        self._indexes: dict[str, dict[str, dict[str, list[Series]]]] = {}
        # One label tuple object per distinct label set, shared by every family that has it
        # (`avail` and `size`, `rate(errs)` and `rate(packets)`), with its number of series:
        # the evaluator then matches two sides with the same series by identity, not by hash.
        self._labels: dict[Labels, tuple[Labels, int]] = {}

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[Series]:
        for family in self._by_name.values():
            yield from family.values()

    def names(self) -> list[str]:
        """Metric names that have at least one series."""
        return list(self._by_name)

    def add(self, samples: Iterable[Sample]) -> None:
        """Append samples to their series, creating series as they first appear."""
        by_name = self._by_name
        for s in samples:
            family = by_name.get(s.name)
            if family is None:
                family = by_name[s.name] = {}
            series = family.get(s.labels)
            if series is None:
                series = family[s.labels] = Series(s.name, self._intern(s.labels))
                self._count += 1
                self._forget(s.name)
            series._add(s.timestamp, s.value, self.max_points)

    def _intern(self, labels: Labels) -> Labels:
        shared, uses = self._labels.get(labels, (labels, 0))
        self._labels[labels] = (shared, uses + 1)
        return shared

    def _release(self, labels: Labels) -> None:
        shared, uses = self._labels[labels]
        if uses > 1:
            self._labels[labels] = (shared, uses - 1)
        else:
            del self._labels[labels]

    def _forget(self, name: str) -> None:
        """Drop what was derived from family `name`'s membership: it just changed."""
        self._selections.pop(name, None)
        self._indexes.pop(name, None)

    def prune(self, now: float) -> None:
        """Drop points older than `now - retention`, then series left without points."""
        cutoff = now - self.retention
        for name in list(self._by_name):
            family = self._by_name[name]
            for labels in [k for k, s in family.items() if _prune_series(s, cutoff)]:
                del family[labels]
                self._count -= 1
                self._release(labels)
                self._forget(name)
            if not family:
                del self._by_name[name]

    def select(self, name: str, matchers: Sequence[Matcher]) -> Iterable[Series]:
        """Series of metric `name` whose labels satisfy every matcher."""
        key = tuple(matchers)
        cached = self._selections.get(name, {}).get(key)
        if cached is not None:
            return cached
        family = self._by_name.get(name)
        if not family:
            return ()
        candidates: Iterable[Series] = family.values()
        equal = next((m for m in key if m.op == "="), None)
        if equal is not None:  # the family's series with that label value, in family order
            candidates = self._index(name, equal.name).get(equal.value, ())
            key = tuple(m for m in key if m is not equal)
        selected = tuple(s for s in candidates if s.matches(key))
        self._selections.setdefault(name, {})[tuple(matchers)] = selected
        return selected

    def _index(self, name: str, label: str) -> dict[str, list[Series]]:
        by_label = self._indexes.setdefault(name, {})
        index = by_label.get(label)
        if index is None:
            index = by_label[label] = {}
            for series in self._by_name[name].values():  # a missing label is the value ""
                index.setdefault(series.label_map.get(label, ""), []).append(series)
        return index


def _prune_series(series: Series, cutoff: float) -> bool:
    """Drop points before `cutoff`; True when the series is left empty."""
    ts = series.timestamps
    if ts and ts[0] < cutoff:
        series._drop(bisect_left(ts, cutoff))
    return not ts
