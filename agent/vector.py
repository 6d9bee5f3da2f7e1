"""Instant-vector arithmetic: aggregation across series, `+ - * /`, comparisons and set operators.

Also the least-squares line through a window's points, which predictions and `Fit` share.

Split from `agent.evaluate`, which walks the expression tree and reads series windows; this half
combines values already computed, and keeps them for the other rules of the same cycle. A vector
is `Columns` here (`dict[Labels, float]` to callers; series labels never carry the metric name,
so its label sets are unique); a scalar is a plain float. Nothing raises: an element with no
defined value (division by zero, a many-to-one match) is left out. Every function returns new
`Columns` or one of its inputs unchanged, and never mutates an input: the evaluator shares
values between rules in a cycle.
"""

from __future__ import annotations

import itertools
import math
import operator
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, fields, is_dataclass
from typing import cast

from agent.expr_ast import SET_OPERATORS, Aggregation, Expr, VectorMatching
from agent.model import Labels
from agent.series import Series, SeriesView

Vector = dict[Labels, float]
"""An instant vector as callers outside the evaluator see it."""


class Columns:
    """An instant vector inside the evaluator: element i is (keys[i], values[i]), keys unique.

    Why not a `Vector` dict: building a dict hashes every label tuple (CPython does not cache a
    tuple's hash: ~100 ns for a series' labels), and `rate(a) * 8 / (b * 1e6) * 100` would build
    five dicts an element. Columns pair by position instead: an operation with a scalar reuses
    its operand's `keys` list, the two sides of `a / b` pair by identity of their (interned)
    label tuples, and only label matching (`on`, `ignoring`, sides that differ, set operators)
    hashes labels.
    Read-only once built: values are shared between rules (`SharedResults`) and `keys` lists
    between values, so no list is ever changed after construction.
    """

    __slots__ = ("keys", "values")

    def __init__(self, keys: list[Labels], values: list[float]) -> None:
        self.keys, self.values = keys, values

    def __len__(self) -> int:
        return len(self.keys)

    def __repr__(self) -> str:
        return f"Columns({self.as_dict()!r})"

    @classmethod
    def of(cls, vector: Vector) -> Columns:
        return cls(list(vector), list(vector.values()))

    def as_dict(self) -> Vector:
        return dict(zip(self.keys, self.values, strict=True))

    def items(self) -> Iterator[tuple[Labels, float]]:
        return zip(self.keys, self.values, strict=True)


Value = float | Columns


def as_vector(value: Value) -> Columns:
    """A scalar as a single element with no labels; a vector as it is."""
    return Columns([()], [value]) if isinstance(value, float) else value


# ---------------------------------------------------------------------------------------------
# Sharing values between the rules of one cycle


class SharedResults:
    """The value of each sub-expression evaluated so far at one instant over one series view.

    Why: rule sets repeat themselves. The same indicator is scoped, thresholded or labelled
    twice, and ratios share their denominators (`ifHighSpeed * 1e6`), so within one cycle
    most of a rule can be a sub-expression another rule has already computed; each is computed
    once. A value depends only on (sub-expression, series, now), so it stays right for as long
    as the view does not change and `now` is the same: `rules.evaluate` makes one per cycle
    (collectors add to the store between cycles, never during one) and drops it with the
    cycle, so nothing is carried from one cycle into the next. `evaluate` refuses one made for
    another view or instant.

    Keyed by the node itself: nodes are frozen dataclasses that compare by content (not by
    source position), so equal sub-expressions of different rules meet under one key. Values
    are shared, so neither `agent.evaluate` nor this module ever mutates a value once computed.
    """

    __slots__ = ("lines", "now", "results", "view")

    def __init__(self, view: SeriesView, now: float) -> None:
        self.view, self.now = view, now
        self.results: dict[Expr, tuple[Expr, Value]] = {}
        """node -> (the node first evaluated under that key, its value)."""
        self.lines: dict[tuple[Series, float], tuple[float, float] | None] = {}
        """(series, window start) -> its least-squares (slope, intercept), None if it has none.

        `predict_linear` and `time_to_threshold` of the same series over the same window (an
        early warning and its deadline) fit the same line, whatever their parameter: one fit.
        Keyed by the series object, which lives as long as the store keeps it: at least the
        cycle."""


