"""Devices/s, CPU and peak RSS per 48-port IF-MIB poll: OpsWatch, snmp_exporter, snmpbulkwalk.

One run, same machine, same net-snmp `snmpd`. The benchmark creates a network namespace holding
lo and 47 veth interfaces (a 48-row ifTable), starts snmpd inside it on 127.0.0.1 with one UDP
port per simulated device, and re-runs itself inside the namespace, so every datagram and HTTP
request stays on that namespace's loopback. Every process it starts is stopped by its pid and
the namespaces are deleted at the end, whatever happens.

Each client asks every device for the same data: the SNMPv2-MIB system scalars, ifTable and
ifXTable (GetBulk, max-repetitions 25); snmp_exporter's module is generated from OpsWatch's own
`system` and `if_mib` profiles, so both emit the same series. Measured per client: CPU of the
client process (user+system from /proc) per device poll, devices polled per second, peak RSS
(VmHWM); snmpd's CPU per poll is shown too, as a check that every client asked for the same work.

    .venv/bin/python bench/snmp_poll.py             # about 3 minutes; root, ip netns
    .venv/bin/python bench/snmp_poll.py --devices 200 --seconds 60 --rounds 5
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psutil
import yaml

from agent.config import CollectorsSection

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from agent.model import Sample, sample  # noqa: E402
from collector.snmp import profiles  # noqa: E402
from collector.snmp.poller import PollTarget, SnmpPoller  # noqa: E402
from exporters.prometheus import MetricsExporter, Snapshot  # noqa: E402

NS = f"owbench{os.getpid()}"
BASE_PORT = 20001  # device i listens on BASE_PORT + i, inside the namespace only
EXPORTER = "127.0.0.1:9116"
AGENT = "127.0.0.1:10790"
COMMUNITY = "bench-community"
V3 = {"user": "bench-v3", "auth": "bench-auth-sha1", "priv": "bench-priv-aes128"}
WALKS = ("1.3.6.1.2.1.2", "1.3.6.1.2.1.31.1.1")  # interfaces group and ifXTable
MiB = 2**20
Result = dict[str, Any]


# --- outside the namespace: build it, run the benchmark in it, always clean up ------------


def sh(*args: str) -> None:
    subprocess.run(args, check=True, timeout=30)


@contextmanager
def namespace() -> Iterator[None]:
    """lo + 46 veth ends + one veth whose peer lives in a second namespace: 48 ifTable rows."""
    try:
        sh("ip", "netns", "add", NS)
        sh("ip", "netns", "add", NS + "b")
        sh("ip", "-n", NS, "link", "set", "lo", "up")
        for n in range(23):
            sh(
                "ip",
                "-n",
                NS,
                "link",
                "add",
                f"ge0-{n}",
                "type",
                "veth",
                "peer",
                "name",
                f"ge1-{n}",
            )
            if n % 3:  # a third of the ports down, as on a real switch
                sh("ip", "-n", NS, "link", "set", f"ge0-{n}", "up")
                sh("ip", "-n", NS, "link", "set", f"ge1-{n}", "up")
        sh(
            "ip",
            "-n",
            NS,
            "link",
            "add",
            "uplink",
            "type",
            "veth",
            "peer",
            "name",
            "x",
            "netns",
            NS + "b",
        )
        yield
    finally:
        for name in (NS, NS + "b"):
            subprocess.run(["ip", "netns", "del", name], check=False, timeout=30)


def run_outside(argv: list[str]) -> list[Result]:
    with tempfile.TemporaryDirectory() as tmp, namespace():
        pidfile = Path(tmp, "pids")
        command = ["ip", "netns", "exec", NS, sys.executable, __file__, "--inside", str(pidfile)]
        try:
            done = subprocess.run(
                [*command, *argv], stdout=subprocess.PIPE, timeout=1800, check=True
            )
        finally:  # if the inner run died, its servers must not outlive the namespace
            for pid in pidfile.read_text().split() if pidfile.exists() else []:
                stop_pid(int(pid))
    results: list[Result] = json.loads(done.stdout)
    return results


def stop_pid(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)


# --- inside the namespace: start the peers and measure ------------------------------------


class Procs:
    """Processes this run started, recorded in a pid file the outer run reads on failure."""

    def __init__(self, pidfile: Path, logs: Path) -> None:
        self.pidfile, self.logs = pidfile, logs
        self.running: list[subprocess.Popen[bytes]] = []

    def start(self, argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Start `argv` with its output in LOGS/<program>.log."""
        with (self.logs / f"{Path(argv[0]).name}.log").open("ab") as log:
            proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.running.append(proc)
        with self.pidfile.open("a") as f:
            f.write(f"{proc.pid}\n")
        return proc

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(15)
        self.running.remove(proc)

    def stop_all(self) -> None:
        for proc in list(self.running):
            self.stop(proc)


