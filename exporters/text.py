"""The text exposition format, written directly: names, labels, values and family headers.

The same bytes as prometheus_client 0.2x's `generate_latest` (text format 0.0.4) for what it
covers, without importing prometheus_client: the SNMP poller process writes its pages with it.
Anything it cannot vouch for byte for byte raises `ValueError` (`Unrenderable`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Sequence

from agent.model import Labels, MetricMeta, MetricType, Sample

_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_KNOWN_LABEL_NAMES: set[str] = set()
"""Label names already checked against `_LABEL_NAME`; they come from code and profiles, few."""
_MAX_KNOWN_LABEL_NAMES = 10_000


def usable_label_name(name: str) -> bool:
    """A label name the text format carries and Prometheus keeps (no `__` prefix: reserved)."""
    return _LABEL_NAME.fullmatch(name) is not None and not name.startswith("__")


_INF = math.inf


class Unrenderable(ValueError):
    """A family the direct renderer cannot promise to write as prometheus_client would."""


def go_float(value: float) -> str:
    """A sample value as prometheus_client's `floatToGoString` spells it (Go's style).

    Same branches, reordered so the common case (a finite value) takes one comparison: Python's
    repr, except +Inf/-Inf/NaN and the exponent Go uses from 1e7 on where repr has none yet.
    """
    d = float(value)
    s = repr(d)
    if d > 0:
        dot = s.find(".")
        if dot > 6:
            mantissa = f"{s[0]}.{s[1:dot]}{s[dot + 1 :]}".rstrip("0.")
            return f"{mantissa}e+{dot - 1:02d}"
        return "+Inf" if d == _INF else s
    if d != d:  # NaN is the only value unequal to itself
        return "NaN"
    return "-Inf" if d == -_INF else s


def _escape_value(value: str) -> str:
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
    return value


def label_text(labels: Labels) -> str:
    """`{a="x",b="y"} ` (or one space without labels), as prometheus_client writes it.

    prometheus_client writes labels sorted by name, one per name, names checked against the
    legacy character set (others get escaped): our `Labels` are already sorted, so a set whose
    names are strictly increasing and legacy-valid needs nothing but value escaping; any other
    raises `Unrenderable` and its family goes to prometheus_client.
    """
    if not labels:
        return " "
    parts = []
    previous = ""
    for name, value in labels:
        if name <= previous or type(value) is not str:
            raise Unrenderable(name)
        if name not in _KNOWN_LABEL_NAMES:
            if _LABEL_NAME.fullmatch(name) is None:
                raise Unrenderable(name)
            if len(_KNOWN_LABEL_NAMES) < _MAX_KNOWN_LABEL_NAMES:
                _KNOWN_LABEL_NAMES.add(name)
        previous = name
        parts.append(f'{name}="{_escape_value(value)}"')
    return "{" + ",".join(parts) + "} "


_EXACT = 2**53  # every integer below this is exactly one float64


def int_text(n: int) -> str:
    """`go_float(float(n))` for an integer, without the float: str(int) is half the cost.

    Below 2^53 the float is exact, so its shortest spelling is the integer's digits: repr's
    `1234.0` under a million, Go's exponent form (`1.234567e+06`) from a million on.
    """
    if -1_000_000 < n < 1_000_000:
        return f"{n}.0"
    if 1_000_000 <= n < _EXACT:
        digits = str(n)
        mantissa = digits.rstrip("0")
        exponent = len(digits) - 1
        if len(mantissa) == 1:
            return f"{mantissa}e+{exponent:02d}"
        return f"{mantissa[0]}.{mantissa[1:]}e+{exponent:02d}"
    return go_float(float(n))


def value_text(value: float) -> str:
    """A sample value as the exposition writes it (`go_float`, with its common case inline)."""
    # A float below 1e6 (and not -Inf or NaN) is spelled as repr spells it.
    if type(value) is float and -_INF < value < 1e6:
        return repr(value)
    return go_float(value)


def sample_line(name: str, labels: Labels, value: float) -> str:
    """One sample's exposition line, as `render_family` writes it for a gauge or untyped family.

    For collectors that pre-render their families (`Snapshot.texts`); raises `ValueError` for
    a name or labels the direct renderer cannot vouch for, so the caller keeps a `Sample`.
    """
    if _METRIC_NAME.fullmatch(name) is None:
        raise Unrenderable(name)
    return f"{name}{label_text(labels)}{value_text(value)}\n"


def family_header(name: str, meta: MetricMeta | None) -> tuple[str, str]:
    """A family's sample name and its HELP and TYPE lines, as `generate_latest` writes them.

    A counter's samples are named `<name without _total>_total`, a family without meta is
    untyped with empty help; raises `ValueError` for a name the text format cannot carry.
    """
    kind, help_text = "untyped", ""
    if meta is not None:
        help_text = meta.help.replace("\\", r"\\").replace("\n", r"\n")
        if meta.type is MetricType.COUNTER:
            kind, base = "counter", name.removesuffix("_total")
            if not base:
                raise Unrenderable(name)  # prometheus_client rejects an empty family name
            name = base + "_total"
        elif meta.type is MetricType.GAUGE:
            kind = "gauge"
    if _METRIC_NAME.fullmatch(name) is None:
        raise Unrenderable(name)
    return name, f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n"


def render_family(
    name: str, meta: MetricMeta | None, samples: Sequence[Sample], labels: dict[Labels, str]
) -> bytes:
    """One family's HELP, TYPE and sample lines; `labels` caches label texts across families.

    The type and naming follow `_metric` (a counter is written as `<name without _total>_total`,
    a family without meta as untyped with empty help) so the bytes equal `generate_latest`'s.
    """
    name, head = family_header(name, meta)
    out = [head]
    append, cached = out.append, labels.get
    for s in samples:
        text = cached(s.labels)
        if text is None:
            text = labels[s.labels] = label_text(s.labels)
        append(f"{name}{text}{value_text(s.value)}\n")
    return "".join(out).encode("utf-8")


def merge_pages(pages: Sequence[bytes], chunk: int = 256 * 1024) -> Iterator[bytes]:
    """Pages written apart (one per SNMP poller process) as one, each family under one header.

    The text format allows one HELP/TYPE block per family; pollers of different intervals
    write the same families (ifHCInOctets...). Every family of a page starts at its `# HELP`
    line, and label values never hold a raw newline, so a page splits at `\\n# HELP `. A family
    of several pages keeps the first header and every page's lines, in page order.
    """
    families: dict[bytes, list[bytes]] = {}
    for text in pages:
        for i, block in enumerate(text.split(b"\n# HELP ")):
            if i == 0:
                if not block:
                    continue
                if not block.startswith(b"# HELP "):
                    raise ValueError("a page must start with a # HELP line")
                block = block[7:]
            if not block.endswith(b"\n"):
                block += b"\n"
            name = block[: block.index(b" ")]
            head_end = block.index(b"\n", block.index(b"\n") + 1) + 1  # the HELP and TYPE lines
            entry = families.setdefault(name, [b"# HELP " + block[:head_end]])
            entry.append(block[head_end:])
    out: list[bytes] = []
    size = 0
    for entry in families.values():
        out += entry
        size += sum(map(len, entry))
        if size >= chunk:
            yield b"".join(out)
            out, size = [], 0
    if out:
        yield b"".join(out)