def same_numbers(first: object, other: object) -> bool:
    """Given `first == other`: do their numbers also agree on the sign of zero?

    `==`, and so a dict lookup, equates 0.0 and -0.0, but `x * -0` (the parser folds `-0` into
    a Number) and `predict_linear(x[1h], -0)` can yield -0.0 where their unsigned twins yield
    0.0, and that sign reaches alert values: such twins must not share a result.
    """
    if isinstance(first, float | int):
        return math.copysign(1.0, first) == math.copysign(1.0, cast(float, other))
    if isinstance(first, tuple):
        return all(map(same_numbers, first, cast(tuple[object, ...], other)))
    if is_dataclass(first):
        return all(
            same_numbers(getattr(first, f.name), getattr(other, f.name))
            for f in fields(first)
            if f.compare
        )
    return True


# ---------------------------------------------------------------------------------------------
# Least-squares lines through a window's points (predictions and their confidence)


@dataclass(frozen=True, slots=True)
class Fit:
    """A least-squares line through one series' window, with how well it fits."""

    slope: float
    """Units per second."""
    intercept: float
    """The line's value at the evaluation time."""
    r2: float
    """Coefficient of determination, 0 (no linear trend) to 1 (points on the line)."""
    points: int

    def time_to(self, threshold: float) -> float | None:
        """Seconds until the line reaches `threshold`; None if flat or heading away from it."""
        return time_to(self.slope, self.intercept, threshold)


def time_to(slope: float, intercept: float, threshold: float) -> float | None:
    """Seconds until a line (intercept at `now`) reaches `threshold`; None if it never will."""
    if slope == 0:
        return None
    seconds = (threshold - intercept) / slope
    return seconds if seconds >= 0 else None


Line = tuple[float, float, float, float, list[float]]
"""slope, intercept, sxx, sxy, and the values' deviations from their mean."""
Xs = tuple[float, list[float], float]
"""The time axis' part of a fit: mean offset from `now`, deviations from it, sxx."""


def time_axis(timestamps: Sequence[float], now: float) -> Xs:
    """The part of a fit that depends only on the timestamps (shared by series polled together)."""
    xs = [t - now for t in timestamps]
    x_mean = math.fsum(xs) / len(xs)
    dxs = [x - x_mean for x in xs]
    return x_mean, dxs, math.fsum(map(operator.mul, dxs, dxs))


def line_of(
    timestamps: Sequence[float], values: Sequence[float], now: float, x_part: Xs | None = None
) -> Line | None:
    """The least-squares line without `Fit`'s r2: predictions need only slope and intercept."""
    n = len(values)
    if n < 2:
        return None
    # centred sums: raw sums of squares cancel catastrophically for large values (bytes)
    x_mean, dxs, sxx = x_part or time_axis(timestamps, now)
    if sxx <= 0:
        return None
    y_mean = math.fsum(values) / n
    dys = [y - y_mean for y in values]
    sxy = math.fsum(map(operator.mul, dxs, dys))
    slope = sxy / sxx
    return slope, y_mean - slope * x_mean, sxx, sxy, dys


def linear_fit(timestamps: Sequence[float], values: Sequence[float], now: float) -> Fit | None:
    """Fit a line through the points (x = seconds relative to `now`); None if under 2 times."""
    if len(timestamps) != len(values):
        raise ValueError("linear_fit needs one timestamp per value")
    line = line_of(timestamps, values, now)
    if line is None:
        return None
    slope, intercept, sxx, sxy, dys = line
    syy = math.fsum(map(operator.mul, dys, dys))
    r2 = 1.0 if syy <= 0 else min(1.0, sxy * sxy / (sxx * syy))
    return Fit(slope, intercept, r2, len(values))


# ---------------------------------------------------------------------------------------------
# Aggregation across series