def cpu_seconds(pid: int) -> float:
    t = psutil.Process(pid).cpu_times()
    return t.user + t.system


def tree_cpu_seconds(pid: int) -> float:
    """CPU of `pid` and of its running children (the agent and its SNMP poller process)."""
    children = psutil.Process(pid).children(recursive=True)
    return cpu_seconds(pid) + sum(cpu_seconds(c.pid) for c in children)


def poller_pid(agent: int) -> int | None:
    """The agent's SNMP poller process, if it polls in one (`snmp.process`)."""
    for child in psutil.Process(agent).children():
        if "collector.snmp.process" in " ".join(child.cmdline()):
            return int(child.pid)
    return None


def peak_rss_mib(pid: int) -> float:
    """The kernel's high-water mark of the process' resident set (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for pid {pid}")


def wait_until(check: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (httpx.HTTPError, OSError):
            pass
        time.sleep(0.1)
    raise SystemExit(f"{what} not ready within {timeout}s")


def start_snmpd(procs: Procs, home: Path, devices: int) -> tuple[int, dict[str, str]]:
    conf = home / "snmpd.conf"
    conf.write_text(
        f"rocommunity {COMMUNITY} 127.0.0.1\nsysName bench-switch\nsysLocation lab\n"
        f'createUser {V3["user"]} SHA "{V3["auth"]}" AES "{V3["priv"]}"\nrouser {V3["user"]} priv\n'
    )
    # snmpd rewrites its persistent file on exit: keep it away from the config it reads
    persistent = home / "snmpd-state"
    persistent.mkdir()
    env = dict(os.environ, MIBS="", SNMPCONFPATH=str(home), SNMP_PERSISTENT_DIR=str(persistent))
    ports = ",".join(f"udp:127.0.0.1:{BASE_PORT + i}" for i in range(devices))
    snmpd = procs.start(
        ["snmpd", "-f", "-Lf", str(home / "snmpd.log"), "-C", "-c", str(conf), ports], env
    )
    probe = [
        "snmpget",
        "-v2c",
        "-c",
        COMMUNITY,
        "-t",
        "0.3",
        "-r",
        "0",
        "-On",
        f"127.0.0.1:{BASE_PORT + devices - 1}",
        "1.3.6.1.2.1.1.3.0",
    ]
    wait_until(
        lambda: subprocess.run(probe, env=env, capture_output=True, timeout=5).returncode == 0,
        "snmpd",
    )
    return snmpd.pid, env


def bulkwalk_args(version: str, port: int, root: str) -> list[str]:
    if version == "2c":
        auth = ["-v2c", "-c", COMMUNITY]
    else:
        auth = [
            "-v3",
            "-l",
            "authPriv",
            "-u",
            V3["user"],
            "-a",
            "SHA",
            "-A",
            V3["auth"],
            "-x",
            "AES",
            "-X",
            V3["priv"],
        ]
    return ["snmpbulkwalk", *auth, "-Cr25", "-On", f"127.0.0.1:{port}", root]


def bench_bulkwalk(
    env: dict[str, str], snmpd: int, devices: int, concurrency: int, version: str
) -> Result:
    """One snmpbulkwalk process per walk, two walks per device (ifTable group, ifXTable)."""
    jobs = [bulkwalk_args(version, BASE_PORT + i, root) for i in range(devices) for root in WALKS]

    def walk(argv: list[str]) -> int:
        return subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, timeout=30).returncode

    before, server0 = resource.getrusage(resource.RUSAGE_CHILDREN), cpu_seconds(snmpd)
    started = time.monotonic()
    with ThreadPoolExecutor(concurrency) as pool:
        failed = sum(1 for rc in pool.map(walk, jobs) if rc)
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    polls = devices - failed  # a failed walk spoils its device's poll
    return row(
        f"snmpbulkwalk v{version}",
        cpu,
        polls,
        wall,
        after.ru_maxrss / 1024,
        cpu_seconds(snmpd) - server0,
        extra={"failed": failed},
    )


def row(
    client: str,
    cpu: float,
    polls: int,
    wall: float,
    rss: float,
    server_cpu: float,
    extra: Result | None = None,
) -> Result:
    polls = max(polls, 1)
    return {
        "client": client,
        "cpu_ms_per_poll": 1000 * cpu / polls,
        "devices_per_s": polls / wall,
        "peak_rss_mib": rss,
        "snmpd_ms_per_poll": 1000 * server_cpu / polls,
        "polls": polls,
        **(extra or {}),
    }


def exporter_config(path: Path) -> None:
    """snmp_exporter 0.21 modules (auth inside the module) built from our own profiles."""
    shipped = profiles.available_profiles()
    system, if_mib = shipped["system"], shipped["if_mib"]
    metrics = []
    for profile in (system, if_mib):
        for m in profile.metrics:
            out: Result = {"name": m.name, "oid": m.oid, "type": m.type, "help": m.help}
            if m.indexes:
                out["indexes"] = [{"labelname": i, "type": "gauge"} for i in m.indexes]
                out["lookups"] = [
                    {
                        "labels": m.indexes,
                        "labelname": if_mib.lookups[n].labelname,
                        "oid": if_mib.lookups[n].oid,
                        "type": "DisplayString",
                    }
                    for n in m.lookups
                ]
            if m.enum_values:
                out["enum_values"] = m.enum_values
            metrics.append(out)
    base = {
        "walk": list(WALKS),
        "get": [str(o) for o in profiles.all_gets([system, if_mib])],
        "metrics": metrics,
        "max_repetitions": 25,
        "retries": 1,
        "timeout": "2s",
    }
    v3_auth = {
        "username": V3["user"],
        "security_level": "authPriv",
        "password": V3["auth"],
        "auth_protocol": "SHA",
        "priv_protocol": "AES",
        "priv_password": V3["priv"],
    }
    modules = {
        "if_mib": {**base, "version": 2, "auth": {"community": COMMUNITY}},
        "if_mib_v3": {**base, "version": 3, "auth": v3_auth},
    }
    path.write_text(yaml.safe_dump(modules, sort_keys=False))


def bench_exporter(
    procs: Procs,
    home: Path,
    snmpd: int,
    devices: int,
    seconds: float,
    concurrency: int,
    versions: list[str],
) -> list[Result]:
    binary = shutil.which("prometheus-snmp-exporter") or shutil.which("snmp_exporter")
    if binary is None:
        raise SystemExit("snmp_exporter not found: apt-get install prometheus-snmp-exporter")
    config = home / "snmp.yml"
    exporter_config(config)
    proc = procs.start([binary, f"--config.file={config}", f"--web.listen-address={EXPORTER}"])
    try:
        wait_until(lambda: httpx.get(f"http://{EXPORTER}/").status_code == 200, "snmp_exporter")
        out = []
        for version in versions:
            module = "if_mib" if version == "2c" else "if_mib_v3"
            n = devices if version == "2c" else max(1, devices // 10)
            out.append(scrape_exporter(proc.pid, snmpd, module, n, seconds, concurrency))
        out[0]["peak_rss_mib"] = peak_rss_mib(proc.pid)  # v2c ran first: its own peak
        return out
    finally:
        procs.stop(proc)


def scrape_exporter(
    pid: int, snmpd: int, module: str, devices: int, seconds: float, concurrency: int
) -> Result:
    """Every device once to warm up, then round-robin scrapes, `concurrency` in flight."""
    urls = [
        f"http://{EXPORTER}/snmp?module={module}&target=127.0.0.1:{BASE_PORT + i}"
        for i in range(devices)
    ]
    with httpx.Client(timeout=30, limits=httpx.Limits(max_connections=concurrency)) as http:

        def scrape(url: str) -> bool:
            body = http.get(url).text
            return "ifHCInOctets{" in body and "snmp_scrape_duration_seconds" in body

        with ThreadPoolExecutor(concurrency) as pool:
            warm = sum(pool.map(scrape, urls))
            if warm != devices:
                raise SystemExit(f"snmp_exporter {module}: {devices - warm} devices failed")
            cpu0, server0, started = cpu_seconds(pid), cpu_seconds(snmpd), time.monotonic()
            ok = failed = 0
            for start in range(0, 10**6, devices):  # whole rounds, bounded in count and time
                batch = [urls[(start + i) % devices] for i in range(devices)]
                results = list(pool.map(scrape, batch))
                ok, failed = ok + sum(results), failed + len(results) - sum(results)
                if time.monotonic() - started >= seconds:
                    break
            wall = time.monotonic() - started
    return row(
        f"snmp_exporter {module}",
        cpu_seconds(pid) - cpu0,
        ok,
        wall,
        peak_rss_mib(pid),
        cpu_seconds(snmpd) - server0,
        extra={"failed": failed, "devices": devices},
    )


def agent_config(
    home: Path, devices: int, interval: float, concurrency: int, version: str, process: bool
) -> Path:
    credential: Result = {"version": "2c", "community": COMMUNITY}
    if version == "3":
        credential = {
            "version": 3,
            "user": V3["user"],
            "auth_protocol": "sha",
            "auth_key": V3["auth"],
            "priv_protocol": "aes",
            "priv_key": V3["priv"],
        }
    collectors = tuple(CollectorsSection.model_fields)
    config = {
        "agent": {"state_dir": str(home / "state"), "listen": AGENT, "log": {"level": "error"}},
        "collectors": {name: {"enabled": False} for name in collectors},
        "evaluation": {"interval": "5s"},
        "snmp": {
            "process": process,
            "credentials": {"bench": credential},
            "defaults": {
                "interval": f"{interval}s",
                "timeout": "2s",
                "retries": 1,
                "concurrency": concurrency,
                "max_repetitions": 25,
            },
            "targets": [
                {
                    "name": f"sw{i:03d}",
                    "address": "127.0.0.1",
                    "port": BASE_PORT + i,
                    "credentials": "bench",
                    "profiles": ["system", "if_mib"],
                }
                for i in range(devices)
            ],
        },
    }
    path = home / f"agent-{version}-{devices}-{'process' if process else 'inline'}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


class AgentView:
    """The few lines of the agent's /metrics the benchmark needs, found without a full parse."""

    def __init__(self, body: str, latency: float) -> None:
        self.latency, self.size = latency, len(body)
        self.series = self.up = 0
        self.pdus = self.round_at = self.duration = 0.0
        for line in body.splitlines():
            if not line or line[0] == "#":
                continue
            self.series += 1
            if line.startswith("opswatch_snmp_"):
                name, value = line.split("{", 1)[0], float(line.rsplit(" ", 1)[1])
                self.up += int(name == "opswatch_snmp_up" and value == 1)
                self.pdus += value if name == "opswatch_snmp_pdus_total" else 0
            elif line.startswith(
                'opswatch_collector_last_success_timestamp_seconds{collector="snmp'
            ):
                self.round_at = float(line.rsplit(" ", 1)[1])
            elif line.startswith('opswatch_collector_duration_seconds{collector="snmp'):
                self.duration = float(line.rsplit(" ", 1)[1])


