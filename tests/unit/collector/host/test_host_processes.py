"""Process checks against real `sleep` processes, and restart detection from fixed process lists."""

from __future__ import annotations

import re
import subprocess
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import psutil
import pytest

from agent.config import ProcessCheck, ProcessSettings
from collector.base import Collector
from collector.host.processes import ProcessCollector, ProcInfo

if TYPE_CHECKING:
    from conftest import Readings

Run = Callable[[Collector], "Readings"]


class Sleepers:
    """Starts `sleep` processes with one unique argv and always stops them."""

    def __init__(self) -> None:
        # A fractional duration no other process on the host will have in its argv.
        self.argv = ["sleep", f"600.{uuid.uuid4().int % 10**9:09d}"]
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(self.argv)
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        proc.kill()
        proc.wait(5)  # reaped, so it is gone rather than a zombie

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                self.stop(proc)


@pytest.fixture
def sleepers() -> Iterator[Sleepers]:
    pool = Sleepers()
    yield pool
    pool.stop_all()


def check_for(sleepers: Sleepers) -> ProcessCheck:
    return ProcessCheck(name="sleeper", comm="sleep", cmdline=re.escape(" ".join(sleepers.argv)))


def test_count_up_and_oldest_start_time_of_real_processes(run: Run, sleepers: Sleepers) -> None:
    collector = ProcessCollector(ProcessSettings(watch=[check_for(sleepers)]))

    none = run(collector)
    assert none.value("opswatch_process_up", name="sleeper") == 0
    assert none.value("opswatch_process_count", name="sleeper") == 0
    assert "opswatch_process_start_time_seconds" not in none.names

    first = sleepers.start()
    sleepers.start()
    two = run(collector)
    assert two.value("opswatch_process_up", name="sleeper") == 1
    assert two.value("opswatch_process_count", name="sleeper") == 2
    assert two.value("opswatch_process_start_time_seconds", name="sleeper") == (
        psutil.Process(first.pid).create_time()
    )
    assert two.value("opswatch_process_restarts_total", name="sleeper") == 0  # a 2nd is no restart


def test_kill_and_start_again_counts_a_restart(run: Run, sleepers: Sleepers) -> None:
    collector = ProcessCollector(ProcessSettings(watch=[check_for(sleepers)]))
    old = sleepers.start()
    assert run(collector).value("opswatch_process_restarts_total", name="sleeper") == 0

    sleepers.stop(old)
    new = sleepers.start()
    after = run(collector)

    assert after.value("opswatch_process_restarts_total", name="sleeper") == 1
    assert after.value("opswatch_process_count", name="sleeper") == 1
    assert after.value("opswatch_process_start_time_seconds", name="sleeper") == (
        psutil.Process(new.pid).create_time()
    )

    sleepers.stop(new)
    down = run(collector)
    assert down.value("opswatch_process_up", name="sleeper") == 0
    assert down.value("opswatch_process_restarts_total", name="sleeper") == 1

    sleepers.start()
    back = run(collector)  # down between collections, then up again: also a restart
    assert back.value("opswatch_process_restarts_total", name="sleeper") == 2


class FixedProcesses:
    """A process source returning whatever list the test sets."""

    def __init__(self, *procs: ProcInfo) -> None:
        self.procs = list(procs)

    def __call__(self) -> list[ProcInfo]:
        return self.procs


def proc(
    pid: int, name: str = "nginx", *argv: str, user: str = "www", start: float = 100.0
) -> ProcInfo:
    return ProcInfo(pid, name, (name, *argv), user, start)


def test_comm_cmdline_and_user_must_all_match(run: Run) -> None:
    source = FixedProcesses(
        proc(10, "nginx", "-g", "daemon off;", user="root", start=50.0),
        proc(11, "nginx", user="www", start=60.0),
        proc(12, "nginx-exporter", user="www"),
        proc(13, "python3", "/usr/bin/nginx-reload.py", user="root"),
    )
    settings = ProcessSettings(
        watch=[
            ProcessCheck(name="nginx", comm="nginx"),
            ProcessCheck(name="nginx-master", comm="nginx", user="root"),
            ProcessCheck(name="reloader", cmdline=r"nginx-reload\.py$"),
            ProcessCheck(name="absent", comm="postgres"),
        ]
    )
    got = run(ProcessCollector(settings, processes=source))

    assert got.series("opswatch_process_count") == {
        (("name", "nginx"),): 2,
        (("name", "nginx-master"),): 1,
        (("name", "reloader"),): 1,
        (("name", "absent"),): 0,
    }
    assert got.value("opswatch_process_start_time_seconds", name="nginx") == 50.0
    assert got.value("opswatch_process_up", name="absent") == 0


def test_worker_churn_without_the_old_ones_vanishing_is_not_a_restart(run: Run) -> None:
    source = FixedProcesses(proc(10), proc(11))
    collector = ProcessCollector(
        ProcessSettings(watch=[ProcessCheck(name="web", comm="nginx")]), processes=source
    )
    run(collector)

    source.procs = [proc(10), proc(11), proc(12)]  # a worker added
    assert run(collector).value("opswatch_process_restarts_total", name="web") == 0
    source.procs = [proc(10)]  # workers gone, master stays
    assert run(collector).value("opswatch_process_restarts_total", name="web") == 0
    source.procs = [proc(20), proc(21)]  # every earlier process replaced
    assert run(collector).value("opswatch_process_restarts_total", name="web") == 1


def test_a_reused_pid_with_a_new_start_time_is_a_restart(run: Run) -> None:
    source = FixedProcesses(proc(10, start=100.0))
    collector = ProcessCollector(
        ProcessSettings(watch=[ProcessCheck(name="web", comm="nginx")]), processes=source
    )
    run(collector)

    source.procs = [proc(10, start=250.0)]

    assert run(collector).value("opswatch_process_restarts_total", name="web") == 1


def test_no_checks_means_no_process_scan(run: Run) -> None:
    def forbidden() -> list[ProcInfo]:
        raise AssertionError("scanned processes with nothing to watch")

    assert run(ProcessCollector(ProcessSettings(), processes=forbidden)).samples == []
