"""Temperatures and fan speeds from /sys/class/hwmon, with node_exporter's chip naming.

A chip is named from the device it hangs off, so the name survives hwmonN renumbering across
boots: `<parent dir>_<device dir>` of the resolved `device` link, lower-cased with characters
outside `[a-z0-9:_]` turned into `_` (coretemp.0 under /sys/devices/platform becomes
`platform_coretemp_0`). Without a device link the `name` file is used, then the hwmonN directory.
"""

from __future__ import annotations

import logging
import os
import re
from collections import defaultdict
from pathlib import Path

from agent.config import CollectorSettings
from agent.model import Sample, sample
from collector.base import SettingsCollector, gauge

log = logging.getLogger(__name__)

_INVALID = re.compile(r"[^a-z0-9:_]")
_SENSOR_FILE = re.compile(r"^(temp|fan)(\d+)_(input|max|crit|min|label)$")

# (sensor type, property) → (metric, divisor to the base unit); sysfs temps are millidegrees.
_VALUES = {
    ("temp", "input"): ("node_hwmon_temp_celsius", 1000.0),
    ("temp", "max"): ("node_hwmon_temp_max_celsius", 1000.0),
    ("temp", "crit"): ("node_hwmon_temp_crit_celsius", 1000.0),
    ("fan", "input"): ("node_hwmon_fan_rpm", 1.0),
    ("fan", "min"): ("node_hwmon_fan_min_rpm", 1.0),
}


def clean_name(text: str) -> str:
    """node_exporter's cleanMetricName: lower-case, `[^a-z0-9:_]` → `_`, trim `_`."""
    return _INVALID.sub("_", text.strip().lower()).strip("_")


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        # Some drivers answer EIO/ENODATA for sensors that are wired but absent: skip them.
        return None


def chip_name(hwmon_dir: Path) -> str:
    """Stable chip label for one /sys/class/hwmon/hwmonN entry."""
    device = hwmon_dir / "device"
    if device.exists():
        real = os.path.realpath(device)
        dev_name = clean_name(os.path.basename(real))
        dev_type = clean_name(os.path.basename(os.path.dirname(real)))
        if dev_type and dev_name:
            return f"{dev_type}_{dev_name}"
        if dev_name:
            return dev_name
    name = clean_name(_read(hwmon_dir / "name") or "")
    return name or clean_name(os.path.basename(os.path.realpath(hwmon_dir)))


def sensor_files(hwmon_dir: Path) -> dict[tuple[str, str], dict[str, str]]:
    """(type, sensor) → property → raw text, from the hwmon dir and its device dir."""
    data: dict[tuple[str, str], dict[str, str]] = defaultdict(dict)
    # Older drivers put the sensor files in device/ rather than the hwmon dir itself.
    for folder in (hwmon_dir, hwmon_dir / "device"):
        if not folder.is_dir():
            continue
        for entry in sorted(folder.iterdir()):
            match = _SENSOR_FILE.match(entry.name)
            text = _read(entry) if match else None
            if match and text is not None:
                kind, number, prop = match.groups()
                data[(kind, f"{kind}{number}")][prop] = text
    return data


class HwmonCollector(SettingsCollector):
    """`node_hwmon_*` from `<sysfs>/class/hwmon`; no hwmon (VMs, containers) means no samples."""

    name = "hwmon"
    families = (
        gauge("node_hwmon_temp_celsius", "Hardware monitor for temperature (input)"),
        gauge("node_hwmon_temp_max_celsius", "Hardware monitor for temperature (max)"),
        gauge("node_hwmon_temp_crit_celsius", "Hardware monitor for temperature (crit)"),
        gauge("node_hwmon_fan_rpm", "Hardware monitor for fan revolutions per minute (input)"),
        gauge("node_hwmon_fan_min_rpm", "Hardware monitor for fan revolutions per minute (min)"),
        gauge("node_hwmon_sensor_label", "Label for given chip and sensor"),
        gauge("node_hwmon_chip_names", "Annotation metric for human-readable chip names"),
    )

    def __init__(self, settings: CollectorSettings, sysfs: Path = Path("/sys")) -> None:
        super().__init__(settings)
        self._hwmon = sysfs / "class" / "hwmon"

    def collect(self, now: float) -> list[Sample]:
        """Samples for every temp and fan sensor of every chip."""
        if not self._hwmon.is_dir():
            return []
        out: list[Sample] = []
        for entry in sorted(self._hwmon.iterdir()):
            if entry.is_dir():  # follows the hwmonN symlink into /sys/devices
                out.extend(self._chip_samples(entry, now))
        return out

    def _chip_samples(self, hwmon_dir: Path, now: float) -> list[Sample]:
        chip = chip_name(hwmon_dir)
        out: list[Sample] = []
        human = clean_name(_read(hwmon_dir / "name") or "")
        if human:
            out.append(sample("node_hwmon_chip_names", 1, now, chip=chip, chip_name=human))
        for (kind, sensor), props in sorted(sensor_files(hwmon_dir).items()):
            out.extend(_sensor_samples(kind, props, now, chip=chip, sensor=sensor))
        return out


def _sensor_samples(kind: str, props: dict[str, str], now: float, **labels: str) -> list[Sample]:
    out: list[Sample] = []
    if props.get("label"):
        out.append(sample("node_hwmon_sensor_label", 1, now, label=props["label"], **labels))
    for prop, text in props.items():
        metric = _VALUES.get((kind, prop))
        if metric is None:
            continue
        try:
            out.append(sample(metric[0], float(text) / metric[1], now, **labels))
        except ValueError:
            log.debug("unparsable hwmon value %r", text, extra=labels)
    return out
