"""Filesystem space per mount, with pseudo filesystems excluded and hung mounts isolated."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from agent.config import FilesystemSettings
from collector.base import Collector
from collector.host.filesystem import FilesystemCollector

if TYPE_CHECKING:
    from conftest import Readings

Run = Callable[[Collector], "Readings"]
ROOT = {"device": "/dev/mapper/vg0-root", "mountpoint": "/", "fstype": "ext4"}
EFI = {"device": "/dev/sda1", "mountpoint": "/boot/efi", "fstype": "vfat"}
NAS = {"device": "nas:/export/backups", "mountpoint": "/mnt/nas backups", "fstype": "nfs4"}


def statvfs_result(
    blocks: int, bfree: int, bavail: int, files: int, ffree: int
) -> os.statvfs_result:
    """What statvfs(3) returns for a filesystem with 4 KiB blocks."""
    return os.statvfs_result((4096, 4096, blocks, bfree, bavail, files, ffree, ffree, 0, 255))


class FakeStatvfs:
    """statvfs over a table of mountpoints; `hang` makes one mount block until released."""

    def __init__(self, hang: str | None = None) -> None:
        self.table = {
            "/": statvfs_result(1000, 400, 350, 500, 200),
            "/mnt/nas backups": statvfs_result(2000, 100, 100, 64, 60),
        }
        self.hang, self.release = hang, threading.Event()
        self.calls: list[str] = []

    def __call__(self, mountpoint: str) -> os.statvfs_result:
        self.calls.append(mountpoint)
        if mountpoint == self.hang:
            self.release.wait(10)  # bounded so a failing test still ends
        if mountpoint not in self.table:
            raise PermissionError(13, "Permission denied", mountpoint)
        return self.table[mountpoint]


@pytest.fixture
def hanging() -> Iterator[FakeStatvfs]:
    fake = FakeStatvfs(hang="/mnt/nas backups")
    yield fake
    fake.release.set()


def test_space_and_inodes_in_bytes_per_mount(run: Run, proc: Path) -> None:
    got = run(FilesystemCollector(FilesystemSettings(), proc=proc, statvfs=FakeStatvfs()))

    assert got.value("node_filesystem_size_bytes", **ROOT) == 1000 * 4096
    assert got.value("node_filesystem_free_bytes", **ROOT) == 400 * 4096
    assert got.value("node_filesystem_avail_bytes", **ROOT) == 350 * 4096
    assert got.value("node_filesystem_files", **ROOT) == 500
    assert got.value("node_filesystem_files_free", **ROOT) == 200
    assert got.value("node_filesystem_readonly", **ROOT) == 0
    assert got.value("node_filesystem_device_error", **ROOT) == 0


def test_pseudo_filesystems_and_docker_layers_are_excluded_and_duplicates_merged(
    run: Run, proc: Path
) -> None:
    got = run(FilesystemCollector(FilesystemSettings(), proc=proc, statvfs=FakeStatvfs()))

    assert got.label_values("node_filesystem_device_error", "mountpoint") == {
        "/",
        "/boot/efi",
        "/mnt/nas backups",  # \040 in /proc/mounts is a space
    }


def test_read_only_mount_and_unreadable_mount(run: Run, proc: Path) -> None:
    got = run(FilesystemCollector(FilesystemSettings(), proc=proc, statvfs=FakeStatvfs()))

    assert got.value("node_filesystem_readonly", **NAS) == 1
    assert got.value("node_filesystem_size_bytes", **NAS) == 2000 * 4096
    assert got.value("node_filesystem_device_error", **EFI) == 1
    assert {s.name for s in got.samples if s.label("mountpoint") == "/boot/efi"} == {
        "node_filesystem_device_error"
    }


def test_exclude_regexes_come_from_settings(run: Run, proc: Path) -> None:
    settings = FilesystemSettings(exclude_fstypes="^(vfat|nfs4)$", exclude_mountpoints="^/snap/")
    got = run(FilesystemCollector(settings, proc=proc, statvfs=FakeStatvfs()))

    assert "/" in got.label_values("node_filesystem_size_bytes", "mountpoint")
    assert "/sys" in got.label_values("node_filesystem_device_error", "mountpoint")
    assert not {"/boot/efi", "/mnt/nas backups", "/snap/core22/1380"} & got.label_values(
        "node_filesystem_device_error", "mountpoint"
    )


def test_a_hung_mount_costs_one_timeout_then_is_skipped_until_it_returns(
    run: Run, proc: Path, hanging: FakeStatvfs
) -> None:
    collector = FilesystemCollector(
        FilesystemSettings(), proc=proc, statvfs=hanging, stat_timeout=0.2
    )

    first = run(collector)
    assert first.value("node_filesystem_device_error", **NAS) == 1
    assert first.value("node_filesystem_size_bytes", **ROOT) == 1000 * 4096

    started = time.monotonic()
    second = run(collector)
    assert time.monotonic() - started < 0.2  # no second wait on the hung mount
    assert second.value("node_filesystem_device_error", **NAS) == 1
    assert hanging.calls.count("/mnt/nas backups") == 1  # never statted twice at once

    hanging.release.set()
    for thread in threading.enumerate():
        if thread.name == "statvfs /mnt/nas backups":
            thread.join(5)
    third = run(collector)
    assert third.value("node_filesystem_device_error", **NAS) == 0
    assert third.value("node_filesystem_size_bytes", **NAS) == 2000 * 4096
