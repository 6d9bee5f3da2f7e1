"""Filesystem space and inodes per mount, like node_exporter's filesystem collector.

The mount table comes from `<proc>/mounts`; each mount's statvfs runs in its own daemon thread so
a hung NFS or FUSE mount costs at most `stat_timeout` once: until that call returns, the mount is
reported as `node_filesystem_device_error 1` without being statted again (node_exporter's
"stuck mounts").
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from agent.config import FilesystemSettings
from agent.model import Sample, sample
from collector.base import SettingsCollector, gauge, read_text

log = logging.getLogger(__name__)

StatVfs = Callable[[str], os.statvfs_result]
_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")


@dataclass(frozen=True, slots=True)
class Mount:
    """One line of /proc/mounts."""

    device: str
    mountpoint: str
    fstype: str
    options: tuple[str, ...]

    @property
    def labels(self) -> dict[str, str]:
        """node_exporter's label set for this mount."""
        return {"device": self.device, "mountpoint": self.mountpoint, "fstype": self.fstype}


def _unescape(field: str) -> str:
    # The kernel writes space, tab, newline and backslash in mount fields as \040-style octal.
    return _OCTAL_ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field)


def parse_mounts(text: str) -> list[Mount]:
    """Parse /proc/mounts text; malformed lines are skipped."""
    mounts = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 4:
            continue
        device, mountpoint, fstype = (_unescape(p) for p in parts[:3])
        mounts.append(Mount(device, mountpoint, fstype, tuple(parts[3].split(","))))
    return mounts


class _StatCall(threading.Thread):
    """statvfs in a daemon thread: a hung mount must not keep the agent from exiting."""

    def __init__(self, statvfs: StatVfs, mountpoint: str) -> None:
        super().__init__(name=f"statvfs {mountpoint}", daemon=True)
        self._statvfs = statvfs
        self.mountpoint = mountpoint
        self.result: os.statvfs_result | None = None
        self.error: OSError | None = None

    def run(self) -> None:
        try:
            self.result = self._statvfs(self.mountpoint)
        except OSError as exc:
            self.error = exc


def _space_samples(mount: Mount, st: os.statvfs_result, now: float) -> list[Sample]:
    # f_frsize is the unit of the block counts (POSIX); on Linux it equals f_bsize in practice.
    unit = st.f_frsize or st.f_bsize
    values = {
        "node_filesystem_size_bytes": st.f_blocks * unit,
        "node_filesystem_free_bytes": st.f_bfree * unit,
        "node_filesystem_avail_bytes": st.f_bavail * unit,
        "node_filesystem_files": st.f_files,
        "node_filesystem_files_free": st.f_ffree,
        "node_filesystem_readonly": 1 if "ro" in mount.options else 0,
    }
    return [sample(name, value, now, **mount.labels) for name, value in values.items()]


class FilesystemCollector(SettingsCollector):
    """Size, free, available bytes and inodes of each mounted filesystem not excluded."""

    name = "filesystem"
    families = (
        gauge("node_filesystem_size_bytes", "Filesystem size in bytes."),
        gauge("node_filesystem_free_bytes", "Filesystem free space in bytes."),
        gauge(
            "node_filesystem_avail_bytes", "Filesystem space available to non-root users in bytes."
        ),
        gauge("node_filesystem_files", "Filesystem total file nodes."),
        gauge("node_filesystem_files_free", "Filesystem total free file nodes."),
        gauge("node_filesystem_readonly", "Filesystem read-only status."),
        gauge(
            "node_filesystem_device_error",
            "Whether an error occurred while getting statistics for the given device.",
        ),
    )

    def __init__(
        self,
        settings: FilesystemSettings,
        proc: Path = Path("/proc"),
        statvfs: StatVfs = os.statvfs,
        stat_timeout: float = 5.0,
    ) -> None:
        super().__init__(settings)
        self._mounts = proc / "mounts"
        self._statvfs = statvfs
        # Never wait longer than the scheduler would: leave it time to publish the rest.
        self._stat_timeout = min(stat_timeout, settings.timeout / 2)
        self._exclude_fstypes = re.compile(settings.exclude_fstypes)
        self._exclude_mountpoints = re.compile(settings.exclude_mountpoints)
        self._stuck: dict[str, _StatCall] = {}

    def mounts(self) -> list[Mount]:
        """Mounts not excluded by the settings, first occurrence of each label set only."""
        seen: set[tuple[str, str, str]] = set()
        kept = []
        for mount in parse_mounts(read_text(self._mounts)):
            key = (mount.device, mount.mountpoint, mount.fstype)
            if key in seen or self._excluded(mount):
                continue
            seen.add(key)
            kept.append(mount)
        return kept

    def _excluded(self, mount: Mount) -> bool:
        return bool(
            self._exclude_fstypes.search(mount.fstype)
            or self._exclude_mountpoints.search(mount.mountpoint)
        )

    def collect(self, now: float) -> list[Sample]:
        """Stat every mount concurrently; a failed or hung one yields only `device_error 1`."""
        calls = {m: self._start(m.mountpoint) for m in self.mounts()}
        deadline = time.monotonic() + self._stat_timeout
        out: list[Sample] = []
        for mount, call in calls.items():
            if call is not None:
                call.join(max(0.0, deadline - time.monotonic()))
            result = self._result(mount, call)
            error = 0 if result is not None else 1
            out.append(sample("node_filesystem_device_error", error, now, **mount.labels))
            if result is not None:
                out.extend(_space_samples(mount, result, now))
        return out

    def _start(self, mountpoint: str) -> _StatCall | None:
        """Start a statvfs call, or None while an earlier call on this mount is still hung."""
        earlier = self._stuck.get(mountpoint)
        if earlier is not None:
            if earlier.is_alive():
                return None
            del self._stuck[mountpoint]
            log.info("mount responds again", extra={"mountpoint": mountpoint})
        call = _StatCall(self._statvfs, mountpoint)
        call.start()
        return call

    def _result(self, mount: Mount, call: _StatCall | None) -> os.statvfs_result | None:
        if call is None:
            return None
        if call.is_alive():
            self._stuck[mount.mountpoint] = call
            log.warning(
                "statvfs timed out; skipping mount until it returns",
                extra={"mountpoint": mount.mountpoint, "timeout": self._stat_timeout},
            )
            return None
        if call.error is not None:
            # EACCES on another user's FUSE mount is routine: debug, as node_exporter does.
            log.debug("statvfs failed: %s", call.error, extra={"mountpoint": mount.mountpoint})
        return call.result
