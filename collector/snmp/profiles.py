"""Profiles as data: which OIDs to fetch from a device and how they become samples.

A profile is a YAML file (shipped ones in `collector/snmp/profiles/`, users' in `profiles_dir`)
in the spirit of snmp_exporter's generated `snmp.yml`: metrics named after their MIB objects,
table indexes as labels, and lookups that add the text of another column of the same row
(`ifName`, `ifDescr`, `ifAlias`) so dashboards built for snmp_exporter keep working. Only numeric
OIDs: nothing is resolved from MIB files at run time.
"""

from __future__ import annotations

import bisect
import functools
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from agent.model import Labels, MetricMeta, MetricType, Sample, make_labels
from collector.snmp.model import Oid, Tag, VarBind
from collector.snmp.page import PageWriter
from exporters.text import int_text, label_text, sample_line, value_text

if TYPE_CHECKING:
    from collector.snmp.replay import Recording

SHIPPED = Path(__file__).parent / "profiles"
_Rows = list[tuple[tuple[int, ...], VarBind]]
_OID = Tag.OBJECT_IDENTIFIER
_NO_VALUE = Tag.NO_SUCH_OBJECT  # this tag and above: the agent has no value (v2 exceptions)
MetricKind = Literal["gauge", "counter", "DisplayString", "PhysAddress48", "EnumAsInfo"]


_STRICT = {"extra": "forbid"}
"""pydantic's config for these dataclasses when a file is loaded: unknown keys are errors."""


def _oid(value: object) -> str:
    return str(Oid.parse(str(value)))  # SnmpValueError is a ValueError: pydantic reports it


@dataclass(frozen=True, slots=True)
class Lookup:
    """A column of the same table whose value becomes a label of every metric of the row."""

    labelname: str
    oid: str
    type: Literal["DisplayString", "gauge", "enum"] = "DisplayString"
    enum_values: dict[int, str] = field(default_factory=dict)
    __pydantic_config__ = _STRICT

    def __post_init__(self) -> None:
        object.__setattr__(self, "oid", _oid(self.oid))


@dataclass(frozen=True, slots=True)
class SensorScale:
    """ENTITY-SENSOR style scaling: value * 1000^(scale-9) / 10^precision, from two columns."""

    scale_oid: str
    precision_oid: str
    __pydantic_config__ = _STRICT


@dataclass(frozen=True, slots=True)
class MetricDef:
    """One MIB object: a scalar (no indexes, fetched at `.0`) or a table column."""

    name: str
    oid: str
    type: MetricKind = "gauge"
    help: str = ""
    indexes: list[str] = field(default_factory=list)
    """Label names of the row index, one integer sub-identifier each (ifIndex, hrStorageIndex)."""
    lookups: list[str] = field(default_factory=list)
    """Names of the profile's lookups to add as labels."""
    scale: float = 1.0
    sensor_scale: SensorScale | None = None
    enum_values: dict[int, str] = field(default_factory=dict)
    __pydantic_config__ = _STRICT

    def __post_init__(self) -> None:
        object.__setattr__(self, "oid", _oid(self.oid))


