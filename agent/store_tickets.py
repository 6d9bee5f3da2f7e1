"""Tickets of the local desk and their history in the state store.

At most one ticket per fingerprint is open (a partial unique index enforces it for every
writer); every change appends a ticket_events row in the same transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, and_, func, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from agent import store_tables as t
from agent.errors import ConflictError, NotFoundError
from agent.model import Level, Priority, Ticket, TicketEvent, TicketState
from agent.store_base import StoreBase

_TK = t.tickets.c
_EV = t.ticket_events.c


@dataclass(frozen=True, slots=True)
class NewTicket:
    """A ticket about to be opened."""

    agent: str
    fingerprint: str
    rule: str
    title: str
    body: str
    priority: Priority
    level: Level
    host: str
    activation: float
    """The alert's `starts_at`: a later firing of the same alert counts as an occurrence."""
    response_due: float
    resolution_due: float
    previous_id: int | None = None


class TicketsMixin(StoreBase):
    """Tickets: open, occurrences, events, resolution."""

    def open_ticket(self, new: NewTicket, now: float, text: str = "opened") -> Ticket:
        """Open a ticket; ConflictError if its fingerprint already has an open one."""
        values = {
            "agent": new.agent, "fingerprint": new.fingerprint, "rule": new.rule,
            "title": new.title, "body": new.body, "priority": new.priority.value,
            "level": new.level.value, "state": TicketState.OPEN.value, "host": new.host,
            "opened_at": now, "response_due": new.response_due,
            "resolution_due": new.resolution_due, "activation": new.activation,
            "occurrences": 1, "previous_id": new.previous_id,
        }  # fmt: skip
        with self._tx() as conn:
            ticket_id = self._insert_ignore(conn, t.tickets, values)
            if ticket_id is None:
                raise ConflictError(f"fingerprint {new.fingerprint} already has an open ticket")
            self._event(conn, ticket_id, "opened", text, now)
            return self._load_ticket(conn, ticket_id)

    def add_occurrence(
        self, ticket_id: int, activation: float, text: str, now: float
    ) -> Ticket | None:
        """Count a new firing on an open ticket; None if this activation was already counted."""
        where = and_(_TK.id == ticket_id, _open(), _TK.activation != activation)
        values = {"activation": activation, "occurrences": _TK.occurrences + 1}
        return self._change(where, values, "occurrence", text, now, ticket_id)

    def add_ticket_event(
        self, ticket_id: int, kind: str, text: str, now: float, *, level: Level | None = None
    ) -> Ticket:
        """Append a history line (a run update, a level change) to a ticket."""
        with self._tx() as conn:
            if level is not None:
                conn.execute(update(t.tickets).where(_TK.id == ticket_id).values(level=level.value))
            self._event(conn, ticket_id, kind, text, now)
            return self._load_ticket(conn, ticket_id)

    def resolve_ticket(self, ticket_id: int, resolution: str, now: float) -> Ticket:
        """open → resolved with a resolution text; ConflictError if it is not open."""
        where = and_(_TK.id == ticket_id, _open())
        values = {"state": TicketState.RESOLVED.value, "resolved_at": now, "resolution": resolution}
        ticket = self._change(where, values, "resolved", resolution, now, ticket_id)
        if ticket is None:
            raise ConflictError(f"ticket #{ticket_id} is not open")
        return ticket

    def get_ticket(self, ticket_id: int) -> Ticket | None:
        """The ticket with its full history, or None."""
        with self._tx() as conn:
            return self._find_ticket(conn, ticket_id)

    def list_tickets(
        self, state: TicketState | None = None, limit: int = 100, *, agent: str | None = None
    ) -> list[Ticket]:
        """Tickets with their history, newest first."""
        query = select(t.tickets).order_by(_TK.id.desc()).limit(limit)
        if state is not None:
            query = query.where(_TK.state == state.value)
        if agent is not None:
            query = query.where(_TK.agent == agent)
        with self._tx() as conn:
            rows = list(conn.execute(query))
            history = self._history(conn, [r._mapping["id"] for r in rows])
        return [_ticket(row, history.get(row._mapping["id"], ())) for row in rows]

    def ticket_for_fingerprint(self, fingerprint: str, open_only: bool = True) -> Ticket | None:
        """The open ticket of a fingerprint (or, with open_only=False, its latest ticket)."""
        query = select(_TK.id).where(_TK.fingerprint == fingerprint).order_by(_TK.id.desc())
        if open_only:
            query = query.where(_open())
        with self._tx() as conn:
            ticket_id = conn.execute(query.limit(1)).scalar()
            return self._find_ticket(conn, ticket_id) if ticket_id is not None else None

    def ticket_level(self, ticket_id: int) -> Level | None:
        """The alert level a ticket last recorded (to notice escalations), or None."""
        with self._tx() as conn:
            level = conn.execute(select(_TK.level).where(_TK.id == ticket_id)).scalar()
        return Level(level) if level is not None else None

    def open_ticket_counts(self, agent: str | None = None) -> dict[Priority, int]:
        """Open tickets per priority (every priority present, zero included), for metrics."""
        query = select(_TK.priority, func.count()).where(_open()).group_by(_TK.priority)
        if agent is not None:
            query = query.where(_TK.agent == agent)
        counts = dict.fromkeys(Priority, 0)
        with self._tx() as conn:
            for priority, count in conn.execute(query):
                counts[Priority(priority)] = count
        return counts

    # -- internals -------------------------------------------------------------------------

    def _change(
        self, where: ColumnElement[bool], values: dict[str, Any], kind: str, text: str,
        now: float, ticket_id: int,
    ) -> Ticket | None:  # fmt: skip
        with self._tx() as conn:
            stmt = update(t.tickets).where(where).values(**values).returning(_TK.id)
            if conn.execute(stmt).first() is None:
                if self._find_ticket(conn, ticket_id) is None:
                    raise NotFoundError(f"no ticket #{ticket_id}")
                return None
            self._event(conn, ticket_id, kind, text, now)
            return self._load_ticket(conn, ticket_id)

    def _event(self, conn: Connection, ticket_id: int, kind: str, text: str, now: float) -> None:
        values = {"ticket_id": ticket_id, "at": now, "kind": kind, "text": text}
        conn.execute(insert(t.ticket_events).values(**values))

    def _history(self, conn: Connection, ids: Iterable[int]) -> dict[int, tuple[TicketEvent, ...]]:
        found: dict[int, list[TicketEvent]] = {}
        query = select(t.ticket_events).where(_EV.ticket_id.in_(list(ids))).order_by(_EV.id)
        for row in conn.execute(query):
            m = row._mapping
            found.setdefault(m["ticket_id"], []).append(TicketEvent(m["at"], m["kind"], m["text"]))
        return {key: tuple(events) for key, events in found.items()}

    def _find_ticket(self, conn: Connection, ticket_id: int) -> Ticket | None:
        row = conn.execute(select(t.tickets).where(_TK.id == ticket_id)).first()
        if row is None:
            return None
        return _ticket(row, self._history(conn, [ticket_id]).get(ticket_id, ()))

    def _load_ticket(self, conn: Connection, ticket_id: int) -> Ticket:
        ticket = self._find_ticket(conn, ticket_id)
        if ticket is None:
            raise NotFoundError(f"no ticket #{ticket_id}")
        return ticket


def _open() -> ColumnElement[bool]:
    return _TK.state == TicketState.OPEN.value


def _ticket(row: Row[Any], history: tuple[TicketEvent, ...]) -> Ticket:
    m = row._mapping
    return Ticket(
        id=m["id"], fingerprint=m["fingerprint"], rule=m["rule"], title=m["title"],
        body=m["body"], priority=Priority(m["priority"]), state=TicketState(m["state"]),
        host=m["host"], opened_at=m["opened_at"], response_due=m["response_due"],
        resolution_due=m["resolution_due"], occurrences=m["occurrences"],
        external_id=m["external_id"], assignee=m["assignee"], resolved_at=m["resolved_at"],
        resolution=m["resolution"], history=history,
    )  # fmt: skip
