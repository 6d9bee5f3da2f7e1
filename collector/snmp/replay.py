"""A device's render done again from its new values alone, when its poll looks like the last.

From one poll to the next a switch answers the same OIDs with the same types; only counters and
gauges move, while the texts that become labels (ifName, ifDescr, ifAlias, sysDescr) stay. Then
`profiles.render` would look up the same rows, build the same labels and write the same series
in the same order: ~45% of the poller's CPU a poll, to put ~2,000 new numbers in place. So the
first render of a device is recorded (`Recording`): which varbind position each written number
came from, and which varbinds shaped anything else (labels, text and enum series, sensor
scales). The next poll replays it (`Replay.apply`) if it has the same OIDs and tags and those
shaping varbinds are unchanged; anything else renders in full and is recorded again.

Checks, in order: the varbind count, the varbinds' tags (exact, one byte each), the hash of the
OID tuple, then the hash of the shaping values. Hashes, so that a replay keeps neither ~2,000
OID objects nor the device's label texts alive a second time. A change goes unseen only if
its hash collides, about 2^-64 by chance (`_fixed_hash` keeps integers that CPython hashes
alike apart). A device that made its answers collide on purpose could only mislabel its own
series, which a lying device can do anyway.
"""

from __future__ import annotations

from array import array
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agent.model import Labels, Sample
from collector.snmp.model import VarBind
from collector.snmp.page import DevicePage, packed

if TYPE_CHECKING:
    from typing import TypeAlias

    from collector.snmp.page import Numbers

    _Positions: TypeAlias = range | array[int]

    _KeptRun: TypeAlias = tuple[
        str, _Positions, _Positions, array[float] | None, array[float] | None,
        tuple[float, ...],
    ]  # fmt: skip
    """Kept samples of one name in a row: (name, index of each one's labels in `Replay.rows`,
    source positions, scales and factors (None: all 1.0), and, for samples kept as they are,
    their values instead)."""

_CONST = -1
"""Source position of a written value that no varbind gives as it is (a text series' 1.0)."""


class Recording:
    """What one full render of a device's poll does, noted by `profiles.render` as it goes."""

    def __init__(self, varbinds: Sequence[VarBind]) -> None:
        self._position = {id(vb): n for n, vb in enumerate(varbinds)}
        self.sources: dict[str, list[tuple[int, float, float, bool]]] = {}
        """Family -> (varbind position, scale, factor, the integer as it is) of each value
        written; (_CONST, the value, 1.0, False) for a value written as it is."""
        self.kept: list[tuple[str, Labels, int, float, float]] = []
        """Samples kept for rules and indicators: (name, labels, position, scale, factor)."""
        self.texts: dict[int, str] = {}
        """Label text of each kept label tuple, by its identity: the page's own strings."""
        self.reads: set[int] = set()
        """Positions of varbinds that shaped labels or series: a replay needs them unchanged."""
        self.replayable = True

    def number(
        self, family: str, vb: VarBind, scale: float, factor: float = 1.0, raw: bool = False
    ) -> None:
        """`float(vb's integer) * scale * factor` was written as the next value of `family`;
        with `raw`, the integer itself (scale and factor 1)."""
        self.sources.setdefault(family, []).append((self._position[id(vb)], scale, factor, raw))

    def const(self, family: str, value: float) -> None:
        """`value` was written as the next value of `family` from varbinds noted as read."""
        self.sources.setdefault(family, []).append((_CONST, value, 1.0, False))

    def keep(
        self,
        sample: Sample,
        vb: VarBind | None,
        scale: float,
        factor: float,
        text: str | None = None,
    ) -> None:
        """`sample` was kept: `float(vb's integer) * scale * factor`, or as it is (`vb` None);
        `text` is its labels' text on the page, if known."""
        if text is not None:
            self.texts[id(sample.labels)] = text
        if vb is None:
            self.kept.append((sample.name, sample.labels, _CONST, sample.value, 1.0))
        else:
            position = self._position[id(vb)]
            self.kept.append((sample.name, sample.labels, position, scale, factor))

    def read(self, vb: VarBind) -> None:
        """`vb`'s value shaped something other than one written number."""
        self.reads.add(self._position[id(vb)])

    def position(self, vb: VarBind | None) -> int:
        """Where `vb` is among the poll's varbinds; -1 for None."""
        return -1 if vb is None else self._position[id(vb)]


