"""SeriesStore: ordering, limits, pruning and selection by name and matchers."""

from __future__ import annotations

import re

import pytest

from agent.model import make_labels, sample
from agent.series import Matcher, SeriesStore


def points(store: SeriesStore, name: str, **labels: str) -> list[tuple[float, float]]:
    wanted = make_labels(labels)
    (series,) = [s for s in store.select(name, []) if s.labels == wanted]
    return list(zip(series.timestamps, series.values, strict=True))


def test_add_keeps_points_in_time_order_and_replaces_same_instant() -> None:
    store = SeriesStore(retention=3600)
    store.add([sample("x", 1, 10), sample("x", 3, 30), sample("x", 2, 20), sample("x", 9, 30)])
    assert points(store, "x") == [(10, 1), (20, 2), (30, 9)]
    store.add([sample("x", 5, 20)])
    assert points(store, "x") == [(10, 1), (20, 5), (30, 9)]


def test_len_counts_series_not_points() -> None:
    store = SeriesStore(retention=3600)
    store.add([sample("a", 1, t, dev="sda") for t in range(5)])
    store.add([sample("a", 1, 0, dev="sdb"), sample("b", 1, 0)])
    assert len(store) == 3
    assert sorted(store.names()) == ["a", "b"]


def test_max_points_per_series_drops_the_oldest() -> None:
    store = SeriesStore(retention=3600, max_points_per_series=3)
    store.add(sample("x", t, t) for t in range(10))
    assert points(store, "x") == [(7, 7), (8, 8), (9, 9)]


def test_prune_drops_old_points_and_empty_series() -> None:
    store = SeriesStore(retention=60)
    store.add(sample("old", 1, t) for t in (0, 10))
    store.add(sample("mixed", t, t) for t in (0, 40, 50, 100))
    store.prune(now=100)  # cutoff 40: points at exactly the cutoff stay
    assert points(store, "mixed") == [(40, 40), (50, 50), (100, 100)]
    assert list(store.select("old", [])) == []
    assert len(store) == 1
    assert store.names() == ["mixed"]


def test_select_by_name_and_every_matcher_kind() -> None:
    store = SeriesStore(retention=3600)
    for fstype, mount in (("ext4", "/"), ("tmpfs", "/run"), ("overlay", "/var/lib/docker/x")):
        store.add([sample("fs", 1, 0, fstype=fstype, mountpoint=mount)])
    store.add([sample("other", 1, 0, fstype="ext4")])

    def mounts(*matchers: Matcher) -> list[str]:
        return sorted(s.label_map["mountpoint"] for s in store.select("fs", matchers))

    assert mounts() == ["/", "/run", "/var/lib/docker/x"]
    assert mounts(Matcher.make("fstype", "=", "ext4")) == ["/"]
    assert mounts(Matcher.make("fstype", "!=", "ext4")) == ["/run", "/var/lib/docker/x"]
    assert mounts(Matcher.make("fstype", "!~", "tmpfs|overlay")) == ["/"]
    assert mounts(Matcher.make("mountpoint", "=~", "/run|/")) == ["/", "/run"]
    assert list(store.select("missing", [])) == []


def test_regex_matchers_are_fully_anchored() -> None:
    matcher = Matcher.make("device", "=~", "sd.")
    assert matcher.matches("sda")
    assert not matcher.matches("xsda")
    assert not matcher.matches("sda1")
    assert not Matcher.make("device", "!~", "sd.").matches("sdb")


def test_missing_label_matches_as_empty_string() -> None:
    assert Matcher.make("job", "=", "").matches("")
    assert Matcher.make("job", "!=", "x").matches("")
    assert Matcher.make("job", "=~", ".*").matches("")


def test_bad_regex_raises_re_error() -> None:
    with pytest.raises(re.error):
        Matcher.make("a", "=~", "(")


def test_window_span_is_left_open_right_closed() -> None:
    store = SeriesStore(retention=3600)
    store.add(sample("x", t, t) for t in (0, 10, 20, 30))
    (series,) = store.select("x", [])
    assert series.span(10, 30) == (2, 4)  # (10, 30]
    assert series.span(-1, 5) == (0, 1)
    assert series.span(30, 40) == (4, 4)


def test_rejects_non_positive_limits() -> None:
    with pytest.raises(ValueError):
        SeriesStore(retention=0)
    with pytest.raises(ValueError):
        SeriesStore(retention=10, max_points_per_series=0)


def test_selection_sees_series_added_and_pruned_later() -> None:
    store = SeriesStore(retention=60)
    up = [Matcher.make("job", "=~", "node|snmp")]
    store.add([sample("up", 1, 0, job="node")])
    assert [s.label_map["job"] for s in store.select("up", up)] == ["node"]
    store.add([sample("up", 1, 50, job="snmp"), sample("up", 1, 50, job="other")])
    assert sorted(s.label_map["job"] for s in store.select("up", up)) == ["node", "snmp"]
    store.prune(now=100)
    assert [s.label_map["job"] for s in store.select("up", up)] == ["snmp"]
    store.prune(now=200)
    assert list(store.select("up", up)) == []


def test_selection_is_read_only() -> None:
    store = SeriesStore(retention=60)
    store.add([sample("up", 1, 0)])
    assert isinstance(store.select("up", []), tuple)
