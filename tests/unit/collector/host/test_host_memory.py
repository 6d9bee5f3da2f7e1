"""Every /proc/meminfo field as node_exporter names it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from agent.config import CollectorSettings
from agent.errors import CollectorError
from collector.base import Collector
from collector.host.memory import MemoryCollector

if TYPE_CHECKING:
    from conftest import Readings

Run = Callable[[Collector], "Readings"]
SETTINGS = CollectorSettings()
KIB = 1024


def test_memory_and_swap_in_bytes(run: Run, proc: Path) -> None:
    got = run(MemoryCollector(SETTINGS, proc=proc))

    assert got.value("node_memory_MemTotal_bytes") == 16310836 * KIB
    assert got.value("node_memory_MemFree_bytes") == 1143260 * KIB
    assert got.value("node_memory_MemAvailable_bytes") == 9872312 * KIB
    assert got.value("node_memory_Buffers_bytes") == 412976 * KIB
    assert got.value("node_memory_Cached_bytes") == 8012444 * KIB
    assert got.value("node_memory_SwapTotal_bytes") == 2097148 * KIB
    assert got.value("node_memory_SwapFree_bytes") == 1998844 * KIB


def test_every_field_is_emitted_with_node_exporter_naming(run: Run, proc: Path) -> None:
    got = run(MemoryCollector(SETTINGS, proc=proc))

    assert len(got.samples) == len((proc / "meminfo").read_text().splitlines())
    assert got.value("node_memory_Active_anon_bytes") == 3011652 * KIB  # Active(anon)
    assert got.value("node_memory_Inactive_file_bytes") == 5062208 * KIB  # Inactive(file)
    assert got.value("node_memory_HugePages_Total") == 16  # a page count: no unit, no _bytes
    assert got.value("node_memory_HugePages_Free") == 12
    assert got.value("node_memory_Hugepagesize_bytes") == 2048 * KIB


def test_describe_covers_the_kernel_fields_before_any_collection(proc: Path) -> None:
    described = {meta.name for meta in MemoryCollector(SETTINGS, proc=proc).describe()}

    assert {"node_memory_MemTotal_bytes", "node_memory_SwapFree_bytes"} <= described
    assert "node_memory_HugePages_Total" in described


def test_a_field_from_a_newer_kernel_is_described_from_the_start(run: Run, tmp_path: Path) -> None:
    (tmp_path / "meminfo").write_text("MemTotal:       1000 kB\nFutureField:      7 kB\n\n")
    collector = MemoryCollector(SETTINGS, proc=tmp_path)

    # The agent builds its type table from describe() once, before the first collection.
    meta = {m.name: m for m in collector.describe()}["node_memory_FutureField_bytes"]
    assert meta.help == "Memory information field FutureField_bytes."
    assert run(collector).value("node_memory_FutureField_bytes") == 7 * KIB


def test_a_field_appearing_later_is_described_once_seen(run: Run, tmp_path: Path) -> None:
    collector = MemoryCollector(SETTINGS, proc=tmp_path)  # meminfo unreadable at start-up
    (tmp_path / "meminfo").write_text("MemTotal:       1000 kB\nLaterField:      3 kB\n")

    got = run(collector)  # run() asserts every emitted family is described

    assert got.value("node_memory_LaterField_bytes") == 3 * KIB


def test_a_garbled_line_raises(tmp_path: Path, now: float) -> None:
    (tmp_path / "meminfo").write_text("MemTotal 1000 kB extra words\n")
    with pytest.raises(CollectorError, match="invalid line"):
        MemoryCollector(SETTINGS, proc=tmp_path).collect(now)