@dataclass(frozen=True, slots=True)
class Replay:
    """One device's recorded render, to apply to its next poll's varbinds."""

    size: int
    tags: bytes
    oid_hash: int
    base: Mapping[str, str]
    fixed: _Positions
    fixed_hash: int
    """Hash of the values at `fixed`: the label texts they hold stay with the page only."""
    labels: tuple[str, ...]
    families: tuple[tuple[str, array[int], _Positions, array[float] | None, Numbers | None], ...]
    """(family, label index of each row, source positions, their scale times factor or None
    for the integers as they are, constant values instead of sources)."""
    kept: tuple[_KeptRun, ...]
    rows: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...]
    """The label sets of the kept samples as (names, values), one per row: rebuilt each poll,
    as a `Labels` tuple of pairs costs ~4x the strings it holds."""
    row_texts: tuple[str | None, ...]
    """Each row's label text on the page (None: not known), for the indicators of the row."""
    uptime: int
    """Position of sysUpTime.0, -1 if the poll had none."""

    @classmethod
    def of(
        cls,
        recording: Recording,
        varbinds: Sequence[VarBind],
        base: Mapping[str, str],
        page: DevicePage,
        uptime: VarBind | None,
    ) -> Replay | None:
        """The replay of a render that wrote `page`; None if it cannot be replayed."""
        if not recording.replayable or set(recording.sources) != set(page.columns):
            return None
        families: list[tuple[str, array[int], _Positions, array[float] | None, Numbers | None]]
        families = []
        for name, sources in recording.sources.items():
            rows, values = page.columns[name]
            if len(rows) != len(sources):  # a series written twice was kept once
                return None
            at = [p for p, _, _, _ in sources]
            kinds = {(p == _CONST, raw) for p, _, _, raw in sources}
            if kinds == {(False, True)}:  # integers as they are: most of a switch
                families.append((name, rows, _positions(at, len(varbinds)), None, None))
            elif kinds == {(False, False)}:
                # x * scale * factor, left to right as render does: the product differs
                factors = [(scale, factor) for _, scale, factor, _ in sources]
                if any(f != 1.0 for _, f in factors) and any(s != 1.0 for s, _ in factors):
                    return None  # two roundings; no shipped profile scales a sensor
                scales = array("d", [scale * factor for scale, factor in factors])
                families.append((name, rows, _positions(at, len(varbinds)), scales, None))
            elif kinds == {(True, False)}:
                families.append((name, rows, _positions([], 0), None, values))
            else:  # integers, computed numbers or constants mixed in one family
                return None
        fixed = sorted(recording.reads)
        label_rows: dict[Labels, int] = {}
        for _, labels, _, _, _ in recording.kept:
            label_rows.setdefault(labels, len(label_rows))
        names: dict[tuple[str, ...], tuple[str, ...]] = {}  # one tuple for the rows of a table
        split = []
        for labels in label_rows:
            keys = tuple([k for k, _ in labels])
            split.append((names.setdefault(keys, keys), tuple([v for _, v in labels])))
        return cls(
            size=len(varbinds),
            tags=bytes([vb[1] for vb in varbinds]),
            oid_hash=hash(tuple([vb[0] for vb in varbinds])),  # as `apply` hashes zip's tuple
            base=dict(base),
            fixed=_positions(fixed, len(varbinds)),
            fixed_hash=_fixed_hash([varbinds[p][2] for p in fixed]),
            labels=page.labels,
            families=tuple(families),
            kept=_runs(recording.kept, label_rows, len(varbinds)),
            rows=tuple(split),
            row_texts=tuple([recording.texts.get(id(labels)) for labels in label_rows]),
            uptime=recording.position(uptime),
        )

    def apply(
        self, varbinds: Sequence[VarBind], base: Mapping[str, str], now: float
    ) -> tuple[DevicePage, list[Sample], dict[int, str]] | None:
        """The page and kept samples a full render of `varbinds` would give, or None; and
        the label texts of the kept samples' labels, by the identity of their tuples."""
        if len(varbinds) != self.size or base != self.base or not varbinds:
            return None
        oids, tags, values = zip(*varbinds, strict=True)  # one pass, in C
        if bytes(tags) != self.tags or hash(oids) != self.oid_hash:
            return None
        if _fixed_hash([values[p] for p in self.fixed]) != self.fixed_hash:
            return None
        columns: dict[str, tuple[array[int], Numbers]] = {}
        for name, rows, positions, scales, constant in self.families:
            if constant is not None:
                columns[name] = (rows, constant)
            elif scales is None:
                numbers: Sequence[Any]
                if type(positions) is range:  # a column as walked: one slice
                    numbers = values[positions.start : positions.stop]
                else:
                    numbers = [values[p] for p in positions]
                columns[name] = (rows, packed(numbers))
            else:
                scaled = [float(values[p]) * s for p, s in zip(positions, scales, strict=True)]
                columns[name] = (rows, array("d", scaled))
        made = [tuple(zip(names, row, strict=True)) for names, row in self.rows]
        texts = {id(lb): t for lb, t in zip(made, self.row_texts, strict=True) if t is not None}
        kept: list[Sample] = []
        for name, at, positions, scales, factors, as_is in self.kept:
            if as_is:
                kept.extend([Sample(name, made[r], v, now) for r, v in zip(at, as_is, strict=True)])
            elif scales is None or factors is None:
                kept.extend([
                    Sample(name, made[r], float(values[p]), now)
                    for r, p in zip(at, positions, strict=True)
                ])  # fmt: skip
            else:
                kept.extend([
                    Sample(name, made[r], float(values[p]) * s * f, now)
                    for r, p, s, f in zip(at, positions, scales, factors, strict=True)
                ])  # fmt: skip
        return DevicePage(self.labels, columns), kept, texts


