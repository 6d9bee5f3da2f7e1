"""The agent's one HTTP port: /metrics, health and readiness, and read-only JSON of its state."""

from __future__ import annotations

import dataclasses
import enum
import hmac
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import Any, Protocol, TypeVar

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from agent.config import ApiToken
from agent.model import RemediationRun, RunState, Ticket, TicketState
from agent.series import Series, SeriesView
from exporters.prometheus import CONTENT_TYPE, MetricsExporter
from exporters.text import merge_pages

E = TypeVar("E", bound=enum.Enum)
Handler = Callable[[Request], Awaitable[Response]]


class StateReader(Protocol):
    """The read side of the state store that the API serves."""

    def list_runs(
        self, state: RunState | None = None, limit: int = 100
    ) -> list[RemediationRun]: ...

    def get_run(self, run_id: str) -> RemediationRun | None: ...

    def list_tickets(self, state: TicketState | None = None) -> list[Ticket]: ...

    def get_ticket(self, ticket_id: int) -> Ticket | None: ...


def _is_label(pair: object) -> bool:
    return isinstance(pair, tuple) and len(pair) == 2 and all(isinstance(x, str) for x in pair)


def to_json(obj: Any) -> Any:
    """Dataclasses, enums and label tuples as plain JSON values."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_json(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, tuple) and obj and all(_is_label(p) for p in obj):
        return dict(obj)
    if isinstance(obj, list | tuple):
        return [to_json(x) for x in obj]
    if isinstance(obj, dict):
        return {str(k): to_json(v) for k, v in obj.items()}
    return obj


def _run_summary(run: RemediationRun) -> dict[str, Any]:
    data: dict[str, Any] = to_json(run)
    data.pop("output", None)
    return data


def _enum_param(request: Request, name: str, kind: type[E]) -> E | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    try:
        return kind(raw)
    except ValueError:
        allowed = ", ".join(str(v.value) for v in kind.__members__.values())
        raise HTTPException(400, f"{name} must be one of: {allowed}") from None


def _int_param(request: Request, name: str, default: int, most: int) -> int:
    raw = request.query_params.get(name, str(default))
    if not re.fullmatch(r"[0-9]{1,9}", raw):  # isdigit() also accepts "²"
        raise HTTPException(400, f"{name} must be a whole number")
    return min(int(raw), most)


def _text(body: str, status: int = 200) -> PlainTextResponse:
    return PlainTextResponse(body, status_code=status)


RANK = {"viewer": 0, "events": 1, "operator": 2, "admin": 3}
MAX_HISTORY_POINTS = 200_000
MAX_HISTORY_NAMES = 50


def authenticate(request: Request, tokens: Sequence[ApiToken], role: str) -> ApiToken:
    """The token of this request if it may act as `role`; 401 or 403 otherwise."""
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    found = None
    for token in tokens:  # compare with every token in constant time: no timing oracle
        secret = token.token.get_secret_value() if token.token else ""
        matched = hmac.compare_digest(secret.encode(), given.strip().encode())
        if matched and scheme.lower() == "bearer":
            found = token
    if found is None:
        raise HTTPException(401, "a valid bearer token is required")
    if RANK[found.role] < RANK[role]:
        raise HTTPException(403, f"token '{found.name}' has role {found.role}; this needs {role}")
    return found


def history_json(series: Iterable[Series], limit: int = MAX_HISTORY_POINTS) -> list[dict[str, Any]]:
    """The retained points of `series` as JSON; HTTP 413 past `limit` points."""
    out, total = [], 0
    for s in series:
        total += len(s.timestamps)
        if total > limit:
            raise HTTPException(413, f"more than {limit} points: ask for fewer metric names")
        points = [[t, v] for t, v in zip(s.timestamps, s.values, strict=True)]
        out.append({"name": s.name, "labels": dict(s.labels), "points": points})
    return out


_CHUNK = 256 * 1024
_PARTS = ("all", "agent", "snmp")


def create_app(
    exporter: MetricsExporter,
    store: StateReader,
    ready: Callable[[], bool],
    writes: Sequence[BaseRoute] = (),
    series: SeriesView | None = None,
    tokens: Sequence[ApiToken] = (),
) -> Starlette:
    """The ASGI application; `ready` says whether start-up (migrations, first cycle) is done."""

    async def metrics(request: Request) -> Response:
        # The first scrape after a poll round renders its families (~0.2 s for 100 switches):
        # in a worker thread, so the event loop keeps polling and answering meanwhile. The
        # pieces are sent as they are, with their total length: no 17 MiB join per scrape.
        # `?part=agent` leaves out the SNMP poller process' page and `?part=snmp` sends only
        # that: it is written anew for every scrape, so a job can fetch it once a poll round.
        part = request.query_params.get("part", "all")
        if part not in _PARTS:
            raise HTTPException(400, f"part must be one of {', '.join(_PARTS)}")
        parts = [] if part == "snmp" else await run_in_threadpool(exporter.render_parts)
        streams = [] if part == "agent" else exporter.streams

        async def body() -> AsyncIterator[bytes]:
            # ~4,000 pieces for 100 switches (a family's lines of one device each): sent in
            # chunks of about 256 KiB, not one write each and not one 17 MiB join.
            chunk: list[bytes] = []
            size = 0
            for part in parts:
                chunk.append(part)
                size += len(part)
                if size >= _CHUNK:
                    yield b"".join(chunk)
                    chunk, size = [], 0
            if chunk:
                yield b"".join(chunk)
            if len(streams) == 1:  # the SNMP poller process' page, as it writes it
                async for piece in streams[0]():
                    yield piece
            elif streams:  # pollers of several intervals write the same families: one header
                pages = [b"".join([piece async for piece in stream()]) for stream in streams]
                for piece in merge_pages(pages):
                    yield piece

        headers = {} if streams else {"Content-Length": str(sum(map(len, parts)))}
        return StreamingResponse(body(), media_type=CONTENT_TYPE, headers=headers)

    async def healthy(request: Request) -> Response:
        return _text("OK\n")

    async def is_ready(request: Request) -> Response:
        return _text("OK\n") if ready() else _text("starting\n", 503)

    async def alerts(request: Request) -> Response:
        return JSONResponse([to_json(a) for a in exporter.snapshot.alerts])

    async def runs(request: Request) -> Response:
        state = _enum_param(request, "state", RunState)
        limit = _int_param(request, "limit", 100, 1000)
        found = await run_in_threadpool(store.list_runs, state, limit)
        return JSONResponse([_run_summary(r) for r in found])

    async def run(request: Request) -> Response:
        run_id = request.path_params["run_id"]
        found = await run_in_threadpool(store.get_run, run_id)
        if found is None:
            raise HTTPException(404, f"no run {run_id}")
        return JSONResponse(to_json(found))

    async def tickets(request: Request) -> Response:
        state = _enum_param(request, "state", TicketState)
        found = await run_in_threadpool(store.list_tickets, state)
        return JSONResponse([to_json(t) for t in found])

    async def ticket(request: Request) -> Response:
        if request.path_params["ticket_id"] >= 2**62:  # larger than any id a database holds
            raise HTTPException(404, f"no ticket {request.path_params['ticket_id']}")
        found = await run_in_threadpool(store.get_ticket, request.path_params["ticket_id"])
        if found is None:
            raise HTTPException(404, f"no ticket {request.path_params['ticket_id']}")
        return JSONResponse(to_json(found))

    async def history(request: Request) -> Response:
        names = [n for n in request.query_params.get("names", "").split(",") if n]
        if not names or len(names) > MAX_HISTORY_NAMES:
            raise HTTPException(400, f"names=metric[,metric...] (1 to {MAX_HISTORY_NAMES})")
        if series is None:
            raise HTTPException(404, "this process keeps no history")
        return JSONResponse(history_json(s for n in names for s in series.select(n, ())))

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)

    def viewer(handler: Handler) -> Handler:
        """With tokens configured, reading the JSON API needs at least the viewer role."""

        async def guarded(request: Request) -> Response:
            if tokens:
                authenticate(request, tokens, "viewer")
            return await handler(request)

        return guarded

    routes = [
        Route("/metrics", metrics),
        Route("/-/healthy", healthy),
        Route("/-/ready", is_ready),
        Route("/api/v1/alerts", viewer(alerts)),
        Route("/api/v1/runs", viewer(runs)),
        Route("/api/v1/runs/{run_id}", viewer(run)),
        Route("/api/v1/tickets", viewer(tickets)),
        Route("/api/v1/tickets/{ticket_id:int}", viewer(ticket)),
        Route("/api/v1/history", viewer(history)),
        *writes,
    ]
    return Starlette(routes=routes, exception_handlers={HTTPException: http_error})