class Agent:
    """One `opswatch run` process polling `devices` snmpd ports every `interval` seconds."""

    def __init__(
        self,
        procs: Procs,
        home: Path,
        devices: int,
        interval: float,
        version: str,
        concurrency: int,
        process: bool = True,
    ) -> None:
        self.procs, self.devices, self.interval = procs, devices, interval
        config = agent_config(home, devices, interval, concurrency, version, process)
        opswatch = str(Path(sys.executable).parent / "opswatch")
        self.proc = procs.start([opswatch, "run", "-c", str(config)])
        self.http = httpx.Client(timeout=60)
        wait_until(
            lambda: self.http.get(f"http://{AGENT}/-/ready").status_code == 200,
            "opswatch agent",
            timeout=60 + 2 * interval,
        )

    def scrape(self, part: str = "all") -> AgentView:
        started = time.monotonic()
        body = self.http.get(f"http://{AGENT}/metrics", params={"part": part}).text
        return AgentView(body, time.monotonic() - started)

    def scrape_before_next_round(self, after: float) -> AgentView:
        """One whole scrape at 70% of an interval after a round's start: that round is done.

        The round's start and whether it is done are read from the agent's own part of the
        page (`?part=agent`: without the SNMP poller process' page, which is written anew for
        each scrape), so every round is scraped whole exactly once, as Prometheus scrapes
        snmp_exporter once a device a round. On shared cores a round can run past 70%: the
        probe is then repeated every 0.1 s until a newer round shows (at most another half
        interval).
        """
        view = self.scrape("agent")
        phase = view.round_at % self.interval
        at = after - (after - phase) % self.interval + 0.7 * self.interval
        at += self.interval if at < after else 0.0
        time.sleep(max(0.0, at - time.time()))
        view = self.scrape("agent")
        start = at - 0.7 * self.interval  # of the round this scrape is for
        for _ in range(int(5 * self.interval)):
            if view.round_at >= start - 0.25 * self.interval:
                break
            time.sleep(0.1)
            view = self.scrape("agent")
        return self.scrape()

    def close(self) -> None:
        self.http.close()
        self.procs.stop(self.proc)


