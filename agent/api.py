"""The agent's one HTTP port: /metrics, health and readiness, and read-only JSON of its state."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from fastapi import FastAPI, HTTPException, Response

from agent.model import Alert, RemediationRun, RunState, Ticket, TicketState
from exporters.prometheus import CONTENT_TYPE, MetricsExporter


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


def create_app(exporter: MetricsExporter, store: StateReader, ready: Callable[[], bool]) -> FastAPI:
    """The FastAPI application; `ready` says whether start-up (migrations, first cycle) is done."""
    app = FastAPI(title="OpsWatch agent", version="1", docs_url=None, redoc_url=None)

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(exporter.render(), media_type=CONTENT_TYPE)

    @app.get("/-/healthy")
    def healthy() -> Response:
        return Response("OK\n", media_type="text/plain")

    @app.get("/-/ready")
    def is_ready() -> Response:
        if not ready():
            return Response("starting\n", status_code=503, media_type="text/plain")
        return Response("OK\n", media_type="text/plain")

    @app.get("/api/v1/alerts")
    def alerts() -> list[dict[str, Any]]:
        current: Sequence[Alert] = exporter.snapshot.alerts
        return [to_json(a) for a in current]

    @app.get("/api/v1/runs")
    def runs(state: RunState | None = None, limit: int = 100) -> list[dict[str, Any]]:
        return [_run_summary(r) for r in store.list_runs(state=state, limit=min(limit, 1000))]

    @app.get("/api/v1/runs/{run_id}")
    def run(run_id: str) -> dict[str, Any]:
        found = store.get_run(run_id)
        if found is None:
            raise HTTPException(404, f"no run {run_id}")
        result: dict[str, Any] = to_json(found)
        return result

    @app.get("/api/v1/tickets")
    def tickets(state: TicketState | None = None) -> list[dict[str, Any]]:
        return [to_json(t) for t in store.list_tickets(state=state)]

    @app.get("/api/v1/tickets/{ticket_id}")
    def ticket(ticket_id: int) -> dict[str, Any]:
        found = store.get_ticket(ticket_id)
        if found is None:
            raise HTTPException(404, f"no ticket {ticket_id}")
        result: dict[str, Any] = to_json(found)
        return result

    return app
