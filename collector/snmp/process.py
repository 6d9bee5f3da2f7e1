"""The SNMP poller in a child process of its own, as snmp_exporter is a process of its own.

The agent pickles a configured `SnmpPoller` to the child's stdin; the child then polls when
told (`poll`), answers with the round's health and rule samples, keeps every device's series in
compact pages (`page.DevicePage`) and writes them when the agent's /metrics is scraped (`page`).
So the 200,000 series of 100 switches never enter the agent, polling runs on a core of its own,
and the child imports neither pydantic, SQLAlchemy, the HTTP server nor OpenSSL's TLS: 100
switches poll in about a third of the memory they took inside the agent (bench/snmp_poll.py).

Frames on the child's stdout: a kind byte, the 4-byte id of the request it answers, a 4-byte
length, the payload. `R` a round's result (JSON), `P` a piece of a page (exposition text), `E`
a page's end, `X` a page that failed (its scrape fails too), `L` a log record (JSON), logged
again by the agent through its own handlers (so secrets are scrubbed as everywhere else). What
comes from the child is JSON, never pickle: it handles device data. A child that dies or hangs
is killed and started again on the next round; one that outlives its agent sees its stdin end
and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import json
import logging
import pickle
import signal
import struct
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

from agent.model import MetricMeta, MetricType, Sample, make_labels, sample
from collector.snmp import page
from collector.snmp.errors import SnmpError
from collector.snmp.poller import SnmpPoller

log = logging.getLogger(__name__)

CHILD = "import sys; sys.modules['ssl'] = None; from collector.snmp.process import main; main()"
"""The child's program: `ssl` kept out of asyncio saves ~5 MiB; the poller needs no TLS."""
_HEAD = struct.Struct(">cII")  # kind, request id, payload length
_MAX_FRAME = 64 * 2**20  # the pickled poller of a few thousand targets is ~1 MiB
_PAGE_STALL = 10.0  # seconds a scrape waits for a piece, or a piece waits for its scraper
_PAGE_BUFFER = 256 * 2**20  # bytes of one page the agent holds for a scraper that reads slowly
_READ_AHEAD = 2**20  # what the agent buffers of the child's stdout: a page is read as it is sent
_LATE_ROUNDS = 2
RESTARTS = MetricMeta(
    "opswatch_snmp_poller_restarts_total",
    MetricType.COUNTER,
    "Times the SNMP poller process exited or hung and was started again.",
)  # rounds past their timeout before a child is taken for hung


async def read_frame(reader: asyncio.StreamReader) -> tuple[bytes, int, bytes]:
    """One frame: (kind, request id, payload); IncompleteReadError at the end of the stream."""
    kind, request_id, size = _HEAD.unpack(await reader.readexactly(_HEAD.size))
    if size > _MAX_FRAME:
        raise SnmpError(f"SNMP poller process: frame of {size} bytes")
    return kind, request_id, await reader.readexactly(size)


def _encode(samples: list[Sample]) -> list[Any]:
    return [[s.name, list(s.labels), s.value, s.timestamp] for s in samples]


def _decode(rows: list[Any]) -> list[Sample]:
    return [Sample(n, make_labels(dict(labels)), float(v), float(t)) for n, labels, v, t in rows]


# --- the child ------------------------------------------------------------------------------


class _Out:
    """The child's stdout as frames; every frame is one write, so frames never interleave."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer

    def send(self, kind: bytes, request_id: int, payload: bytes) -> None:
        self._writer.writelines([_HEAD.pack(kind, request_id, len(payload)), payload])

    async def drain(self) -> None:
        await self._writer.drain()


class _FrameLog(logging.Handler):
    """Sends the child's log records to the agent, which logs them as its own."""

    _PLAIN = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}

    def __init__(self, out: _Out) -> None:
        super().__init__()
        self._out = out

    def emit(self, record: logging.LogRecord) -> None:
        extra = {k: str(v) for k, v in record.__dict__.items() if k not in self._PLAIN}
        body = {"name": record.name, "level": record.levelno, "msg": record.getMessage()}
        self._out.send(b"L", 0, json.dumps(body | {"extra": extra}).encode())