def calibrate(procs: Procs, home: Path, devices: int, version: str, concurrency: int) -> float:
    """An interval twice one round's wall time (cold, so generous); polls never hit deadlines."""
    agent = Agent(procs, home, devices, max(10.0, devices * 0.5), version, concurrency)
    try:
        duration = agent.scrape().duration
    finally:
        agent.close()
    return max(1.0, round(2 * duration + 0.5))


def bench_agent(
    procs: Procs,
    home: Path,
    snmpd: int,
    devices: int,
    rounds: int,
    interval: float,
    concurrency: int,
    version: str,
    process: bool = True,
) -> Result:
    """CPU between two scrapes `rounds` poll rounds apart, each round scraped once.

    CPU is the agent's and its SNMP poller process'; peak RSS the poller process' (the
    agent's own in `agent_peak_rss_mib`), or the agent's when it polls in-process.
    """
    agent = Agent(procs, home, devices, interval, version, concurrency, process)
    try:
        first = agent.scrape_before_next_round(time.time() + interval)  # one settling round
        pid = agent.proc.pid
        cpu0, server0, started = tree_cpu_seconds(pid), cpu_seconds(snmpd), time.monotonic()
        agent0 = cpu_seconds(pid)
        views = [first]
        for _ in range(rounds):
            views.append(agent.scrape_before_next_round(time.time()))
        cpu, wall = tree_cpu_seconds(pid) - cpu0, time.monotonic() - started
        agent_cpu = cpu_seconds(pid) - agent0
        server = cpu_seconds(snmpd) - server0
        rss_end = psutil.Process(pid).memory_info().rss / MiB
        child = poller_pid(pid)
        agent_peak = peak_rss_mib(pid)
        peak = peak_rss_mib(child) if child is not None else agent_peak
    finally:
        agent.close()
    last = views[-1]
    done = round((last.round_at - first.round_at) / interval) if devices else 0
    polls = sum(v.up for v in views[1:]) if done == len(views) - 1 else 0  # one view a round
    durations = [v.duration for v in views if v.duration]
    latencies = [v.latency for v in views[1:]]
    extra = {
        "devices": devices,
        "interval_s": interval,
        "rounds": done,
        "up": last.up,
        "cpu_ms_per_s": 1000 * cpu / wall,
        "pdus_per_poll": (last.pdus - first.pdus) / max(polls, 1),
        "devices_per_s_in_round": devices / statistics.median(durations) if durations else 0.0,
        "series": last.series,
        "body_mib": last.size / MiB,
        "scrape_ms_median": 1000 * statistics.median(latencies),
        "scrape_ms_max": 1000 * max(latencies),
        "rss_end_mib": rss_end,
        "agent_peak_rss_mib": agent_peak,
        "agent_cpu_ms_per_poll": 1000 * agent_cpu / max(polls, 1),
        "poller_process": child is not None,
    }
    name = f"opswatch v{version}" if devices else "opswatch, no targets"
    name += "" if process or not devices else ", in-agent"
    out = row(name, cpu, polls, wall, peak, server, extra)
    if devices:  # within a round is what it can do; the interval is only what we asked for
        out["devices_per_s"] = extra["devices_per_s_in_round"]
    return out


