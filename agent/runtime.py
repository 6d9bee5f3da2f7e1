"""The composition root: wires config, collectors, rules, store, remediation and the HTTP port.

Data flows one way: collectors → series → rules → alerts → (store, runs, tickets) → snapshot.
Blocking work (collectors, the database, ansible-runner) runs in worker threads; the event loop
only schedules.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gc
import logging
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import uvicorn

import runbooks
from agent.api import create_app
from agent.api_write import write_routes
from agent.config import AgentConfig
from agent.events import EventStatus
from agent.model import Alert, AlertState, Event, MetricMeta, MetricType, Sample, sample
from agent.pipeline import CycleState, Pipeline
from agent.risk_config import SilenceConfig
from agent.rules import status_from_alert
from agent.scheduler import SCHEDULER_METRICS, Collector, CollectorRunner, every
from agent.series import SeriesStore
from agent.store import Store
from collector.host import build_host_collectors
from collector.snmp.poller import SnmpPoller, build_snmp_collectors
from collector.snmp.process import PollerProcess
from exporters.prometheus import MetricsExporter, Snapshot
from remediation.runbook import RunbookExecutor
from remediation.runs import RunService
from remediation.tickets.local import LocalDesk

if TYPE_CHECKING:
    from collector.snmp.traps import TrapReceiver

log = logging.getLogger(__name__)
REMEDIATION_POLL = 5.0
"""Seconds between looks for approved runs (an approval may come from another process)."""
MAX_PENDING_EVENTS = 10_000
"""Events queued between two rule cycles; a trap storm beyond this drops the oldest."""

AGENT_METRICS = (
    MetricMeta(
        "opswatch_rule_evaluation_duration_seconds", MetricType.GAUGE, "Last rule evaluation time."
    ),
    MetricMeta("opswatch_series", MetricType.GAUGE, "Series held in memory for window functions."),
    MetricMeta("opswatch_events_dropped_total", MetricType.COUNTER, "Events dropped: queue full."),
    MetricMeta(
        "opswatch_event_alerts_capped_total",
        MetricType.COUNTER,
        "Matching events that opened no alert: their event rule was at its max_alerts.",
    ),
    MetricMeta(
        "opswatch_action_errors_total", MetricType.COUNTER, "Alerts whose run/ticket step failed."
    ),
    MetricMeta(
        "opswatch_state_store_up", MetricType.GAUGE, "1 if the last state store write succeeded."
    ),
)


def run_service(config: AgentConfig, store: Store) -> RunService:
    """The run lifecycle service for this config (also used by `opswatch runs approve`)."""
    runbooks_dir = config.remediation.runbooks_dir or runbooks.default_dir()
    executor = RunbookExecutor(
        runbooks_dir, dict(config.remediation.runbooks), config.agent.state_dir / "runs"
    )
    return RunService(store, executor, config.remediation, config.agent.name)


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the agent owns SIGTERM/SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _trap_receiver(config: AgentConfig, sink: Callable[[Event], None]) -> TrapReceiver | None:
    if not config.traps.enabled:
        return None
    from collector.snmp.traps import TrapReceiver  # late: its USM crypto only when receiving

    return TrapReceiver(config.traps, sink)


class _Writes:
    """What the write API changes, gathered from the agent, its store and its run service."""

    def __init__(self, agent: Agent) -> None:
        self.on_event = agent.on_event
        self.add_silence = agent.store.add_silence
        self.expire_silence = agent.store.expire_silence
        self.list_silences = agent.store.list_silences
        self.approve = agent.runs.approve
        self.reject = agent.runs.reject


class Agent:
    """One agent process: its loops, its state and its HTTP port."""

    def __init__(self, config: AgentConfig, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.clock = clock
        config.agent.state_dir.mkdir(parents=True, exist_ok=True)
        self.store = Store(config.database_url, agent=config.agent.name)
        self.series = SeriesStore(config.evaluation.retention)
        self.pipeline = Pipeline(config, {"host": config.agent.name})
        self.actions = {r.name: r.actions for r in config.rules}
        self.actions.update((r.name, r.actions) for r in config.event_rules)
        self.executor = ThreadPoolExecutor(max_workers=32, thread_name_prefix="opswatch")
        pollers = build_snmp_collectors(config.snmp)
        for poller in pollers:  # its 2,000 series a switch as exposition lines, not samples
            poller.pre_render(self.pipeline.metric_names, pages=config.snmp.process)
        level = logging.getLogger().getEffectiveLevel()
        self.snmp: list[SnmpPoller | PollerProcess] = [
            PollerProcess(p, level) if config.snmp.process else p for p in pollers
        ]
        collectors: list[Collector] = [*build_host_collectors(config.collectors), *self.snmp]
        self.runners = [CollectorRunner(c, self.executor, clock) for c in collectors]
        self.meta = {m.name: m for m in (*SCHEDULER_METRICS, *AGENT_METRICS)}
        for runner in self.runners:
            self.meta.update((m.name, m) for m in runner.collector.describe())
        self.traps = _trap_receiver(config, self.on_event)
        if self.traps is not None:
            self.meta.update((m.name, m) for m in self.traps.describe())
        self.exporter = MetricsExporter()
        self.exporter.streams += [p.page for p in self.snmp if isinstance(p, PollerProcess)]
        self.runs = run_service(config, self.store)
        self.desk = LocalDesk(self.store, config.risk.priorities, config.agent.name)
        self.latest: dict[str, list[Sample]] = {}
        self.texts: dict[str, dict[str, list[bytes]]] = {}
        """Pre-rendered exposition lines by collector, then family (see `SnmpPoller.texts`)."""
        self.cycle_state = CycleState()
        self.alerts: list[Alert] = []
        self.stored_silences: list[SilenceConfig] = []
        self.events: collections.deque[Event] = collections.deque(maxlen=MAX_PENDING_EVENTS)
        self.events_dropped = 0
        self.event_alerts_capped: collections.Counter[str] = collections.Counter()
        self.action_errors = 0
        self.counts: tuple[dict[tuple[str, str], int], dict[Any, int]] = ({}, {})
        self.ready = False
        self.stop = asyncio.Event()

    async def run(self) -> None:
        """Start up, then run every loop until SIGTERM or SIGINT."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop.set)
        await self._start()
        tune_gc()
        if self.traps is not None:
            host, port = await self.traps.start()
            log.info("trap receiver listening", extra={"listen": f"{host}:{port}"})
        server = self._server()
        tasks = [asyncio.create_task(self._collect_loop(r)) for r in self.runners]
        tasks += [
            asyncio.create_task(self._evaluate_loop()),
            asyncio.create_task(every(REMEDIATION_POLL, self.remediate_once, self.stop)),
            asyncio.create_task(server.serve()),
        ]
        log.info(
            "agent started",
            extra={"listen": self.config.agent.listen, "rules": len(self.pipeline.rules)},
        )
        await self.stop.wait()
        server.should_exit = True
        if self.traps is not None:
            self.traps.close()
        await asyncio.wait(tasks, timeout=10)
        for task in tasks:
            task.cancel()
        for poller in self.snmp:
            if isinstance(poller, PollerProcess):
                await poller.aclose()
            else:
                poller.close()
        self.executor.shutdown(wait=False, cancel_futures=True)
        log.info("agent stopped")

    async def _start(self) -> None:
        """Migrate, mark interrupted runs, restore alert state: a restart repeats nothing."""
        await asyncio.to_thread(self.store.migrate)
        now = self.clock()
        for run in await asyncio.to_thread(self.runs.recover, now):
            log.warning(
                "run was interrupted by a restart", extra={"run": run.id, "runbook": run.runbook}
            )
        restored = await asyncio.to_thread(self.store.active_alerts, self.config.agent.name)
        event_rules = {r.name for r in self.config.event_rules}
        self.cycle_state = CycleState(
            {a.fingerprint: status_from_alert(a) for a in restored if a.rule not in event_rules},
            events={
                a.fingerprint: EventStatus.restored(a) for a in restored if a.rule in event_rules
            },
        )
        # Stored silences apply from the first cycle; afterwards each cycle re-reads them.
        self.stored_silences = await asyncio.to_thread(self.store.list_silences, now)
        await asyncio.to_thread(self._refresh_counts)

    def _server(self) -> _Server:
        api = self.config.api
        writes = write_routes(api.tokens, _Writes(self), api.max_events_per_request, self.clock)
        app = create_app(
            self.exporter, self.store, lambda: self.ready, writes, self.series, api.tokens
        )
        cfg = self.config.agent
        return _Server(
            uvicorn.Config(
                app,
                host=cfg.listen_host,
                port=cfg.listen_port,
                log_config=None,
                access_log=False,
                lifespan="off",
            )
        )

    async def _collect_loop(self, runner: CollectorRunner) -> None:
        async def job() -> None:
            samples = await runner.run_once()
            name = runner.collector.name
            self.latest[name] = samples
            # Only what rules read is kept as history: a switch's 2,000 interface series
            # would otherwise sit in memory for the whole retention window.
            wanted = self.pipeline.metric_names
            self.series.add(s for s in samples if s.name in wanted)
            texts = getattr(runner.collector, "texts", None)
            if texts is not None:  # a collector that pre-renders (the SNMP poller)
                self.texts[name] = texts
            # what the rules read of the series that a poller exports itself, as lines or pages
            self.series.add(getattr(runner.collector, "rule_samples", ()))
            self.publish()

        await every(runner.collector.interval, job, self.stop)

    async def _evaluate_loop(self) -> None:
        # The first cycle waits for every collector's first run (each bounded by its timeout):
        # evaluating an empty series store would resolve every alert restored after a restart.
        first = max((r.collector.timeout for r in self.runners), default=0.0) + 1.0
        deadline = time.monotonic() + first
        while len(self.latest) < len(self.runners) and time.monotonic() < deadline:
            if self.stop.is_set():
                return
            await asyncio.sleep(0.05)
        await every(self.config.evaluation.interval, self.evaluate_once, self.stop)

    async def evaluate_once(self) -> None:
        """One rule cycle: evaluate (pure), then persist and act in a worker thread."""
        now = self.clock()
        started = time.monotonic()
        self.series.prune(now)
        happened = list(self.events)
        cycle = self.pipeline.run(
            self.series, now, self.cycle_state, self.stored_silences, happened
        )
        for _ in happened:  # only now: a failing cycle keeps its events for the next one
            self.events.popleft()
        self.cycle_state = cycle.state
        self.alerts = cycle.alerts
        for rule, count in cycle.capped.items():
            self.event_alerts_capped[rule] += count
            log.warning(
                "event rule at its max_alerts: %d matching events opened no alert", count,
                extra={"rule": rule},
            )  # fmt: skip
        took = time.monotonic() - started
        if self.traps is not None:
            self.latest["traps"] = self.traps.samples(now)
        self.latest["agent"] = [
            sample("opswatch_rule_evaluation_duration_seconds", took, now),
            sample("opswatch_series", len(self.series), now),
            sample("opswatch_events_dropped_total", self.events_dropped, now),
            *(
                sample("opswatch_event_alerts_capped_total", float(n), now, rule=rule)
                for rule, n in sorted(self.event_alerts_capped.items())
            ),
            sample("opswatch_action_errors_total", self.action_errors, now),
            sample("opswatch_state_store_up", 1.0 if await self._act(now) else 0.0, now),
        ]
        self.ready = True
        self.publish()

    async def _act(self, now: float) -> bool:
        try:
            await asyncio.to_thread(self._act_sync, list(self.alerts), now)
        except Exception as exc:  # the database being down is data, not a crash; next cycle retries
            log.error("acting on alerts failed: %s", exc, exc_info=exc)
            return False
        return True

    def _act_sync(self, alerts: Sequence[Alert], now: float) -> None:
        self.store.save_alerts(alerts, now)
        for alert in alerts:
            try:
                self._act_on(alert, now)
            except Exception as exc:  # one bad alert must not hold up every other one
                self.action_errors += 1
                log.error("acting on an alert failed: %s", exc, exc_info=exc,
                          extra={"rule": alert.rule, "fingerprint": alert.fingerprint})  # fmt: skip
        cleared = {a.fingerprint for a in alerts if a.state is AlertState.RESOLVED}
        for run in self.runs.expire(now, cleared):
            self.desk.on_run_update(run, now)
        still = {a.fingerprint for a in alerts if a.state is AlertState.FIRING}
        for run in self.runs.verify(still, now):
            self.desk.on_run_update(run, now)
        # Level-triggered: a clear this agent missed (the database was down that cycle) is
        # caught up here, so no ticket stays open for a fault that is gone.
        self.desk.reconcile(
            {a.fingerprint for a in alerts if a.state is not AlertState.RESOLVED}, now
        )
        self.stored_silences = self.store.list_silences(now)
        self._refresh_counts()

    def _act_on(self, alert: Alert, now: float) -> None:
        firing = alert.state is AlertState.FIRING
        actions = self.actions.get(alert.rule)
        if actions is None or (firing and alert.suppressed):
            # A rule removed from agent.yaml (reconcile resolves its ticket), or a silenced or
            # inhibited alert: evaluated and exported, but no run and no ticket.
            return
        run = self.runs.on_alert(alert, actions, now) if firing else None
        self.desk.on_alert(alert, actions, run, now)

    def _refresh_counts(self) -> None:
        self.counts = (self.store.run_counts(), self.store.open_ticket_counts())

    async def remediate_once(self) -> None:
        """Execute approved runs of this agent, one at a time, off the event loop."""
        done = await asyncio.to_thread(self.runs.execute_pending, self.clock())
        for run in done:
            await asyncio.to_thread(self.desk.on_run_update, run, self.clock())
        if done:
            await asyncio.to_thread(self._refresh_counts)
            self.publish()

    def on_event(self, event: Event) -> None:
        """Queue an event (a trap, a webhook call) for the next rule cycle; never blocks."""
        if len(self.events) == self.events.maxlen:
            self.events_dropped += 1  # a storm: the oldest goes, and the loss is counted
        self.events.append(event)

    def publish(self) -> None:
        samples = [s for batch in self.latest.values() for s in batch]
        texts: dict[str, list[bytes]] = {}
        for page in self.texts.values():
            for family, lines in page.items():
                texts.setdefault(family, []).extend(lines)
        runs, tickets = self.counts
        self.exporter.publish(
            Snapshot(samples, self.meta, tuple(self.alerts), runs, tickets, texts)
        )


GC_GEN0_THRESHOLD = 20_000


def tune_gc() -> None:
    """Collect cyclic garbage less often, and never scan what start-up built.

    A poll round of 100 switches allocates ~400,000 short-lived objects (varbinds, OIDs, lines)
    that reference counting frees; at CPython's default of a gen-0 pass every 700 allocations,
    the passes cost ~15% of the poller's CPU (bench/snmp_poll.py). `gc.freeze` moves the
    config, modules and pools built at start-up out of every later pass.
    """
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, gen1, gen2)


async def collect_once(config: AgentConfig) -> list[Sample]:
    """Every enabled collector once, concurrently (for `opswatch collect --once`)."""
    with ThreadPoolExecutor(max_workers=16) as pool:
        found: list[Collector] = [
            *build_host_collectors(config.collectors),
            *build_snmp_collectors(config.snmp),
        ]
        runners = [CollectorRunner(c, pool) for c in found]
        batches = await asyncio.gather(*(r.run_once() for r in runners))
    return [s for batch in batches for s in batch]