@dataclass(frozen=True, slots=True)
class Profile:
    """A named set of metrics and the lookups they share.

    Plain dataclasses, not pydantic models: the poller process imports this module to render
    its pages, and pydantic (~11 MiB) is only loaded to validate a profile file.
    """

    name: str
    metrics: list[MetricDef]
    help: str = ""
    walk: list[str] = field(default_factory=list)
    """Subtrees walked whole (one walk per table beats one per column); the rest is derived."""
    lookups: dict[str, Lookup] = field(default_factory=dict)
    __pydantic_config__ = _STRICT

    def __post_init__(self) -> None:
        for metric in self.metrics:
            missing = [name for name in metric.lookups if name not in self.lookups]
            if missing:
                raise ValueError(f"metric {metric.name}: undefined lookups {missing}")
            if metric.lookups and not metric.indexes:
                raise ValueError(f"metric {metric.name}: lookups need a table metric (indexes)")

    def gets(self) -> list[Oid]:
        """Scalar instances to GET (`oid.0`) that no walk covers."""
        roots = self.walk_roots()
        scalars = (Oid.parse(m.oid + ".0") for m in self.metrics if not m.indexes)
        return [o for o in scalars if not any(o.startswith(r) for r in roots)]

    def walk_roots(self) -> list[Oid]:
        """Subtrees to walk: the declared ones plus every column they do not cover."""
        roots = [Oid.parse(w) for w in self.walk]
        for column in self._columns():
            if not any(column.startswith(r) for r in roots):
                roots.append(column)
        return sorted(set(roots))

    def _columns(self) -> Iterator[Oid]:
        for metric in self.metrics:
            if metric.indexes:
                yield Oid.parse(metric.oid)
                yield from (Oid.parse(self.lookups[n].oid) for n in metric.lookups)
                if metric.sensor_scale:
                    yield Oid.parse(metric.sensor_scale.scale_oid)
                    yield Oid.parse(metric.sensor_scale.precision_oid)

    def describe(self) -> Iterator[MetricMeta]:
        """Families this profile emits; counters stay untyped so no `_total` is appended."""
        for m in self.metrics:
            name = f"{m.name}_info" if m.type == "EnumAsInfo" else m.name
            kind = MetricType.GAUGE if m.type == "gauge" else MetricType.UNTYPED
            yield MetricMeta(name, kind, m.help or f"{m.type} {m.oid}")


def load_profile(path: Path) -> Profile:
    """Read and validate one profile file; ValueError names the file on any problem."""
    import yaml  # here: the poller process renders profiles but never reads their files
    from pydantic import TypeAdapter, ValidationError

    try:
        data = yaml.safe_load(path.read_text())
        return TypeAdapter(Profile).validate_python(data)
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        raise ValueError(f"profile {path}: {exc}") from None


@cache
def _shipped() -> dict[str, Profile]:
    return {p.name: p for p in map(load_profile, sorted(SHIPPED.glob("*.yaml")))}


def available_profiles(extra_dir: Path | None = None) -> dict[str, Profile]:
    """Shipped profiles, replaced or extended by the `*.yaml` files of `extra_dir`."""
    profiles = dict(_shipped())
    if extra_dir is not None:
        if not extra_dir.is_dir():
            raise ValueError(f"profiles_dir {extra_dir} is not a directory")
        for path in sorted(extra_dir.glob("*.y*ml")):
            profile = load_profile(path)
            profiles[profile.name] = profile
    return profiles


class Table:
    """A target's varbinds by OID, with the rows of each table column at hand."""

    def __init__(self, varbinds: Iterable[VarBind]) -> None:
        # the tag test inline: a property call per varbind was a tenth of building a table
        self.by_oid = {vb[0]: vb for vb in varbinds if vb[1] < _NO_VALUE}
        self._keys: list[Oid] | None = None
        self._columns: dict[int, dict[tuple[tuple[int, ...], int], _Rows]] = {}
        self.recording: Recording | None = None
        """Set while a render is recorded: what `get` finds shaped the render."""

    def get(self, oid: Oid) -> VarBind | None:
        """The varbind of `oid`, for a value that shapes labels or a series but its own."""
        vb = self.by_oid.get(oid)
        if vb is not None and self.recording is not None:
            self.recording.read(vb)
        return vb

    def rows(self, column: Oid, width: int) -> _Rows:
        """(index, varbind) of each row of a table column, in OID order; indexes `width` long.

        The same as walking `under(column)`, but every varbind is bucketed by its first
        `len(column)` sub-identifiers and its index length once per table, so each of the ~40
        columns of a switch costs a dict lookup, not a bisect and a prefix test per row.
        No sort: a column's rows all come from one walk (nested roots are merged), a walk only
        moves forward (`take_page` rejects anything else) and the dict keeps that order.
        """
        depth = len(column)
        buckets = self._columns.get(depth)
        if buckets is None:
            buckets = self._columns[depth] = self._bucket(depth)
        return buckets.get((column, width), [])

    def _bucket(self, depth: int) -> dict[tuple[tuple[int, ...], int], _Rows]:
        """Every varbind's (index, varbind) under its first `depth` sub-identifiers and size.

        A walk returns a column's rows one after another, so a run of varbinds shares its
        bucket: it is looked up once a run, not hashed again for each of ~2,000 varbinds.
        """
        buckets: dict[tuple[tuple[int, ...], int], _Rows] = {}
        head: tuple[int, ...] = ()
        size, found = 0, list[tuple[tuple[int, ...], VarBind]]()
        for key, vb in self.by_oid.items():
            if len(key) - depth != size or key[:depth] != head:
                size, head = len(key) - depth, key[:depth]
                if size <= 0:
                    continue
                found = buckets.setdefault((head, size), [])
            elif size <= 0:
                continue
            found.append((key[depth:], vb))
        return buckets

    def under(self, prefix: Oid) -> Iterator[VarBind]:
        """Varbinds strictly below `prefix`, in OID order."""
        if self._keys is None:
            self._keys = sorted(self.by_oid)
        start = bisect.bisect_right(self._keys, prefix)
        for key in self._keys[start:]:
            if not key.startswith(prefix):
                return
            yield self.by_oid[key]