def main() -> None:
    """The child's entry point (see `CHILD`): serve the agent on stdin and stdout until EOF."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the agent's to handle
    asyncio.run(_serve())


async def _serve() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=_MAX_FRAME)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    transport, protocol = await loop.connect_write_pipe(
        asyncio.streams.FlowControlMixin, sys.stdout
    )
    out = _Out(asyncio.StreamWriter(transport, protocol, None, loop))
    _, _, spec = await read_frame(reader)
    poller, level = pickle.loads(spec)  # noqa: S301 - from the agent that started us, over our pipe
    root = logging.getLogger()
    root.addHandler(_FrameLog(out))
    root.setLevel(level)
    meta = {m.name: m for m in poller.describe()}
    _tune_gc()
    busy, tasks = asyncio.Lock(), set[asyncio.Task[None]]()
    try:
        while line := await reader.readline():
            command = json.loads(line)
            if command["op"] == "poll":
                job = _round(poller, command, busy, out)
            else:
                job = _page(poller.pages or {}, meta, command["id"], out)
            task = asyncio.create_task(job)
            tasks.add(task)
            task.add_done_callback(tasks.discard)
    finally:
        poller.close()


async def _round(poller: SnmpPoller, command: Any, busy: asyncio.Lock, out: _Out) -> None:
    async with busy:  # a round the agent gave up on still ends before the next starts
        try:
            samples = await poller.acollect(float(command["now"]))
            body: dict[str, Any] = {
                "samples": _encode(samples),
                "rules": _encode(poller.rule_samples),
            }
        except Exception as exc:  # reported to the agent, which reports the collector down
            body = {"error": f"{type(exc).__name__}: {exc}"}
        out.send(b"R", command["id"], json.dumps(body).encode())
        await out.drain()


async def _page(
    pages: dict[str, page.DevicePage], meta: dict[str, MetricMeta], page_id: int, out: _Out
) -> None:
    try:  # a copy: a round that ends meanwhile replaces or drops devices' pages
        for piece in page.render(dict(pages), meta):
            out.send(b"P", page_id, piece)
            await out.drain()  # the pipe's pace: polling goes on while the agent sends the page
    except Exception as exc:  # the scrape must fail, not end as if the page were whole
        log.exception("SNMP page failed")
        out.send(b"X", page_id, f"{type(exc).__name__}: {exc}".encode())
    else:
        out.send(b"E", page_id, b"")
    await out.drain()


class _PageBuffer:
    """One scrape's pieces, as the reader receives them; the reader never waits on a scraper.

    Items are pieces, None at the end, or the error that cut the page short. A scraper that
    leaves pieces untaken for `_PAGE_STALL` seconds, or lets more than `_PAGE_BUFFER` bytes pile
    up, is abandoned: its pieces are freed and it gets an error, so the rounds and the other
    scrapes, which share the child's one pipe, never wait on it.
    """

    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes | Exception | None] = asyncio.Queue()
        self.size = 0
        self.taken = time.monotonic()  # when the scraper last took a piece

    def put(self, item: bytes | Exception | None) -> bool:
        """Queue `item`; False if the scraper was too slow and is abandoned instead."""
        if isinstance(item, bytes):
            self.size += len(item)
            idle = time.monotonic() - self.taken
            if self.size > _PAGE_BUFFER or (not self.queue.empty() and idle > _PAGE_STALL):
                self.fail(SnmpError("SNMP poller page abandoned: the scraper reads too slowly"))
                return False
        self.queue.put_nowait(item)
        return True

    def fail(self, exc: Exception) -> None:
        while not self.queue.empty():
            self.queue.get_nowait()
        self.size = 0
        self.queue.put_nowait(exc)

    async def get(self) -> bytes | Exception | None:
        item = await asyncio.wait_for(self.queue.get(), _PAGE_STALL)
        if isinstance(item, bytes):
            self.size -= len(item)
        self.taken = time.monotonic()
        return item


def _tune_gc() -> None:
    """As the agent does (`agent.runtime.tune_gc`): a round's garbage is freed by refcount."""
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(20_000, gen1, gen2)


