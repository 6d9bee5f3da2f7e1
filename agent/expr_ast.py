"""The tree `agent.expr.parse` builds: frozen dataclasses, one per kind of node.

Kept apart from the parser so the evaluator, the rule engine and the Prometheus exporter can walk
a tree without pulling in the tokenizer.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

from agent.series import Matcher


class Kind(enum.Enum):
    """What an expression evaluates to."""

    SCALAR = "scalar"
    VECTOR = "instant vector"
    RANGE = "range vector"


@dataclass(frozen=True, slots=True)
class Number:
    value: float
    pos: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class Selector:
    """`name{matchers}`: the latest value of each matching series."""

    name: str
    matchers: tuple[Matcher, ...] = ()
    pos: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class RangeSelector:
    """`selector[range]`: the points of each matching series in the last `range` seconds."""

    selector: Selector
    range: float
    pos: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class Call:
    """A window function of a range selector: `rate(x[5m])`, `predict_linear(x[1h], 4h)`."""

    func: str
    arg: RangeSelector
    params: tuple[float, ...] = ()
    pos: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class Aggregation:
    """`op by|without (labels) (vector)` across series."""

    op: str
    expr: Expr
    grouping: tuple[str, ...] = ()
    without: bool = False
    pos: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class Unary:
    expr: Expr
    pos: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class VectorMatching:
    """`on(labels)` (match only on these) or `ignoring(labels)` (match on all but these)."""

    on: bool
    labels: tuple[str, ...]


ArithmeticOp = Literal["+", "-", "*", "/"]
CompareOp = Literal["==", "!=", ">", "<", ">=", "<="]
SetOp = Literal["and", "or", "unless"]
BinaryOp = ArithmeticOp | CompareOp | SetOp

COMPARISONS: frozenset[str] = frozenset({"==", "!=", ">", "<", ">=", "<="})
SET_OPERATORS: frozenset[str] = frozenset({"and", "or", "unless"})


@dataclass(frozen=True, slots=True)
class Binary:
    op: BinaryOp
    lhs: Expr
    rhs: Expr
    matching: VectorMatching | None = None
    pos: int = field(default=0, compare=False)
    kind: Kind = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        # stored so typing a long chain like a+b+c+... stays linear, not quadratic
        scalar = kind(self.lhs) is Kind.SCALAR and kind(self.rhs) is Kind.SCALAR
        object.__setattr__(self, "kind", Kind.SCALAR if scalar else Kind.VECTOR)


Expr = Number | Selector | RangeSelector | Call | Aggregation | Unary | Binary

AGGREGATIONS = frozenset({"sum", "avg", "min", "max", "count"})
WINDOW_FUNCTIONS: dict[str, int] = {
    # name -> number of scalar parameters after the range selector
    "last": 0, "avg": 0, "min": 0, "max": 0, "sum": 0, "count": 0, "rate": 0, "delta": 0,
    "increase": 0, "changes": 0, "absent": 0, "predict_linear": 1, "time_to_threshold": 1,
}  # fmt: skip
PREDICTIONS = frozenset({"predict_linear", "time_to_threshold"})
"""Window functions that fit a least-squares line."""


def kind(node: Expr) -> Kind:
    """The type of value `node` evaluates to."""
    if isinstance(node, Number):
        return Kind.SCALAR
    if isinstance(node, RangeSelector):
        return Kind.RANGE
    if isinstance(node, Unary):
        return kind(node.expr)
    if isinstance(node, Binary):
        return node.kind
    return Kind.VECTOR


def children(node: Expr) -> tuple[Expr, ...]:
    """The direct sub-expressions of `node`."""
    if isinstance(node, Binary):
        return (node.lhs, node.rhs)
    if isinstance(node, Unary | Aggregation):
        return (node.expr,)
    if isinstance(node, Call):
        return (node.arg,)
    return ()


def walk(node: Expr) -> Iterator[Expr]:
    """`node` and every node under it, depth first (a range's selector included)."""
    yield node
    if isinstance(node, RangeSelector):  # not one of `children`: a range's selector is no value
        yield node.selector
    for child in children(node):
        yield from walk(child)


def metric_names(node: Expr) -> set[str]:
    """Every metric name a selector in `node` reads."""
    return {n.name for n in walk(node) if isinstance(n, Selector)}