_RowKey = tuple[tuple[str, ...], tuple[str, ...]]
"""A row's labels depend on the lookups and index names a metric uses, and on the index."""
_Row = tuple[dict[str, str], Labels, str | None]
"""A row's labels as a dict and as `Labels`, and their exposition text (None: not writable)."""


def render(
    profile: Profile,
    table: Table,
    now: float,
    base: Mapping[str, str],
    lines: dict[str, list[str]] | PageWriter | None = None,
    keep: Collection[str] = (),
    kept: list[Sample] | None = None,
    record: Recording | None = None,
) -> list[Sample]:
    """Turn fetched varbinds into samples named and labelled as snmp_exporter does.

    With `lines`, a sample is written there instead, as its exposition line under its family
    name (`exporters.prometheus.sample_line`), and only a sample the direct renderer cannot
    write is returned; a written one named in `keep` is also added to `kept` as a `Sample`.
    A switch's 2,000 series then cost a formatted line each, not a `Sample` object that the
    exporter formats again. A `PageWriter` as `lines` takes each line as its label text and
    value instead, for a page that is written only when it is scraped; with it, `record`
    notes where each value came from, for `replay.Replay` to do this again from new values.
    """
    if lines is not None and keep and kept is None:
        raise ValueError("render: samples to keep need a `kept` list")  # else written twice
    kept = [] if kept is None else kept
    if record is not None and not isinstance(lines, PageWriter):
        raise ValueError("render: only a PageWriter's render is recorded")
    table.recording = record
    try:
        return _render(profile, table, now, base, lines, keep, kept, record)
    finally:
        table.recording = None


