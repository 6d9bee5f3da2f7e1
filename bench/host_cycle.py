"""CPU and memory per host collection cycle: the OpsWatch agent against node_exporter, same run.

Both run on this machine at the same time on loopback ports. node_exporter collects when it is
scraped, so it is scraped once per cycle; the agent collects on its own schedule (every collector
at --interval) and is scraped as often. Reported: CPU seconds per cycle (user+system of the
process and its children, from /proc), peak and final RSS, and the OpsWatch / node_exporter ratios.

    .venv/bin/python bench/host_cycle.py --seconds 60 --interval 1
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import yaml

from agent.config import CollectorsSection

REPO = Path(__file__).resolve().parents[1]
COLLECTORS = list(CollectorsSection.model_fields)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def cpu_seconds(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return t.user + t.system + t.children_user + t.children_system


def wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} did not answer within {timeout}s")


def measure(
    name: str, proc: subprocess.Popen[bytes], url: str, seconds: float, interval: float
) -> dict[str, Any]:
    """Scrape `url` every `interval` for `seconds`; CPU and RSS of the process over that window."""
    ps = psutil.Process(proc.pid)
    cycles, peak = 0, 0
    start_cpu, start = cpu_seconds(ps), time.monotonic()
    while time.monotonic() - start < seconds:
        body = httpx.get(url, timeout=10).text
        cycles += 1
        peak = max(peak, ps.memory_info().rss)
        time.sleep(max(0.0, start + cycles * interval - time.monotonic()))
    used = cpu_seconds(ps) - start_cpu
    series = sum(1 for line in body.splitlines() if line and not line.startswith("#"))
    return {
        "tool": name,
        "cycles": cycles,
        "cpu_ms_per_cycle": 1000 * used / cycles,
        "peak_rss_mib": peak / 2**20,
        "rss_mib": ps.memory_info().rss / 2**20,
        "series": series,
    }


def agent_config(state: Path, port: int, interval: float) -> Path:
    config = yaml.safe_load((REPO / "agent.yaml").read_text())
    config["agent"].update(state_dir=str(state), listen=f"127.0.0.1:{port}")
    config["agent"]["log"] = {"level": "warning"}
    for name in COLLECTORS:
        config["collectors"].setdefault(name, {})["interval"] = f"{interval}s"
    config["evaluation"]["interval"] = f"{interval}s"
    path = state / "agent.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def run_pair(seconds: float, interval: float) -> list[dict[str, Any]]:
    node_exporter = shutil.which("prometheus-node-exporter") or shutil.which("node_exporter")
    if node_exporter is None:
        raise SystemExit("node_exporter not found: apt-get install prometheus-node-exporter")
    opswatch = str(Path(sys.executable).parent / "opswatch")
    with tempfile.TemporaryDirectory() as tmp:
        ne_port, ow_port = free_port(), free_port()
        procs = [
            subprocess.Popen(
                [node_exporter, f"--web.listen-address=127.0.0.1:{ne_port}"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            ),
            subprocess.Popen(
                [opswatch, "run", "-c", str(agent_config(Path(tmp), ow_port, interval))],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            ),
        ]
        try:
            wait_http(f"http://127.0.0.1:{ne_port}/metrics")
            wait_http(f"http://127.0.0.1:{ow_port}/-/ready")
            time.sleep(2 * interval)  # let start-up work (imports, migrations) settle
            return [
                measure(
                    "node_exporter",
                    procs[0],
                    f"http://127.0.0.1:{ne_port}/metrics",
                    seconds,
                    interval,
                ),
                measure(
                    "opswatch", procs[1], f"http://127.0.0.1:{ow_port}/metrics", seconds, interval
                ),
            ]
        finally:
            for p in procs:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    p.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    node, ours = run_pair(args.seconds, args.interval)
    if args.json:
        print(json.dumps([node, ours], indent=2))
        return
    print(f"{'tool':<14}{'cycles':>8}{'CPU ms/cycle':>14}{'peak RSS MiB':>14}{'series':>8}")
    for r in (node, ours):
        print(
            f"{r['tool']:<14}{r['cycles']:>8}{r['cpu_ms_per_cycle']:>14.2f}{r['peak_rss_mib']:>14.1f}"
            f"{r['series']:>8}"
        )
    cpu = ours["cpu_ms_per_cycle"] / node["cpu_ms_per_cycle"]
    rss = ours["peak_rss_mib"] / node["peak_rss_mib"]
    print(f"ratio opswatch/node_exporter: CPU {cpu:.2f}x, peak RSS {rss:.2f}x")


if __name__ == "__main__":
    main()