_INT_HASHED_AS_ITSELF = 2**61 - 1
"""CPython hashes an int in [0, 2^61 - 1) as itself; others modulo it, and -1 as -2."""


def _fixed_hash(values: list[Any]) -> int:
    """A hash of the shaping values in which no two integers collide by construction.

    An int's own hash is not one-to-one (-1 and -2 alike, everything modulo 2^61 - 1), so a
    sensor precision of -1 then -2 would look unchanged. Ints outside the range CPython
    hashes as themselves are hashed as their decimal text instead; the tags, compared first,
    keep a text and a number at one position apart.
    """
    cut = _INT_HASHED_AS_ITSELF
    return hash(tuple([str(v) if type(v) is int and not 0 <= v < cut else v for v in values]))


def _positions(positions: list[int], size: int) -> _Positions:
    """Varbind positions: a `range` for a run of consecutive ones (a table column, as walked),
    else two bytes each where a poll has fewer than 65,536 varbinds."""
    if positions and positions == list(range(positions[0], positions[0] + len(positions))):
        return range(positions[0], positions[0] + len(positions))
    return array("H" if size < 0x10000 else "I", positions)


def _runs(
    kept: list[tuple[str, Labels, int, float, float]], rows: Mapping[Labels, int], size: int
) -> tuple[_KeptRun, ...]:
    """Kept samples in runs of one name and kind, in order: a tuple a sample cost ~100 bytes."""
    runs: list[_KeptRun] = []
    start = 0
    while start < len(kept):
        name, _, first, _, _ = kept[start]
        stop = start
        while (
            stop < len(kept)
            and kept[stop][0] == name
            and (kept[stop][2] == _CONST) == (first == _CONST)
        ):
            stop += 1
        run = kept[start:stop]
        labels = _positions([rows[labels] for _, labels, _, _, _ in run], len(rows))
        if first == _CONST:
            runs.append(
                (name, labels, _positions([], 0), None, None, tuple([s for *_, s, _ in run]))
            )
        else:
            scales = [s for *_, s, _ in run]
            factors = [f for *_, f in run]
            plain = all(s == 1.0 for s in scales) and all(f == 1.0 for f in factors)
            runs.append((
                name,
                labels,
                _positions([p for _, _, p, _, _ in run], size),
                None if plain else array("d", scales),
                None if plain else array("d", factors),
                (),
            ))  # fmt: skip
        start = stop
    return tuple(runs)
