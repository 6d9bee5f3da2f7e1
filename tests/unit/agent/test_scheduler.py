"""A collector that raises or hangs becomes opswatch_collector_up 0; the others stay on time."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from agent.model import MetricMeta, Sample, sample
from agent.scheduler import CollectorRunner, every


class Fixed:
    def __init__(self, name: str, value: float, timeout: float = 1.0) -> None:
        self.name, self.value, self.interval, self.timeout = name, value, 0.05, timeout

    def describe(self) -> list[MetricMeta]:
        return []

    def collect(self, now: float) -> list[Sample]:
        return [sample("x", self.value, now, source=self.name)]


class Raising(Fixed):
    def collect(self, now: float) -> list[Sample]:
        raise OSError("cannot read /proc/meminfo")


class Hanging(Fixed):
    def __init__(self, release: threading.Event) -> None:
        super().__init__("hang", 0.0, timeout=0.2)
        self.release = release
        self.calls = 0

    def collect(self, now: float) -> list[Sample]:
        self.calls += 1
        self.release.wait(10)  # a hung NFS mount; bounded so the test process always ends
        return []


def values(samples: list[Sample]) -> dict[str, float]:
    return {s.name: s.value for s in samples}


def run(coro: object) -> list[Sample]:
    return asyncio.run(coro)  # type: ignore[arg-type]


def test_success_reports_up_and_duration() -> None:
    with ThreadPoolExecutor(4) as pool:
        out = run(CollectorRunner(Fixed("ok", 3.0), pool, clock=lambda: 1000.0).run_once())
    got = values(out)
    assert got["x"] == 3.0
    assert got["opswatch_collector_up"] == 1.0
    assert 0 <= got["opswatch_collector_duration_seconds"] < 1
    assert got["opswatch_collector_last_success_timestamp_seconds"] == 1000.0


def test_raising_collector_is_down_not_fatal() -> None:
    with ThreadPoolExecutor(4) as pool:
        out = run(CollectorRunner(Raising("bad", 0), pool).run_once())
    assert values(out) == {
        "opswatch_collector_up": 0.0,
        "opswatch_collector_duration_seconds": out[1].value,
    }
    assert out[0].labels == (("collector", "bad"),)


def test_hung_collector_times_out_and_is_not_started_twice() -> None:
    release = threading.Event()
    hanging = Hanging(release)
    pool = ThreadPoolExecutor(4)

    async def scenario() -> tuple[list[Sample], list[Sample], list[Sample], float]:
        runner, healthy = CollectorRunner(hanging, pool), CollectorRunner(Fixed("ok", 1.0), pool)
        started = time.monotonic()
        first, ok = await asyncio.gather(runner.run_once(), healthy.run_once())
        second = await runner.run_once()
        return first, ok, second, time.monotonic() - started

    try:
        first, ok, second, took = asyncio.run(scenario())
    finally:
        release.set()
        pool.shutdown(wait=True)
    assert values(first)["opswatch_collector_up"] == 0.0
    assert values(second)["opswatch_collector_up"] == 0.0
    assert values(ok)["opswatch_collector_up"] == 1.0
    assert hanging.calls == 1, "a hung collector must not pile up threads"
    assert took < 2.0


def test_every_runs_on_schedule_and_survives_a_failing_job() -> None:
    calls: list[float] = []

    async def scenario() -> None:
        stop = asyncio.Event()

        async def job() -> None:
            calls.append(time.monotonic())
            if len(calls) == 2:
                raise RuntimeError("boom")
            if len(calls) == 4:
                stop.set()

        await asyncio.wait_for(every(0.05, job, stop), timeout=5)

    asyncio.run(scenario())
    assert len(calls) == 4
    gaps = [b - a for a, b in itertools.pairwise(calls)]
    assert all(0.03 < g < 0.5 for g in gaps)


class AsyncCollector(Fixed):
    def __init__(self, name: str, delay: float, timeout: float) -> None:
        super().__init__(name, 7.0, timeout)
        self.delay = delay

    async def acollect(self, now: float) -> list[Sample]:
        await asyncio.sleep(self.delay)
        return [sample("x", self.value, now)]


def test_async_collectors_are_awaited_under_their_timeout() -> None:
    with ThreadPoolExecutor(1) as pool:
        fast = run(CollectorRunner(AsyncCollector("snmp", 0.01, 1.0), pool).run_once())
        slow = run(CollectorRunner(AsyncCollector("snmp", 5.0, 0.1), pool).run_once())
    assert values(fast)["x"] == 7.0
    assert values(fast)["opswatch_collector_up"] == 1.0
    assert values(slow)["opswatch_collector_up"] == 0.0
