"""A device's share of the /metrics page, kept compact from one poll to the next.

A 48-port switch is ~2,100 series. Kept as exposition lines they cost ~170 KiB a switch (17 MiB
for 100, as long as the page is served); here each distinct label text is kept once and each
family's values in an `array` beside the indexes of their label texts: ~25 KiB a switch. A
scrape writes the lines again from these, byte for byte as `profiles.render` writes them.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import TypeAlias

    Numbers: TypeAlias = array[int] | array[float]

from agent.model import MetricMeta
from exporters.text import Unrenderable, family_header, go_float, int_text

_CHUNK = 256 * 1024  # bytes a page piece is sent in
_INF = math.inf
_INTS = (("i", -(2**31), 2**31 - 1), ("I", 0, 2**32 - 1), ("q", -(2**63), 2**63 - 1),
         ("Q", 0, 2**64 - 1))  # fmt: skip
"""Array typecodes for integers, smallest first: most of a switch's values fit 32 bits."""


@dataclass(frozen=True, slots=True)
class DevicePage:
    """One device's families: each distinct label text once, values in arrays."""

    labels: tuple[str, ...]
    columns: Mapping[str, tuple[array[int], Numbers]]
    """Family name -> (index into `labels` of each series, its value)."""

    def text(self, name: str) -> str:
        """This device's lines of family `name`, as `profiles.render` writes them."""
        column = self.columns.get(name)
        if column is None:
            return ""
        rows, values = column
        labels = self.labels
        pairs = zip(rows, values, strict=True)
        # int_text's and value_text's common cases inline: a call a line was a third of this
        if values.typecode in "iIqQ":
            return "".join([
                f"{name}{labels[r]}{v}.0\n" if -1_000_000 < v < 1_000_000
                else f"{name}{labels[r]}{int_text(int(v))}\n"
                for r, v in pairs
            ])  # fmt: skip
        return "".join([
            f"{name}{labels[r]}{v!r}\n" if -_INF < v < 1e6 else f"{name}{labels[r]}{go_float(v)}\n"
            for r, v in pairs
        ])  # fmt: skip


class PageWriter:
    """Where `profiles.render` writes one device poll's lines as (label text, value) pairs."""

    def __init__(self) -> None:
        self._columns: dict[str, tuple[list[str], list[int | float]]] = {}

    def column(self, name: str) -> tuple[list[str], list[int | float]]:
        """The label-text and number lists of family `name`, to append a row to each."""
        found = self._columns.get(name)
        if found is None:
            found = self._columns[name] = ([], [])
        return found

    def freeze(self, onto: DevicePage | None = None) -> DevicePage:
        """The compact page: label texts interned, numbers packed, a repeated series once.

        With `onto`, the page is that one with these columns added (a family both have gets
        these rows after its own), and its label indexes stay valid.
        """
        index: dict[str, int] = {}
        columns: dict[str, tuple[array[int], Numbers]] = {}
        if onto is not None:
            index = {text: n for n, text in enumerate(onto.labels)}
            columns = dict(onto.columns)
        for name, (texts, numbers) in self._columns.items():
            rows = [index.setdefault(t, len(index)) for t in texts]
            if name in columns:
                old_rows, old_numbers = columns[name]
                rows, numbers = [*old_rows, *rows], [*old_numbers, *numbers]
            if len(set(rows)) != len(rows):  # two profiles of one target wrote the same series
                last = dict(zip(rows, numbers, strict=True))
                rows, numbers = list(last), list(last.values())
            if rows:  # two bytes a label text index while a page has under 65,536 of them
                columns[name] = (
                    array("H" if len(index) <= 0x10000 else "I", rows),
                    packed(numbers),
                )
        return DevicePage(tuple(index), columns)


def packed(numbers: Sequence[int | float]) -> Numbers:
    """Integers in the smallest integer array they fit (32 or 64 bits, spelled exactly),
    anything else as doubles.

    Doubles lose nothing on the page: an integer is written as the float64 nearest to it
    (`int_text` is `go_float(float(n))`), which is what a double holds.
    """
    if not numbers:
        return array("q")
    low, high = min(numbers), max(numbers)  # in C; for floats the array below refuses them
    for code, least, most in _INTS:
        if least <= low and high <= most:
            try:
                return array(code, numbers)
            except TypeError:  # a float among them
                break
    return array("d", numbers)


def render(pages: Mapping[str, DevicePage], meta: Mapping[str, MetricMeta]) -> Iterator[bytes]:
    """The families of every device's page, in name order, each under one HELP and TYPE.

    Yields pieces of about 256 KiB, each whole lines; a family the text format cannot carry
    is left out. Profile and indicator families are gauges or untyped, so their header keeps
    the name their lines have.
    """
    devices = list(pages.values())
    names = sorted({name for page in devices for name in page.columns})
    chunk: list[str] = []
    size = 0
    for name in names:
        try:
            _, head = family_header(name, meta.get(name))
        except Unrenderable:
            continue
        chunk.append(head)
        for page in devices:
            text = page.text(name)
            chunk.append(text)
            size += len(text)
            if size >= _CHUNK:
                yield "".join(chunk).encode()
                chunk, size = [], 0
    if chunk:
        yield "".join(chunk).encode()
