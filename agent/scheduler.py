"""The asyncio side of the agent: collectors on their own intervals, each in a worker thread.

A collector that raises or hangs becomes `opswatch_collector_up{collector} 0` and a log line; the
others stay on time, because each has its own loop and a hung thread is never waited for twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from typing import Protocol

from agent.model import MetricMeta, MetricType, Sample, sample

log = logging.getLogger(__name__)

SCHEDULER_METRICS = (
    MetricMeta(
        "opswatch_collector_up", MetricType.GAUGE, "1 if the collector's last run succeeded."
    ),
    MetricMeta(
        "opswatch_collector_duration_seconds",
        MetricType.GAUGE,
        "How long the collector's last run took.",
    ),
    MetricMeta(
        "opswatch_collector_last_success_timestamp_seconds",
        MetricType.GAUGE,
        "When the collector last succeeded (Unix time).",
    ),
)


class Collector(Protocol):
    """What the scheduler needs of a collector (see collector.base for the full protocol).

    A collector may instead offer `async def acollect(now) -> list[Sample]`; the runner then
    awaits it on the event loop (under the same timeout) rather than using a thread.
    """

    name: str
    interval: float
    timeout: float

    def describe(self) -> list[MetricMeta] | tuple[MetricMeta, ...]: ...

    def collect(self, now: float) -> list[Sample]: ...


class CollectorRunner:
    """Runs one collector in an executor under its timeout and never raises."""

    def __init__(
        self, collector: Collector, executor: Executor, clock: Callable[[], float] = time.time
    ):
        self.collector = collector
        self._executor = executor
        self._clock = clock
        self._inflight: asyncio.Future[list[Sample]] | None = None
        self._last_success: float | None = None

    async def run_once(self) -> list[Sample]:
        """Collect once; the result always ends with this collector's health samples."""
        now, started = self._clock(), time.monotonic()
        name = self.collector.name
        if self._inflight is not None and not self._inflight.done():
            log.warning("collector still hung from an earlier run", extra={"collector": name})
            return self._health(now, False, time.monotonic() - started)
        acollect = getattr(self.collector, "acollect", None)
        if acollect is not None:  # a native asyncio collector (the SNMP poller): no thread
            self._inflight = asyncio.ensure_future(acollect(now))
        else:
            loop = asyncio.get_running_loop()
            self._inflight = loop.run_in_executor(self._executor, self.collector.collect, now)
        try:
            samples = await asyncio.wait_for(asyncio.shield(self._inflight), self.collector.timeout)
        except TimeoutError:
            log.error(
                "collector timed out", extra={"collector": name, "timeout": self.collector.timeout}
            )
            return self._health(now, False, time.monotonic() - started)
        except Exception as exc:
            log.error("collector failed: %s", exc, extra={"collector": name}, exc_info=exc)
            return self._health(now, False, time.monotonic() - started)
        self._last_success = now
        return [*samples, *self._health(now, True, time.monotonic() - started)]

    def _health(self, now: float, ok: bool, duration: float) -> list[Sample]:
        name = self.collector.name
        out = [
            sample("opswatch_collector_up", 1.0 if ok else 0.0, now, collector=name),
            sample("opswatch_collector_duration_seconds", duration, now, collector=name),
        ]
        if self._last_success is not None:
            out.append(
                sample(
                    "opswatch_collector_last_success_timestamp_seconds",
                    self._last_success,
                    now,
                    collector=name,
                )
            )
        return out


async def every(interval: float, job: Callable[[], Awaitable[None]], stop: asyncio.Event) -> None:
    """Run `job` every `interval` seconds until `stop` is set; missed ticks are skipped."""
    next_run = time.monotonic()
    while not stop.is_set():
        try:
            await job()
        except Exception as exc:  # a failing job is logged and retried next tick, never fatal
            log.exception("periodic job failed: %s", exc)
        next_run += interval
        now = time.monotonic()
        if next_run < now:
            next_run = now + interval - (now - next_run) % interval
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), next_run - now)