# --- the agent's side -----------------------------------------------------------------------


class PollerProcess:
    """A collector that runs `poller` in a child process; `page()` streams its series."""

    def __init__(self, poller: SnmpPoller, log_level: int = logging.INFO) -> None:
        if poller.pages is None:
            raise ValueError("PollerProcess needs a poller with pre_render(..., pages=True)")
        self.name, self.interval, self.timeout = poller.name, poller.interval, poller.timeout
        self.rule_samples: list[Sample] = []
        """The samples rules read, of the last round: the child's page exports them."""
        self.restarts = 0
        self._spec = pickle.dumps((poller, log_level))
        self._families = (*poller.describe(), RESTARTS)
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._doomed = False  # signalled: waits to be reaped and replaced
        self._rounds: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._pages: dict[int, _PageBuffer] = {}  # the scrapes reading the child's page
        self._ids = itertools.count(1)
        self._late = 0

    @property
    def pid(self) -> int | None:
        """The child's pid while it serves."""
        return self._proc.pid if self._proc is not None and self._serving() else None

    def _serving(self) -> bool:
        proc, reader = self._proc, self._reader
        alive = proc is not None and proc.returncode is None and not self._doomed
        return alive and reader is not None and not reader.done()

    def describe(self) -> tuple[MetricMeta, ...]:
        """The poller's families: its page's and the health samples it returns."""
        return self._families

    def collect(self, now: float) -> list[Sample]:
        """Blocking form for callers without a loop: one round in a child started for it."""
        return asyncio.run(self._once(now))

    async def _once(self, now: float) -> list[Sample]:
        try:
            return await self.acollect(now)
        finally:
            await self.aclose()

    async def acollect(self, now: float) -> list[Sample]:
        """One round in the child: its health samples; rule samples in `rule_samples`."""
        proc = await self._running()
        request_id = next(self._ids)
        answer = self._rounds[request_id] = asyncio.get_running_loop().create_future()
        self._send(proc, {"op": "poll", "now": now, "id": request_id})
        try:
            result = await asyncio.wait_for(answer, self.timeout)
        except TimeoutError:
            self._late += 1
            if self._late >= _LATE_ROUNDS:
                log.error("SNMP poller process hung: restarting it", extra={"pid": proc.pid})
                self._kill()
            raise SnmpError(f"SNMP poller process: no answer within {self.timeout:g}s") from None
        finally:
            self._rounds.pop(request_id, None)
        self._late = 0
        if "error" in result:
            raise SnmpError(f"SNMP poller process: {result['error']}")
        self.rule_samples = _decode(result["rules"])
        restarts = sample(RESTARTS.name, float(self.restarts), now, collector=self.name)
        return [*_decode(result["samples"]), restarts]

    async def page(self) -> AsyncIterator[bytes]:
        """The child's page in pieces; nothing if it is not running.

        Raises SnmpError if the page is cut short (the child died or stalled, or this scraper
        read too slowly), so the HTTP response is aborted rather than ended as if whole.
        """
        proc, pages = self._proc, self._pages
        if proc is None or not self._serving():
            return
        page_id = next(self._ids)
        buffer = pages[page_id] = _PageBuffer()
        try:
            self._send(proc, {"op": "page", "id": page_id})
            while (piece := await buffer.get()) is not None:
                if isinstance(piece, Exception):
                    raise piece
                yield piece
        except TimeoutError:
            raise SnmpError(f"SNMP poller page: no piece for {_PAGE_STALL:g}s") from None
        finally:
            pages.pop(page_id, None)  # what the child still sends of it is dropped

    def close(self) -> None:
        """Stop the child (SIGTERM; SIGKILL from `aclose` if it lingers)."""
        self._kill(signal.SIGTERM)

    async def aclose(self) -> None:
        """Stop the child and wait for it, by its pid."""
        proc = self._proc
        self.close()
        if proc is not None:
            try:
                await asyncio.wait_for(proc.wait(), 5)
            except TimeoutError:
                self._kill()
                await proc.wait()

    async def _running(self) -> asyncio.subprocess.Process:
        proc = self._proc
        if proc is not None and self._serving():
            return proc
        if proc is not None:
            if not self._doomed:  # its stdout ended: let asyncio reap it, for its real status
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(proc.wait(), 1)
            self._kill()
            await proc.wait()  # reaped by its pid before another starts
            self.restarts += 1
            log.warning(
                "SNMP poller process exited: starting it again",
                extra={"pid": proc.pid, "returncode": proc.returncode},
            )
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-I", "-c", CHILD,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=_READ_AHEAD,
        )  # fmt: skip
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(_HEAD.pack(b"S", 0, len(self._spec)) + self._spec)
        self._proc, self._late, self._doomed = proc, 0, False
        self._rounds, self._pages = {}, {}
        self._reader = asyncio.create_task(self._read(proc.stdout, self._rounds, self._pages))
        log.info("SNMP poller process started", extra={"pid": proc.pid, "collector": self.name})
        return proc

    def _send(self, proc: asyncio.subprocess.Process, command: dict[str, Any]) -> None:
        if proc.stdin is None or proc.stdin.is_closing():
            raise SnmpError("SNMP poller process is not running")
        proc.stdin.write(json.dumps(command).encode() + b"\n")

    async def _read(
        self,
        stdout: asyncio.StreamReader,
        rounds: dict[int, asyncio.Future[dict[str, Any]]],
        pages: dict[int, _PageBuffer],
    ) -> None:
        """Dispatch the child's frames until its stdout ends; then fail what waits on it."""
        try:
            while True:
                self._dispatch(*await read_frame(stdout), rounds, pages)
        except (asyncio.IncompleteReadError, SnmpError, ValueError, KeyError) as exc:
            if not isinstance(exc, asyncio.IncompleteReadError):
                log.error("SNMP poller process sent garbage: %s", exc)
                self._kill()
        finally:
            for answer in rounds.values():
                if not answer.done():
                    answer.set_exception(SnmpError("SNMP poller process exited"))
            for buffer in pages.values():
                buffer.fail(SnmpError("SNMP poller process exited in the middle of a page"))

    def _dispatch(
        self,
        kind: bytes,
        request_id: int,
        payload: bytes,
        rounds: dict[int, asyncio.Future[dict[str, Any]]],
        pages: dict[int, _PageBuffer],
    ) -> None:
        if kind == b"R":
            answer = rounds.get(request_id)
            if answer is not None and not answer.done():
                answer.set_result(json.loads(payload))
        elif kind in (b"P", b"E", b"X"):
            buffer = pages.get(request_id)
            if buffer is None:
                return  # a scrape that went away: the rest of its page is dropped
            if kind == b"E":
                buffer.put(None)
            elif kind == b"X":
                reason = payload.decode(errors="replace")
                buffer.put(SnmpError(f"SNMP poller page failed: {reason}"))
            elif not buffer.put(payload):
                del pages[request_id]
        elif kind == b"L":
            record = json.loads(payload)
            child = logging.getLogger(record["name"])
            if child.isEnabledFor(record["level"]):
                child.log(record["level"], "%s", record["msg"], extra=record["extra"])

    def _kill(self, sig: int = signal.SIGKILL) -> None:
        proc = self._proc
        if proc is not None and proc.returncode is None:
            self._doomed = True
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(sig)
