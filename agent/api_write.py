"""The mutating half of the HTTP API: events, silences and run decisions, each behind a role.

Every call needs `Authorization: Bearer <token>` naming a token from `api.tokens`; the token's
name is the author of what it does (a body cannot claim to be someone else). No token: 401.
A token whose role is too small: 403. Bodies are validated; label values are data.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from agent.api import authenticate, to_json
from agent.config import ApiToken, parse_duration
from agent.errors import ConflictError, NotFoundError, StoreError
from agent.model import Event, RemediationRun, make_labels
from agent.risk_config import SilenceConfig

MAX_BODY = 256 * 1024
_LABEL = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MAX_SKEW = 86_400.0
"""An event's own timestamp may differ from ours by at most a day."""
Text = Annotated[str, Field(max_length=1024)]


class Writes(Protocol):
    """What the write endpoints change: the agent's event queue, silences and runs."""

    def on_event(self, event: Event) -> None: ...

    def add_silence(self, silence: SilenceConfig, now: float) -> SilenceConfig: ...

    def expire_silence(self, silence_id: str, actor: str, now: float) -> SilenceConfig: ...

    def list_silences(self, now: float | None = None) -> list[SilenceConfig]: ...

    def approve(self, run_id: str, actor: str, now: float) -> RemediationRun: ...

    def reject(self, run_id: str, actor: str, reason: str, now: float) -> RemediationRun: ...


class EventIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z_][A-Za-z0-9_.:-]*$")
    labels: dict[str, Text] = Field(default_factory=dict, max_length=64)
    fields: dict[str, Text] = Field(default_factory=dict, max_length=256)
    timestamp: float | None = Field(default=None, ge=0, allow_inf_nan=False)


class SilenceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    matchers: list[str] = Field(min_length=1, max_length=32)
    duration: str = "2h"
    """From starts_at (default now), unless ends_at or recurring is given."""
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    recurring: list[dict[str, Any]] = Field(default_factory=list, max_length=16)
    """Weekly windows: {weekdays: [mon, ...], start: "02:00", end: "04:00", time_zone}."""
    comment: str = Field(min_length=1, max_length=1024)


class DecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str | None = Field(default=None, max_length=1024)


async def _body(request: Request, model: type[Any]) -> Any:
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise HTTPException(413, f"body over {MAX_BODY} bytes")
    try:
        data = json.loads(raw or b"{}")
        if isinstance(data, list) and model is EventIn:
            return [model.model_validate(item) for item in data]
        return model.model_validate(data)
    except (ValueError, ValidationError) as exc:
        raise HTTPException(422, _why(exc)) from None


def _why(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
    return f"not valid JSON: {exc}"


def _event(given: EventIn, source: str, now: float) -> Event:
    # fullmatch: `$` would let "name\n" through, and that breaks the exposition format.
    bad = [k for k in given.labels if not _LABEL.fullmatch(k) or k.startswith("__")]
    if bad:
        shown = ", ".join(sorted(repr(k) for k in bad))
        raise HTTPException(422, f"label names must be identifiers not starting '__': {shown}")
    if given.timestamp is not None and abs(given.timestamp - now) > MAX_SKEW:
        raise HTTPException(422, "timestamp: more than a day away from the agent's clock")
    return Event(given.name, make_labels(given.labels), make_labels(given.fields),
                 given.timestamp or now, source)  # fmt: skip


def write_routes(
    tokens: Sequence[ApiToken],
    writes: Writes,
    max_events: int,
    clock: Callable[[], float] = time.time,
) -> list[Route]:
    """The routes that change state."""

    async def post_events(request: Request) -> Response:
        token = authenticate(request, tokens, "events")
        body = await _body(request, EventIn)
        given = body if isinstance(body, list) else [body]
        if len(given) > max_events:
            raise HTTPException(413, f"at most {max_events} events per request")
        now = clock()
        for event in [_event(e, f"webhook:{token.name}", now) for e in given]:
            writes.on_event(event)
        return JSONResponse({"accepted": len(given)}, status_code=202)

    async def post_silence(request: Request) -> Response:
        token = authenticate(request, tokens, "operator")
        body: SilenceIn = await _body(request, SilenceIn)
        now = clock()
        try:
            starts = body.starts_at or datetime.fromtimestamp(now, UTC)
            ends = body.ends_at
            if ends is None and not body.recurring:
                ends = starts + timedelta(seconds=parse_duration(body.duration))
            silence = SilenceConfig.model_validate({
                "matchers": body.matchers, "comment": body.comment, "author": token.name,
                "starts_at": starts, "ends_at": ends, "recurring": body.recurring,
            })  # fmt: skip
        except (ValidationError, ValueError) as exc:
            raise HTTPException(422, _why(exc)) from None
        stored = await run_in_threadpool(writes.add_silence, silence, now)
        return JSONResponse(stored.model_dump(mode="json"), status_code=201)

    async def delete_silence(request: Request) -> Response:
        token = authenticate(request, tokens, "operator")
        silence_id = request.path_params["silence_id"]
        try:
            done = await run_in_threadpool(writes.expire_silence, silence_id, token.name, clock())
        except NotFoundError as exc:
            raise HTTPException(404, str(exc)) from None
        except StoreError:
            raise HTTPException(503, "the state store is unavailable; try again") from None
        return JSONResponse(done.model_dump(mode="json"))

    async def get_silences(request: Request) -> Response:
        if tokens:
            authenticate(request, tokens, "viewer")
        found = await run_in_threadpool(writes.list_silences, clock())
        return JSONResponse([s.model_dump(mode="json") for s in found])

    async def decide(request: Request) -> Response:
        token = authenticate(request, tokens, "operator")
        body: DecisionIn = await _body(request, DecisionIn)
        run_id, verb = request.path_params["run_id"], request.path_params["verb"]
        if verb not in ("approve", "reject"):
            raise HTTPException(404, f"no action {verb}; approve or reject")
        if verb == "reject" and not body.reason:
            raise HTTPException(422, "reason: a rejection needs a reason")
        try:
            if verb == "approve":
                run = await run_in_threadpool(writes.approve, run_id, token.name, clock())
            else:
                reason = body.reason or ""
                run = await run_in_threadpool(writes.reject, run_id, token.name, reason, clock())
        except ConflictError as exc:
            raise HTTPException(409, str(exc)) from None
        except NotFoundError as exc:
            raise HTTPException(404, str(exc)) from None
        except StoreError:
            raise HTTPException(503, "the state store is unavailable; try again") from None
        return JSONResponse(to_json(run))

    return [
        Route("/api/v1/events", post_events, methods=["POST"]),
        Route("/api/v1/silences", get_silences, methods=["GET"]),
        Route("/api/v1/silences", post_silence, methods=["POST"]),
        Route("/api/v1/silences/{silence_id}", delete_silence, methods=["DELETE"]),
        Route("/api/v1/runs/{run_id}/{verb:str}", decide, methods=["POST"]),
    ]