def _render(
    profile: Profile,
    table: Table,
    now: float,
    base: Mapping[str, str],
    lines: dict[str, list[str]] | PageWriter | None,
    keep: Collection[str],
    kept: list[Sample],
    record: Recording | None,
) -> list[Sample]:
    out: list[Sample] = []
    append = out.append
    base_labels = dict(base)
    # A row's labels (target, ifIndex, ifName, ifDescr, ifAlias) are the same for each of its
    # ~40 metrics: look them up, sort them and format them once per row, and hand every numeric
    # metric of the row the same tuple (the exporter then formats that tuple once, too).
    rows_seen: dict[_RowKey, dict[tuple[int, ...], _Row]] = {}
    for metric in profile.metrics:
        column = _parsed(metric.oid)
        if not metric.indexes:
            vb = table.by_oid.get(Oid((*column, 0)))
            rows: Iterable[tuple[tuple[int, ...], VarBind]] = [((), vb)] if vb else []
        else:
            rows = table.rows(column, len(metric.indexes))
        names, indexes = tuple(metric.lookups), tuple(metric.indexes)
        seen = rows_seen.setdefault((names, indexes), {})
        # The common case, an integer column with no sensor scaling, is written inline: two
        # thirds of a switch's samples, where a call per sample was a fifth of the render.
        plain = metric.type in ("gauge", "counter") and metric.sensor_scale is None
        name, scale = metric.name, metric.scale
        unscaled = scale == 1.0
        sink: list[str] | None = None
        pairs = None
        if isinstance(lines, PageWriter):
            pairs = lines.column(name)
        elif lines is not None:
            sink = lines.setdefault(name, [])
        keeping = name in keep
        for index, vb in rows:
            row = seen.get(index)
            if row is None:
                row = seen[index] = _row(profile, table, base_labels, names, indexes, index)
            raw = vb.value
            if plain and type(raw) is int and vb.tag is not Tag.OBJECT_IDENTIFIER:
                value = float(raw) * scale
                if row[2] is not None and (sink is not None or pairs is not None):
                    if pairs is not None:
                        pairs[0].append(row[2])
                        pairs[1].append(raw if unscaled else value)
                        if record is not None:
                            record.number(name, vb, scale, raw=unscaled)
                    else:
                        assert sink is not None
                        number_text = int_text(raw) if unscaled else value_text(value)
                        sink.append(f"{name}{row[2]}{number_text}\n")
                    if keeping:
                        kept.append(Sample(name, row[1], value, now))
                        if record is not None:
                            record.keep(kept[-1], vb, scale, 1.0, row[2])
                    continue
                append(Sample(name, row[1], value, now))
                if record is not None:
                    record.replayable = False  # a sample the page cannot hold
                continue
            # a sensor's integer, scaled by its row's scale and precision, is a number to replay
            sensor = (
                metric.sensor_scale is not None
                and metric.type in ("gauge", "counter")
                and type(raw) is int
                and vb.tag != _OID
            )
            if record is not None and not sensor:
                record.read(vb)
            sample = _sample(metric, vb, index, table, row, now)
            if sample is None:
                continue
            if lines is None or not write_line(sample, lines):
                append(sample)
                if record is not None:
                    record.replayable = False
                continue
            if record is not None:
                factor = _sensor_factor(metric.sensor_scale, table, index) if sensor else 1.0
                if sensor:
                    record.number(sample.name, vb, scale, factor)
                else:
                    record.const(sample.name, sample.value)
            if sample.name in keep:
                kept.append(sample)
                if record is not None:
                    record.keep(sample, vb if sensor else None, scale, factor)
    return out


def _row(
    profile: Profile,
    table: Table,
    base: dict[str, str],
    names: tuple[str, ...],
    indexes: tuple[str, ...],
    index: tuple[int, ...],
) -> _Row:
    labels = base | dict(zip(indexes, map(str, index), strict=True))
    labels |= _lookups(profile, names, table, index)
    normal = make_labels(labels)
    try:
        text: str | None = label_text(normal)
    except ValueError:  # a label the direct renderer leaves to prometheus_client
        text = None
    return labels, normal, text


def write_line(
    sample: Sample,
    lines: dict[str, list[str]] | PageWriter,
    texts: dict[int, str] | None = None,
) -> bool:
    """Append `sample` to `lines` as its exposition line; False if it must stay a Sample.

    `texts` caches label texts by the identity of the label tuple, for samples that share one
    (a row's indicators) while the caller holds them: hashing the tuple again cost more.
    """
    text = None if texts is None else texts.get(id(sample.labels))
    try:
        if text is None:
            line = sample_line(sample.name, sample.labels, sample.value)
            text = line[len(sample.name) : line.rindex(" ") + 1]
            if texts is not None:
                texts[id(sample.labels)] = text
        elif not isinstance(lines, PageWriter):
            line = f"{sample.name}{text}{value_text(sample.value)}\n"
    except ValueError:
        return False
    if isinstance(lines, PageWriter):
        labels, values = lines.column(sample.name)
        labels.append(text)
        values.append(sample.value)
    else:
        lines.setdefault(sample.name, []).append(line)
    return True


@functools.lru_cache(maxsize=4096)
def _parsed(text: str) -> Oid:
    """Profiles name OIDs as text; parse each once, not once per row and metric."""
    return Oid.parse(text)