_AGGREGATE: dict[str, Callable[[list[float]], float]] = {
    "sum": math.fsum,
    "avg": lambda vs: math.fsum(vs) / len(vs),
    "min": min,
    "max": max,
    "count": lambda vs: float(len(vs)),
}


def aggregate(node: Aggregation, vector: Columns) -> Columns:
    """`node.op` over the elements of `vector` grouped `by`/`without` `node.grouping`."""
    groups: dict[Labels, list[float]] = {}
    keys = map(_memo(node.grouping, keep=not node.without).__getitem__, vector.keys)
    for key, value in zip(keys, vector.values, strict=True):
        group = groups.get(key)
        if group is None:
            groups[key] = [value]
        else:
            group.append(value)
    reduce = _AGGREGATE[node.op]
    return Columns(list(groups), list(map(reduce, groups.values())))


class _LabelMemo(dict[Labels, Labels]):
    """Series labels -> the pairs whose names are (keep) or are not in `names`.

    `by`/`without` group keys and `on`/`ignoring` signatures are the same few series' labels
    cut the same way every cycle: computing each once makes a lookup one hash. Cleared when it
    outgrows `_MEMO_LIMIT`, so series that come and go cannot grow it without bound.
    """

    __slots__ = ("keep", "names")

    def __init__(self, names: frozenset[str], keep: bool) -> None:
        super().__init__()
        self.names, self.keep = names, keep

    def __missing__(self, labels: Labels) -> Labels:
        if len(self) >= _MEMO_LIMIT:
            self.clear()
        names, keep = self.names, self.keep
        kept = self[labels] = tuple(p for p in labels if (p[0] in names) == keep)
        return kept


_MEMO_LIMIT = 1 << 20
_MEMOS: dict[tuple[frozenset[str], bool], _LabelMemo] = {}
"""One memo per distinct label list in the rules (a handful), kept for the process."""


def _memo(names: Iterable[str], keep: bool) -> _LabelMemo:
    key = (frozenset(names), keep)
    memo = _MEMOS.get(key)
    if memo is None:
        memo = _MEMOS[key] = _LabelMemo(*key)
    return memo


# ---------------------------------------------------------------------------------------------
# Arithmetic, comparisons and set operators: whole vectors at a time through map/zip/compress,
# so the per-element work stays in C.

_ARITHMETIC: dict[str, Callable[[float, float], float]] = {
    "+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
}  # fmt: skip
_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "==": operator.eq, "!=": operator.ne, ">": operator.gt, "<": operator.lt,
    ">=": operator.ge, "<=": operator.le,
}  # fmt: skip


def binary(op: str, lhs: Value, rhs: Value, matching: VectorMatching | None) -> Value:
    """`lhs op rhs` for an arithmetic, comparison or set operator, PromQL's way."""
    if op in SET_OPERATORS:
        return _set_operation(op, as_vector(lhs), as_vector(rhs), matching)
    compare = _COMPARE.get(op)
    if compare is not None:
        return _filter(compare, lhs, rhs, matching)
    fn, divide = _ARITHMETIC[op], op == "/"
    # division by zero drops the element: never an exception or a NaN that could alert
    if isinstance(rhs, float):
        if divide and rhs == 0:
            return Columns([], [])
        if isinstance(lhs, float):
            return fn(lhs, rhs)
        return Columns(lhs.keys, list(map(fn, lhs.values, itertools.repeat(rhs))))
    if isinstance(lhs, float):
        right = _nonzero(rhs) if divide else rhs
        return Columns(right.keys, list(map(fn, itertools.repeat(lhs), right.values)))
    left, right = _sides(lhs, rhs, matching)
    right = _nonzero(right) if divide else right  # after matching: zeros still make ambiguity
    if _aligned(left, right):
        return Columns(left.keys, list(map(fn, left.values, right.values)))
    keys, values, others = _matched(left, right)
    return Columns(keys, list(map(fn, values, others)))


