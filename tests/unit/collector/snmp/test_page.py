"""Compact device pages write each line exactly as the pre-rendered lines spell it."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from agent.model import MetricMeta, MetricType
from collector.snmp.page import PageWriter, packed, render
from exporters.text import int_text, value_text

EDGE_INTS = [0, -1, 999_999, 1_000_000, -999_999, -1_000_000, 2**53 - 1, 2**53 + 1,
             2**63 - 1, 2**63, 2**64 - 1, -(2**63)]  # fmt: skip
EDGE_FLOATS = [0.0, -0.0, 0.5, 999_999.9, 1e6, 1e22, -1e6, math.inf, -math.inf, math.nan]


def lines_of(values: list[int] | list[float]) -> str:
    writer = PageWriter()
    labels, numbers = writer.column("m")
    for n, v in enumerate(values):
        labels.append(f'{{ifIndex="{n}"}} ')
        numbers.append(v)
    return writer.freeze().text("m")


def expected(values: list[int] | list[float]) -> str:
    spell = [int_text(v) if isinstance(v, int) else value_text(v) for v in values]
    return "".join(f'm{{ifIndex="{n}"}} {s}\n' for n, s in enumerate(spell))


def test_edge_values_are_spelled_as_the_lines_spell_them() -> None:
    for value in EDGE_INTS:
        assert lines_of([value]) == expected([value]), value
    assert lines_of(EDGE_FLOATS) == expected(EDGE_FLOATS)
    # integers past 64 bits, or mixed with floats, are kept as doubles: the same text
    assert lines_of([2**64, 7]) == expected([float(2**64), 7.0])
    assert lines_of([3, 0.25]) == expected([3.0, 0.25])
    assert packed([1, 2]).typecode == "i" and packed([2**32 - 1]).typecode == "I"
    assert packed([-1, 2**32]).typecode == "q" and packed([2**64 - 1]).typecode == "Q"


@given(st.lists(st.integers(min_value=-(2**63), max_value=2**64 - 1), min_size=1, max_size=40))
def test_integers_of_any_size_are_spelled_exactly(values: list[int]) -> None:
    # negatives beside values past 2^63 fit neither 64-bit array: doubles, the same text
    assert lines_of(values) == expected(values)


@given(st.lists(st.floats(allow_nan=False), min_size=1, max_size=40))
def test_floats_are_spelled_as_value_text(values: list[float]) -> None:
    assert lines_of(values) == expected(values)


def test_a_series_written_twice_is_kept_once_with_its_last_value() -> None:
    writer = PageWriter()
    for value in (1, 2):  # two profiles of one target naming the same metric
        labels, numbers = writer.column("m")
        labels.append('{ifIndex="1"} ')
        numbers.append(value)
    assert writer.freeze().text("m") == 'm{ifIndex="1"} 2.0\n'


def test_render_writes_each_family_once_over_every_device() -> None:
    pages = {}
    for device in ("a", "b"):
        writer = PageWriter()
        for family in ("ifMtu", "ifAdminStatus"):
            labels, numbers = writer.column(family)
            labels.append(f'{{target="{device}"}} ')
            numbers.append(1500 if family == "ifMtu" else 1)
        pages[device] = writer.freeze()
    meta = {"ifMtu": MetricMeta("ifMtu", MetricType.GAUGE, "MTU")}
    page = b"".join(render(pages, meta)).decode()
    assert page == (
        '# HELP ifAdminStatus \n# TYPE ifAdminStatus untyped\n'
        'ifAdminStatus{target="a"} 1.0\nifAdminStatus{target="b"} 1.0\n'
        '# HELP ifMtu MTU\n# TYPE ifMtu gauge\n'
        'ifMtu{target="a"} 1500.0\nifMtu{target="b"} 1500.0\n'
    )