def _lookups(
    profile: Profile, names: tuple[str, ...], table: Table, index: tuple[int, ...]
) -> dict[str, str]:
    out: dict[str, str] = {}
    for name in names:
        out |= _lookup(profile.lookups[name], table, index)
    return out


def _lookup(lookup: Lookup, table: Table, index: tuple[int, ...]) -> dict[str, str]:
    vb = table.get(Oid((*_parsed(lookup.oid), *index)))
    if vb is None:
        return {}
    if lookup.type == "DisplayString":
        return {lookup.labelname: text(vb)}
    if lookup.type == "enum" and isinstance(vb.value, int):
        return {lookup.labelname: lookup.enum_values.get(vb.value, str(vb.value))}
    return {lookup.labelname: str(vb.value)}


def _sample(
    metric: MetricDef,
    vb: VarBind,
    index: tuple[int, ...],
    table: Table,
    row: _Row,
    now: float,
) -> Sample | None:
    if metric.type in ("gauge", "counter"):
        raw = vb.value
        # Integers are nearly every value of a poll: skip number()'s general checks for them.
        if type(raw) is int and vb.tag is not Tag.OBJECT_IDENTIFIER:
            value = float(raw)
        else:
            found = number(vb)
            if found is None:
                return None
            value = found
        value *= metric.scale
        if metric.sensor_scale is not None:
            value *= _sensor_factor(metric.sensor_scale, table, index)
        return Sample(metric.name, row[1], value, now)
    labels = dict(row[0])  # a text or enum column adds its own label to the row's
    if metric.type == "EnumAsInfo":
        state = metric.enum_values.get(vb.value, str(vb.value)) if isinstance(vb.value, int) else ""
        labels[metric.name] = state
        return Sample(f"{metric.name}_info", make_labels(labels), 1.0, now)
    labels[metric.name] = mac(vb) if metric.type == "PhysAddress48" else text(vb)
    return Sample(metric.name, make_labels(labels), 1.0, now)


def _sensor_factor(scale: SensorScale | None, table: Table, index: tuple[int, ...]) -> float:
    if scale is None:
        return 1.0
    exp = table.get(Oid((*_parsed(scale.scale_oid), *index)))
    prec = table.get(Oid((*_parsed(scale.precision_oid), *index)))
    exponent = exp.value if exp is not None and isinstance(exp.value, int) else 9  # 9 = units
    precision = prec.value if prec is not None and isinstance(prec.value, int) else 0
    return float(1000.0 ** (exponent - 9) / 10.0**precision)


def number(vb: VarBind) -> float | None:
    """A numeric value; numeric text (UCD's laLoad "0.15") counts too."""
    if isinstance(vb.value, int) and vb.tag is not Tag.OBJECT_IDENTIFIER:
        return float(vb.value)
    if isinstance(vb.value, bytes):
        try:
            return float(vb.value.decode("ascii").strip())
        except (UnicodeDecodeError, ValueError):
            return None
    return None


def text(vb: VarBind) -> str:
    """A DisplayString label value: UTF-8 text with NULs stripped, OIDs as dotted numbers."""
    if isinstance(vb.value, bytes):
        return vb.value.decode("utf-8", errors="replace").rstrip("\x00")
    return "" if vb.value is None else str(vb.value)


def mac(vb: VarBind) -> str:
    """A PhysAddress48 label value as snmp_exporter prints it (`00:1a:2b:...`)."""
    return ":".join(f"{b:02x}" for b in vb.value) if isinstance(vb.value, bytes) else text(vb)


def all_gets(profiles: Sequence[Profile]) -> list[Oid]:
    """Scalar OIDs of several profiles, deduplicated, in order."""
    return sorted({o for p in profiles for o in p.gets()})


def all_walks(profiles: Sequence[Profile]) -> list[Oid]:
    """Walk roots of several profiles with nested roots merged into their ancestor."""
    roots = sorted({o for p in profiles for o in p.walk_roots()})
    merged: list[Oid] = []
    for root in roots:
        if not merged or not root.startswith(merged[-1]):
            merged.append(root)
    return merged
