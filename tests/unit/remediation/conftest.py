"""Fixtures for remediation unit tests: a migrated SQLite store and an alert factory."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from agent.model import Alert, AlertState, Level, Priority, make_labels
from agent.store import Store

NOW = 1_700_000_000.0

AlertFactory = Callable[..., Alert]


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(f"sqlite:///{tmp_path / 'opswatch.db'}", agent="web1")
    s.migrate()
    return s


@pytest.fixture
def make_alert() -> AlertFactory:
    def make(state: AlertState = AlertState.FIRING, **kw: object) -> Alert:
        values: dict[str, object] = {
            "fingerprint": "fp1", "rule": "FilesystemAlmostFull", "state": state,
            "level": Level.CRITICAL,
            "labels": make_labels({"host": "web1", "mountpoint": "/", "device": "/dev/sda1"}),
            "annotations": make_labels({"summary": "/ 96.2% > 95"}), "value": 96.2,
            "threshold": 95.0, "starts_at": NOW - 60,
        }  # fmt: skip
        values.update(kw)
        # The risk matrix sets the priority; with a default-impact asset it follows the level.
        levels = {Level.CRITICAL: Priority.P1, Level.WARNING: Priority.P2, Level.INFO: Priority.P3}
        values.setdefault("priority", levels[values["level"]])  # type: ignore[index]
        return Alert(**values)  # type: ignore[arg-type]

    return make