def bench_render(devices: int, repeat: int = 3) -> Result:
    """The agent's /metrics for `devices` polled switches, rendered in this process.

    One real poll round gives the pre-rendered lines, as the agent's poller writes them; then,
    as the agent does, every publish hands the exporter the latest lines and samples of each
    collector. Timed: the first render after a publish that brought a new SNMP round, and
    after one that only changed a small batch (a host collector or a rule cycle, which in the
    agent publish several times per SNMP round).
    """
    shipped = profiles.available_profiles()
    targets = [
        PollTarget(
            f"sw{i:03d}",
            "127.0.0.1",
            (shipped["system"], shipped["if_mib"]),
            port=BASE_PORT + i,
            community=COMMUNITY,
        )
        for i in range(devices)
    ]
    poller = SnmpPoller(targets, concurrency=32)
    poller.pre_render(())
    poller.collect(time.time())
    time.sleep(1.0)
    polled = poller.collect(time.time())  # the second round has rates and utilisation too
    texts = poller.texts
    meta = {m.name: m for m in poller.describe()}
    latest = {"snmp": polled, "agent": [sample("opswatch_series", 0.0, time.time())]}
    exporter = MetricsExporter(process_metrics=False)

    def publish_and_render(batch: str) -> float:
        nonlocal texts
        latest[batch] = [Sample(s.name, s.labels, s.value + 1, s.timestamp) for s in latest[batch]]
        if batch == "snmp":  # a new round: every fragment a new object
            texts = {f: [(t + b" ")[:-1] for t in lines] for f, lines in texts.items()}
        samples = [s for b in latest.values() for s in b]
        exporter.publish(Snapshot(samples, meta, texts=texts))
        started = time.process_time()
        exporter.render()
        return 1000 * (time.process_time() - started)

    new_snmp = [publish_and_render("snmp") for _ in range(repeat)]
    other = [publish_and_render("agent") for _ in range(repeat)]
    return {
        "client": "opswatch /metrics render",
        "devices": devices,
        "series": sum(t.count(b"\n") for lines in texts.values() for t in lines) + len(polled),
        "render_ms_new_snmp_batch": statistics.median(new_snmp),
        "render_ms_other_batch": statistics.median(other),
    }