def _aligned(left: Columns, right: Columns) -> bool:
    """Both sides hold the same labels in the same order: pair them by position, no lookups.

    The usual case (`avail / size`, `rate(errs) / rate(packets)`, `x * 8 / x`): the store
    shares one label tuple between families and scalar operations share their operand's keys,
    so this comparison is by identity and cheaper than one hash each.
    """
    return left.keys is right.keys or left.keys == right.keys


def _matched(left: Columns, right: Columns) -> tuple[list[Labels], list[float], list[float]]:
    """The keys of `left` that `right` has too, in `left`'s order, with both sides' values."""
    lookup = right.as_dict()
    pairs = [(k, v) for k, v in zip(left.keys, left.values, strict=True) if k in lookup]
    keys = [k for k, _ in pairs]
    return keys, [v for _, v in pairs], list(map(lookup.__getitem__, keys))


def _nonzero(vector: Columns) -> Columns:
    if 0.0 not in vector.values:
        return vector
    return _kept(vector, map(operator.ne, vector.values, itertools.repeat(0.0)))


def _kept(vector: Columns, kept: Iterable[bool]) -> Columns:
    flags = list(kept)
    return Columns(
        list(itertools.compress(vector.keys, flags)), list(itertools.compress(vector.values, flags))
    )


def _filter(
    compare: Callable[[float, float], bool], lhs: Value, rhs: Value, matching: VectorMatching | None
) -> Columns:
    """PromQL's comparison without `bool`: keep the elements for which it holds."""
    if isinstance(lhs, float):  # `5 < x` keeps x's values, as PromQL does
        vector = as_vector(rhs)
        return _kept(vector, map(compare, itertools.repeat(lhs), vector.values))
    if isinstance(rhs, float):
        return _kept(lhs, map(compare, lhs.values, itertools.repeat(rhs)))
    left, right = _sides(lhs, rhs, matching)
    if _aligned(left, right):
        return _kept(left, map(compare, left.values, right.values))
    keys, values, others = _matched(left, right)
    return _kept(Columns(keys, values), map(compare, values, others))


def _set_operation(op: str, lhs: Columns, rhs: Columns, matching: VectorMatching | None) -> Columns:
    """`and`, `or`, `unless`: elements chosen by match signature, keeping their own labels."""
    sign = _signer(matching)
    right = set(map(sign, rhs.keys))
    if op == "or":  # a right element whose signature the left has never has the left's labels
        left = set(map(sign, lhs.keys))
        extra = _kept(rhs, (sign(k) not in left for k in rhs.keys))
        return Columns(lhs.keys + extra.keys, lhs.values + extra.values)
    keep = op == "and"
    return _kept(lhs, ((sign(k) in right) is keep for k in lhs.keys))


def _signer(matching: VectorMatching | None) -> Callable[[Labels], Labels]:
    """The labels two elements must share to match: all of them, or those on()/ignoring() pick."""
    if matching is None:
        return lambda labels: labels
    return _memo(matching.labels, keep=matching.on).__getitem__


def _sides(lhs: Columns, rhs: Columns, matching: VectorMatching | None) -> tuple[Columns, Columns]:
    """Both sides keyed by their match signatures, cut once when they hold the same labels.

    `rate(in) * 8 / on(instance, ifIndex) (speed * 1e6)`: both sides are the same series'
    labels in the same order, so the right side's signatures are the left's (a lookup each
    saved) and the two stay paired by position.
    """
    if matching is None or not _aligned(lhs, rhs):
        return _by_signature(lhs, matching), _by_signature(rhs, matching)
    left = _by_signature(lhs, matching)
    if len(left) < len(lhs):  # rare: signatures dropped as ambiguous; drop them on the right too
        return left, _by_signature(rhs, matching)
    return left, Columns(left.keys, rhs.values)


def _by_signature(vector: Columns, matching: VectorMatching | None) -> Columns:
    if matching is None:
        return vector
    signatures = list(map(_signer(matching), vector.keys))
    if len(set(signatures)) == len(signatures):
        return Columns(signatures, vector.values)
    # many-to-one needs group_left, which we do not have: drop every signature seen twice
    counts = Counter(signatures)
    return _kept(Columns(signatures, vector.values), (counts[s] == 1 for s in signatures))
