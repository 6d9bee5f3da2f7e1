"""Temperatures and fans from a recorded /sys/class/hwmon tree, with node_exporter chip names."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from agent.config import CollectorSettings
from collector.base import Collector
from collector.host.hwmon import HwmonCollector, clean_name

if TYPE_CHECKING:
    from conftest import Readings

Run = Callable[[Collector], "Readings"]
SETTINGS = CollectorSettings(interval=60)


def test_chip_names_derive_from_the_device_path(run: Run, sysfs: Path) -> None:
    got = run(HwmonCollector(SETTINGS, sysfs=sysfs))

    assert got.series("node_hwmon_chip_names") == {
        (("chip", "thermal_thermal_zone0"), ("chip_name", "acpitz")): 1,
        (("chip", "nvme_nvme0"), ("chip_name", "nvme")): 1,
        (("chip", "platform_coretemp_0"), ("chip_name", "coretemp")): 1,
        (("chip", "platform_nct6775_656"), ("chip_name", "nct6798")): 1,
        (("chip", "dell_smm"), ("chip_name", "dell_smm")): 1,  # no device link: the name file
    }
    assert "hwmon5" in got.label_values("node_hwmon_temp_celsius", "chip")  # neither: the dir


def test_temperatures_in_celsius(run: Run, sysfs: Path) -> None:
    got = run(HwmonCollector(SETTINGS, sysfs=sysfs))

    def temp(chip: str, sensor: str, kind: str = "") -> float:
        return got.value(f"node_hwmon_temp{kind}_celsius", chip=chip, sensor=sensor)

    assert temp("platform_coretemp_0", "temp1") == 45.0
    assert temp("platform_coretemp_0", "temp2") == 43.0
    assert temp("platform_coretemp_0", "temp1", "_max") == 100.0
    assert temp("platform_coretemp_0", "temp1", "_crit") == 100.0
    assert temp("nvme_nvme0", "temp1") == 38.85
    assert temp("nvme_nvme0", "temp2") == 40.85
    assert temp("nvme_nvme0", "temp1", "_crit") == 84.85
    assert temp("thermal_thermal_zone0", "temp1") == 27.8
    assert temp("platform_nct6775_656", "temp1") == 34.0
    assert temp("hwmon5", "temp1") == 50.0
    unparsable = (("chip", "hwmon5"), ("sensor", "temp2"))  # its file holds "garbage"
    assert unparsable not in got.series("node_hwmon_temp_celsius")


def test_fans_in_rpm_including_files_in_the_device_directory(run: Run, sysfs: Path) -> None:
    got = run(HwmonCollector(SETTINGS, sysfs=sysfs))

    assert got.series("node_hwmon_fan_rpm") == {
        (("chip", "platform_nct6775_656"), ("sensor", "fan1")): 1041,
        (("chip", "platform_nct6775_656"), ("sensor", "fan2")): 0,
        (("chip", "dell_smm"), ("sensor", "fan1")): 2400,
    }
    assert got.value("node_hwmon_fan_min_rpm", chip="platform_nct6775_656", sensor="fan1") == 300


def test_sensor_labels_are_a_separate_series(run: Run, sysfs: Path) -> None:
    got = run(HwmonCollector(SETTINGS, sysfs=sysfs))
    labels = {(s.label("chip"), s.label("sensor"), s.label("label")) for s in got.samples
              if s.name == "node_hwmon_sensor_label"}  # fmt: skip

    assert ("nvme_nvme0", "temp1", "Composite") in labels
    assert ("platform_coretemp_0", "temp1", "Package id 0") in labels
    assert ("platform_nct6775_656", "temp1", "SYSTIN") in labels
    assert len(labels) == 5


def test_no_hwmon_means_no_samples_not_an_error(run: Run, tmp_path: Path) -> None:
    assert run(HwmonCollector(SETTINGS, sysfs=tmp_path)).samples == []


def test_clean_name_matches_node_exporter() -> None:
    assert clean_name("coretemp.0\n") == "coretemp_0"
    assert clean_name("0000:00:18.3") == "0000:00:18_3"
    assert clean_name("_Dell SMM_") == "dell_smm"