def run_inside(args: argparse.Namespace) -> list[Result]:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        procs = Procs(Path(args.inside), home)
        try:
            snmpd, env = start_snmpd(procs, home, args.devices)
            versions = ["2c"] if args.no_v3 else ["2c", "3"]
            sizes = {"2c": args.devices, "3": max(1, args.devices // 10)}
            out = [bench_bulkwalk(env, snmpd, sizes[v], args.concurrency, v) for v in versions]
            out += bench_exporter(
                procs, home, snmpd, args.devices, args.seconds, args.concurrency, versions
            )
            out.append(bench_render(args.devices))
            out.append(bench_agent(procs, home, snmpd, 0, 2, 2.0, 1, "2c"))
            for v in versions:
                interval = args.interval or calibrate(procs, home, sizes[v], v, args.concurrency)
                out.append(
                    bench_agent(
                        procs, home, snmpd, sizes[v], args.rounds, interval, args.concurrency, v
                    )
                )
                if v == "2c":  # snmp_exporter again right after: the ratio brackets the agent
                    [again] = bench_exporter(
                        procs, home, snmpd, args.devices, args.seconds, args.concurrency, ["2c"]
                    )
                    out.append(again | {"client": "snmp_exporter if_mib, after"})
            if args.in_agent:  # the same v2c poll inside the agent (snmp.process: false)
                interval = args.interval or calibrate(
                    procs, home, args.devices, "2c", args.concurrency
                )
                out.append(
                    bench_agent(
                        procs, home, snmpd, args.devices, args.rounds, interval,
                        args.concurrency, "2c", process=False,
                    )
                )  # fmt: skip
            return out
        finally:
            procs.stop_all()


def reference(by: dict[str, Result]) -> Result | None:
    """snmp_exporter's v2c figures, averaged over its windows before and after the agent's.

    The host's other load drifts over minutes; measuring the reference on both sides of the
    agent's window keeps that drift out of the ratio. Each window is a new snmp_exporter
    process, so each has a peak RSS of its own: the mean of the two is the reference too.
    """
    runs = [r for r in (by.get("snmp_exporter if_mib"), by.get("snmp_exporter if_mib, after")) if r]
    if not runs:
        return None
    keys = ("cpu_ms_per_poll", "devices_per_s", "peak_rss_mib")
    return {k: statistics.mean(r[k] for r in runs) for k in keys}


def print_table(results: list[Result]) -> None:
    print(
        f"{'client':<28}{'CPU ms/poll':>12}{'devices/s':>11}{'peak RSS MiB':>14}"
        f"{'snmpd ms/poll':>15}{'polls':>7}"
    )
    for r in results:
        if r["client"] == "opswatch /metrics render":
            continue
        if r["client"] == "opswatch, no targets":
            print(f"{r['client']:<28}{'-':>12}{'-':>11}{r['peak_rss_mib']:>14.1f}")
            continue
        print(
            f"{r['client']:<28}{r['cpu_ms_per_poll']:>12.2f}{r['devices_per_s']:>11.1f}"
            f"{r['peak_rss_mib']:>14.1f}{r['snmpd_ms_per_poll']:>15.2f}{r['polls']:>7}"
        )
    by = {r["client"]: r for r in results}
    ours, theirs = by.get("opswatch v2c"), reference(by)
    if ours and theirs:
        print(
            "opswatch v2c / snmp_exporter v2c (mean of its runs before and after): "
            f"CPU per poll {ours['cpu_ms_per_poll'] / theirs['cpu_ms_per_poll']:.2f}x, "
            f"devices/s {ours['devices_per_s'] / theirs['devices_per_s']:.2f}x, "
            f"peak RSS {ours['peak_rss_mib'] / theirs['peak_rss_mib']:.2f}x"
        )
    for r in results:
        if r["client"].startswith("opswatch") and "rounds" in r:
            print(
                f"{r['client']}: {r['devices']} devices every {r['interval_s']:g}s, "
                f"{r['rounds']} rounds measured, {r['up']} up, {r['pdus_per_poll']:.0f} PDUs/poll, "
                f"{r['cpu_ms_per_s']:.0f} ms CPU/s; /metrics {r['series']} series "
                f"{r['body_mib']:.1f} MiB in {r['scrape_ms_median']:.0f} ms "
                f"(max {r['scrape_ms_max']:.0f}); agent peak RSS {r['agent_peak_rss_mib']:.0f} MiB"
                f", agent CPU {r['agent_cpu_ms_per_poll']:.2f} ms/poll"
                + (", the poller process' in the table" if r["poller_process"] else "")
            )
        if r["client"] == "opswatch /metrics render":
            print(
                f"{r['client']}: {r['devices']} devices, {r['series']} series; CPU ms of the"
                f" first render after a publish with a new SNMP batch"
                f" {r['render_ms_new_snmp_batch']:.0f}, with only another batch changed"
                f" {r['render_ms_other_batch']:.0f}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=100, help="snmpd ports polled (v2c)")
    parser.add_argument(
        "--seconds", type=float, default=15, help="measured window of snmp_exporter"
    )
    parser.add_argument("--concurrency", type=int, default=32, help="devices in flight")
    parser.add_argument("--rounds", type=int, default=3, help="agent poll rounds measured")
    parser.add_argument(
        "--interval",
        type=float,
        default=0.0,
        help="agent poll interval; default: twice a calibration round's time",
    )
    parser.add_argument("--no-v3", action="store_true", help="skip the v3 authPriv runs")
    parser.add_argument(
        "--in-agent", action="store_true", help="also poll v2c inside the agent (no process)"
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--inside", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inside:
        json.dump(run_inside(args), sys.stdout)
        return
    if os.geteuid() != 0:
        raise SystemExit("needs root for ip netns")
    results = run_outside(sys.argv[1:])
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print_table(results)


if __name__ == "__main__":
    main()
