"""Exported rules against the real promtool: `check rules` is clean, and `test rules` shows
Prometheus raises exactly the alerts our evaluator raises on the same series at the same times.

The agreement suite runs our rule engine over a SeriesStore fed the input series, evaluating
every minute as Prometheus does, and writes what we fired as promtool's expected alerts for
every rule at every evaluation: promtool passes only if Prometheus fires the same alerts
(labels included) at each of those times. Windows are chosen off the sample grid (150 s, 330 s)
because Prometheus 2.x includes a point exactly at the window's start and we do not.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.config import RuleConfig, load
from agent.model import AlertState, Labels, Level, Sample, make_labels
from agent.rules import AlertStatus, compile_rules, evaluate
from agent.series import SeriesStore
from exporters.prometheus_rules import export_rules

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
STEP = 60
MINUTES = 30

RULES = [
    {"name": "LoadHigh", "expr": "avg(load[150s])", "warning": 2, "for": "2m", "clear_for": "1m"},
    {"name": "DiskFull", "expr": "100 * (1 - avail / size)", "critical": 90},
    {"name": "DiskFillsSoon", "expr": "time_to_threshold(free[330s], 0)", "op": "<",
     "warning": 1000},
    {"name": "DbExporterAbsent", "expr": 'absent(up{job="db"}[150s])', "op": ">=", "critical": 1},
    {"name": "StateFlapping", "expr": "changes(state[330s])", "warning": 2},
    {"name": "ProcessDown", "expr": "proc_up < 1 unless on(name) maint", "op": "<",
     "critical": 0.5, "for": "1m"},
    {"name": "Overheating", "expr": 'max by (sensor) (temp{kind=~"cpu|gpu"})', "warning": 70,
     "critical": 90},
]  # fmt: skip


def _series() -> dict[str, list[float | None]]:
    minutes = range(MINUTES + 1)
    return {
        'load{host="a"}': [3.0 if 5 <= m < 15 else 1.0 for m in minutes],
        'load{host="b"}': [1.0 for _ in minutes],
        'avail{dev="sda"}': [100.0 - 4 * m for m in minutes],
        'size{dev="sda"}': [100.0 for _ in minutes],
        'avail{dev="ghost"}': [0.0 for _ in minutes],
        'size{dev="ghost"}': [0.0 for _ in minutes],  # division by zero: no alert anywhere
        'free{dev="sdb"}': [100.0 if m < 10 else 100.0 - 5 * (m - 10) for m in minutes],
        'free{dev="sdc"}': [50.0 + m for m in minutes],  # heading away from 0
        'up{job="db"}': [1.0 if m <= 10 else None for m in minutes],
        'state{unit="a"}': [float(m % 2) if 8 <= m < 14 else 0.0 for m in minutes],
        'proc_up{name="nginx"}': [1.0 if m < 5 or m >= 20 else 0.0 for m in minutes],
        'proc_up{name="cron"}': [1.0 if m < 5 else 0.0 for m in minutes],
        'maint{name="cron"}': [1.0 for _ in minutes],
        'temp{kind="cpu",sensor="s1"}': [_temperature(m) for m in minutes],
        'temp{kind="fan",sensor="s2"}': [99.0 for _ in minutes],
    }


def _temperature(minute: int) -> float:
    return 50.0 if minute < 12 else 95.0 if minute < 18 else 75.0


def _parse_series(text: str) -> tuple[str, Labels]:
    name, _, rest = text.partition("{")
    pairs = [p.split("=", 1) for p in rest.rstrip("}").split(",") if p]
    return name, make_labels({k: v.strip('"') for k, v in pairs})


# ---------------------------------------------------------------------------------------------
# Our side

Fired = dict[int, dict[str, list[tuple[Labels, Level]]]]
"""minute -> alertname -> (labels without alertname, level) of each firing alert."""


def run_ours(configs: Sequence[RuleConfig], series: dict[str, list[float | None]]) -> Fired:
    rules = compile_rules(configs)
    store = SeriesStore(retention=86400)
    state: dict[str, AlertStatus] = {}
    fired: Fired = {}
    for minute in range(MINUTES + 1):
        now = float(minute * STEP)
        for text, values in series.items():
            name, labels = _parse_series(text)
            if values[minute] is not None:
                store.add([Sample(name, labels, float(values[minute] or 0.0), now)])
        result = evaluate(rules, store, now, state)
        state = result.state
        fired[minute] = {rule.name: [] for rule in rules}
        for alert in result.alerts:
            if alert.state is AlertState.FIRING:
                own = tuple(p for p in alert.labels if p[0] != "alertname")
                fired[minute][alert.rule].append((own, alert.level))
    return fired


def firing_minutes(fired: Fired, rule: str, **labels: str) -> list[int]:
    want = make_labels(labels)
    return [m for m, by in fired.items() if any(lb == want for lb, _ in by[rule])]


# ---------------------------------------------------------------------------------------------
# Prometheus' side


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is not installed: apt-get install prometheus (or its release)")
    return path


def _values(values: list[float | None]) -> str:
    return " ".join("_" if v is None else repr(v) for v in values)


def _expected(fired: Fired, configs: Sequence[RuleConfig]) -> list[dict[str, Any]]:
    """promtool alert tests: each exported level fires while our alert is at it or above."""
    tests = []
    for config in configs:
        for minute, by_rule in fired.items():
            exp = [
                {"exp_labels": {**dict(labels), "severity": level.value}}
                for labels, ours in by_rule[config.name]
                for level in config.thresholds()
                if ours.rank >= level.rank
            ]
            tests.append({"eval_time": f"{minute}m", "alertname": config.name, "exp_alerts": exp})
    return tests


def _promtool_test(
    tmp: Path, configs: Sequence[RuleConfig], fired: Fired
) -> subprocess.CompletedProcess[str]:
    export = export_rules(configs, interval=STEP)
    assert export.skipped == []
    (tmp / "rules.yml").write_text(yaml.safe_dump(export.file, sort_keys=False))
    test = {
        "rule_files": ["rules.yml"],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "input_series": [{"series": s, "values": _values(v)} for s, v in _series().items()],
            "alert_rule_test": _expected(fired, configs),
        }],
    }  # fmt: skip
    (tmp / "test.yml").write_text(yaml.safe_dump(test, sort_keys=False))
    return subprocess.run(
        [promtool(), "test", "rules", "test.yml"], cwd=tmp, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip


@pytest.fixture(scope="module")
def configs() -> list[RuleConfig]:
    return [RuleConfig.model_validate(rule) for rule in RULES]


@pytest.fixture(scope="module")
def fired(configs: list[RuleConfig]) -> Fired:
    return run_ours(configs, _series())


# ---------------------------------------------------------------------------------------------
# Tests


def test_shipped_rules_export_clean_for_promtool_check(tmp_path: Path) -> None:
    config = load(REPO / "agent.yaml")
    export = export_rules(config.rules, interval=config.evaluation.interval)
    assert export.skipped == []
    path = tmp_path / "opswatch.rules.yml"
    path.write_text(yaml.safe_dump(export.file, sort_keys=False))
    done = subprocess.run([promtool(), "check", "rules", str(path)], capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    levels = sum(len(rule.thresholds()) for rule in config.rules)
    assert f"SUCCESS: {levels} rules found" in done.stdout


def test_our_evaluator_fires_what_the_series_say(fired: Fired) -> None:
    # the 150 s average (3 points) is above 2 from minute 6 to 15: pending 6 and 7, firing
    # from 8, and clear at 16 is held for clear_for (1 min), so it resolves at 17
    assert firing_minutes(fired, "LoadHigh", host="a") == list(range(8, 17))
    assert firing_minutes(fired, "LoadHigh", host="b") == []
    assert firing_minutes(fired, "DiskFull", dev="sda") == list(range(23, MINUTES + 1))
    assert firing_minutes(fired, "DiskFull", dev="ghost") == []
    # falling 5 a minute from minute 10, zero at 30: under 1000 s once the window is all slope
    assert firing_minutes(fired, "DiskFillsSoon", dev="sdb") == list(range(15, MINUTES + 1))
    assert firing_minutes(fired, "DiskFillsSoon", dev="sdc") == []
    assert firing_minutes(fired, "DbExporterAbsent", job="db") == list(range(13, MINUTES + 1))
    assert firing_minutes(fired, "StateFlapping", unit="a") == list(range(11, 17))
    assert firing_minutes(fired, "ProcessDown", name="nginx") == list(range(6, 20))
    assert firing_minutes(fired, "ProcessDown", name="cron") == []  # in maintenance
    s1 = make_labels({"sensor": "s1"})
    assert fired[11]["Overheating"] == []
    assert fired[12]["Overheating"] == fired[17]["Overheating"] == [(s1, Level.CRITICAL)]
    assert fired[18]["Overheating"] == [(s1, Level.WARNING)]  # the fan sensor never matches


def test_prometheus_fires_the_same_alerts_at_the_same_times(
    tmp_path: Path, configs: list[RuleConfig], fired: Fired
) -> None:
    done = _promtool_test(tmp_path, configs, fired)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_promtool_notices_a_disagreement(
    tmp_path: Path, configs: list[RuleConfig], fired: Fired
) -> None:
    # the suite is not vacuous: drop one alert we fired and Prometheus' extra one fails it
    tampered = {m: {r: list(a) for r, a in by.items()} for m, by in fired.items()}
    tampered[10]["LoadHigh"] = []
    done = _promtool_test(tmp_path, configs, tampered)
    assert done.returncode != 0
    assert "LoadHigh" in done.stdout + done.stderr
