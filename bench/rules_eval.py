"""CPU per rule-evaluation cycle (`agent.rules.evaluate`) over N series and M rules.

The series are what the agent holds for a fleet: per host, node_exporter's host metrics (load,
memory, CPU modes, filesystems, disks, network devices, `up`) and the SNMP interface counters of
its switch ports: 100 series a host, 10 points each (30 s apart, a 5 min window). Hosts belong to
one of 10 teams; a rule is one of 16 templates (bare selectors, avg/max/rate windows, ratios of
two metrics, `on(...)` matching, `max by`/`avg by`, predict_linear, time_to_threshold, absent,
changes) scoped to one team, as rule sets of multi-team fleets are; past 160 rules a scope comes
round again (a second rule on the same indicator). So the work per cycle grows with rules and
with series; "touched" counts the series the rules' selectors select per cycle (124,000 for 200
rules over 100,000 series: each series is read about 1.2 times).

About 1% of hosts and of interfaces are "hot" (load, memory, disk full, saturated links...), so
about 1% of elements alert and go pending, then firing. Each cell runs in its own process, so the
first cycle really is cold. Time is CPU time of this process (`time.process_time`), median over
the steady cycles; between cycles every series gets its next point (not timed).

    .venv/bin/python bench/rules_eval.py                    # the grid
    .venv/bin/python bench/rules_eval.py --series 100000 --rules 200 --hot 0   # one cell
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from agent.config import RuleConfig  # noqa: E402
from agent.expr import Expr, RangeSelector, Selector, children  # noqa: E402
from agent.model import Labels, Sample, make_labels  # noqa: E402
from agent.rules import AlertStatus, CompiledRule, compile_rules, evaluate  # noqa: E402
from agent.series import SeriesStore  # noqa: E402

STEP = 30.0
POINTS = 10
TEAMS = 10
T0 = 1_700_000_000.0
SERIES_PER_HOST = 100
FS = (("/", "ext4", "sda1"), ("/var", "ext4", "sda2"), ("/home", "xfs", "sdb1"),
      ("/boot", "ext4", "sda3"), ("/run", "tmpfs", "tmpfs"))  # fmt: skip
GIB = 2.0**30


@dataclass(frozen=True, slots=True)
class Line:
    """One synthetic series: value(step) = base + slope * step + a small deterministic wobble."""

    name: str
    labels: Labels
    base: float
    slope: float
    wobble: float

    def value(self, step: int, salt: int) -> float:
        return self.base + self.slope * step + self.wobble * (((step * 7919 + salt) % 997) / 997)


def host_lines(host: int, hot_every: int) -> Iterator[Line]:
    """node_exporter host metrics and 12 switch-port counters: 100 series for one host."""
    hot = hot_every > 0 and host % hot_every == 7
    base = {"instance": f"host-{host:05d}:9100", "team": f"t{host % TEAMS:02d}"}

    def line(name: str, b: float, s: float = 0.0, w: float = 0.0, **extra: str) -> Line:
        return Line(name, make_labels({**base, "job": "node", **extra}), b, s, w)

    def fs_line(name: str, b: float, s: float, w: float, where: tuple[str, str, str]) -> Line:
        mount, fstype, device = where
        return line(name, b, s, w, mountpoint=mount, fstype=fstype, device=device)

    yield line("up", 1.0)
    yield Line("up", make_labels({**base, "job": "snmp"}), 1.0, 0.0, 0.0)
    for name in ("node_load1", "node_load5", "node_load15"):
        yield line(name, 20.0 if hot else 0.5, w=1.0)
    yield line("node_memory_MemTotal_bytes", 64 * GIB)
    yield line("node_memory_MemAvailable_bytes", (2 if hot else 30) * GIB, w=GIB * 0.1)
    for cpu in range(4):
        for mode, share in (("idle", 0.02 if hot else 0.8), ("user", 0.1), ("system", 0.05),
                            ("iowait", 0.01)):  # fmt: skip
            yield line("node_cpu_seconds_total", 1e6, share * STEP, 0.0, cpu=str(cpu), mode=mode)
    for where in FS:
        avail, leak = (3 * GIB, -0.05 * GIB) if hot else (60 * GIB, 0.0)
        yield fs_line("node_filesystem_size_bytes", 100 * GIB, 0.0, 0.0, where)
        yield fs_line("node_filesystem_avail_bytes", avail, leak, 0.01 * GIB, where)
    for disk in ("sda", "sdb", "nvme0n1"):
        yield line("node_disk_io_time_seconds_total", 5e4, (0.99 if hot else 0.2) * STEP, 1.0,
                   device=disk)  # fmt: skip
    for dev in ("eth0", "eth1", "bond0", "lo"):
        packets = 1e4 * STEP
        yield line("node_network_receive_bytes_total", 1e12, 1e6 * STEP, 1e3, device=dev)
        yield line("node_network_transmit_bytes_total", 1e12, 1e6 * STEP, 1e3, device=dev)
        yield line("node_network_receive_packets_total", 1e9, packets, 10.0, device=dev)
        yield line("node_network_receive_errs_total", 10.0, packets * (0.05 if hot else 0.0),
                   0.0, device=dev)  # fmt: skip
    yield from port_lines(host, hot_every, base)


def port_lines(host: int, hot_every: int, base: dict[str, str]) -> Iterator[Line]:
    switch = {"instance": f"sw-{host // 4:04d}", "team": base["team"], "job": "snmp"}
    for port in range(12):
        index = (host % 4) * 12 + port + 1
        hot = hot_every > 0 and (host * 12 + port) % hot_every == 7
        labels = make_labels({**switch, "ifIndex": str(index), "ifName": f"Gi0/{index}"})
        speed = 1000.0  # Mbit/s
        octets = speed * 1e6 / 8 * (0.95 if hot else 0.1) * STEP
        yield Line("ifHCInOctets", labels, 1e12, octets, 1e5)
        yield Line("ifHCOutOctets", labels, 1e12, octets / 2, 1e5)
        yield Line("ifInErrors", labels, 0.0, 500.0 if hot else 0.0, 0.0)
        yield Line("ifHighSpeed", labels, speed, 0.0, 0.0)


TEMPLATES: tuple[dict[str, object], ...] = (
    {"expr": 'node_load5{team="T"}', "warning": 8, "critical": 16},
    {"expr": 'avg(node_load1{team="T"}[5m])', "warning": 8, "for": "2m"},
    {"expr": '100 * (1 - node_memory_MemAvailable_bytes{team="T"}'
             ' / node_memory_MemTotal_bytes{team="T"})', "warning": 90, "critical": 95},
    {"expr": '100 * (1 - node_filesystem_avail_bytes{team="T",fstype!~"tmpfs|overlay"}'
             ' / node_filesystem_size_bytes{team="T",fstype!~"tmpfs|overlay"})',
     "warning": 85, "critical": 95, "clear": 80, "for": "1m"},
    {"expr": 'time_to_threshold(node_filesystem_avail_bytes{team="T",fstype!="tmpfs"}[1h], 0)',
     "op": "<", "warning": 14400, "critical": 3600},
    {"expr": 'predict_linear(node_filesystem_avail_bytes{team="T"}[1h], 4h)',
     "op": "<", "warning": 0},
    {"expr": 'max by (instance) (rate(node_disk_io_time_seconds_total{team="T"}[5m]))',
     "warning": 0.9},
    {"expr": '100 * (1 - avg by (instance) '
             '(rate(node_cpu_seconds_total{team="T",mode="idle"}[5m])))', "warning": 90},
    {"expr": 'rate(node_network_receive_errs_total{team="T"}[5m])'
             ' / rate(node_network_receive_packets_total{team="T"}[5m])', "warning": 0.01},
    {"expr": 'rate(ifHCInOctets{team="T"}[5m]) * 8 / on(instance, ifIndex)'
             ' (ifHighSpeed{team="T"} * 1e6) * 100', "warning": 90, "for": "1m"},
    {"expr": 'rate(ifHCOutOctets{team="T"}[5m]) * 8'
             ' / (ifHighSpeed{team="T"} * 1e6) * 100', "warning": 90},
    {"expr": 'increase(ifInErrors{team="T"}[5m])', "warning": 100},
    {"expr": 'max(up{team="T",job="node"}[90s])', "op": "<", "warning": 0.5},
    {"expr": 'changes(up{team="T"}[5m])', "warning": 3},
    {"expr": 'absent(up{team="T",job="node"}[5m])', "warning": 0.5},
    {"expr": 'max by (instance) (node_load15{team="T",instance=~"host-.*"})', "warning": 16},
)  # fmt: skip
"""Rule i is template i % 16 scoped to team (i // 16) % TEAMS."""


def make_rules(count: int) -> list[CompiledRule]:
    configs = []
    for i in range(count):
        template = dict(TEMPLATES[i % len(TEMPLATES)])
        team = f"t{(i // len(TEMPLATES)) % TEAMS:02d}"
        template["expr"] = str(template["expr"]).replace('team="T"', f'team="{team}"')
        template.update(name=f"rule_{i:03d}", annotations={"summary": "{instance} is {value}"})
        configs.append(RuleConfig.model_validate(template))
    return compile_rules(configs, {"host": "agent-1"})


def selectors(node: Expr) -> Iterator[Selector]:
    if isinstance(node, Selector):
        yield node
    elif isinstance(node, RangeSelector):
        yield node.selector
    for child in children(node):
        yield from selectors(child)


def run_cell(series: int, rules: int, hot: float, cycles: int) -> dict[str, float]:
    """Build one store and rule set, run `cycles` evaluations, return CPU ms figures."""
    hot_every = round(1 / hot) if hot > 0 else 0
    lines = [ln for h in range(series // SERIES_PER_HOST) for ln in host_lines(h, hot_every)]
    store = SeriesStore(retention=POINTS * STEP, max_points_per_series=POINTS)
    for step in range(POINTS):
        feed(store, lines, step)
    compiled = make_rules(rules)
    state: dict[str, AlertStatus] = {}
    times, alerts = [], 0
    for cycle in range(cycles):
        now = T0 + (POINTS - 1 + cycle) * STEP
        started = time.process_time()
        result = evaluate(compiled, store, now, state)
        times.append((time.process_time() - started) * 1000)
        state, alerts = result.state, len(result.alerts)
        feed(store, lines, POINTS + cycle)
    # counted after the cycles, so that the first cycle finds no selection cached
    touched = sum(len(tuple(store.select(s.name, s.matchers)))
                  for r in compiled for s in selectors(r.expr))  # fmt: skip
    steady = statistics.median(times[2:])
    return {"series": len(store), "rules": rules, "first_ms": times[0], "steady_ms": steady,
            "touched": touched, "alerts": alerts}  # fmt: skip


def feed(store: SeriesStore, lines: list[Line], step: int) -> None:
    at = T0 + step * STEP
    store.add(Sample(ln.name, ln.labels, ln.value(step, i), at) for i, ln in enumerate(lines))


def cell_in_subprocess(series: int, rules: int, hot: float, cycles: int) -> dict[str, float]:
    args = [sys.executable, __file__, "--series", str(series), "--rules", str(rules),
            "--hot", str(hot), "--cycles", str(cycles), "--json"]  # fmt: skip
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    result: dict[str, float] = json.loads(out)
    return result


def grid(cycles: int, hot: float) -> None:
    sizes, counts = (10_000, 50_000, 100_000), (50, 100, 200)
    print(f"Python {sys.version.split()[0]}; {POINTS} points/series; hot {hot:.0%}; "
          f"CPU ms per cycle, median of {cycles - 2} steady cycles")  # fmt: skip
    print(f"{'series':>8} {'rules':>5} {'touched':>8} {'alerts':>6} {'first':>8} {'steady':>8}")
    steady: dict[tuple[int, int], float] = {}
    for n in sizes:
        for m in counts:
            r = cell_in_subprocess(n, m, hot, cycles)
            steady[n, m] = r["steady_ms"]
            print(f"{n:>8} {m:>5} {r['touched']:>8.0f} {r['alerts']:>6.0f} "
                  f"{r['first_ms']:>8.1f} {r['steady_ms']:>8.1f}", flush=True)  # fmt: skip
    big, most = sizes[-1], counts[-1]
    print(
        f"growth, 200 rules: series x10 -> {steady[big, most] / steady[sizes[0], most]:.1f}x; "
        f"100k series: rules x4 -> {steady[big, most] / steady[big, counts[0]]:.1f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--series", type=int, help="one cell: this many series (else the grid)")
    parser.add_argument("--rules", type=int, default=200)
    parser.add_argument("--hot", type=float, default=0.01, help="share of alerting elements")
    parser.add_argument("--cycles", type=int, default=9)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.series is None:
        grid(args.cycles, args.hot)
        return
    result = run_cell(args.series, args.rules, args.hot, args.cycles)
    print(json.dumps(result) if args.json else result)


if __name__ == "__main__":
    main()
