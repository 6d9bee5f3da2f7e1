"""Silences made from the CLI or the API: stored so every agent of a fleet honours them."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Row, delete, insert, select, update

from agent import store_tables as t
from agent.errors import NotFoundError
from agent.risk_config import SilenceConfig, format_matcher
from agent.store_base import AuditEntry, StoreBase


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


def _silence(row: Row[Any]) -> SilenceConfig:
    m = row._mapping
    ends = None if math.isinf(m["ends_at"]) else _iso(m["ends_at"])
    return SilenceConfig.model_validate({
        "id": m["id"], "matchers": m["matchers"], "starts_at": _iso(m["starts_at"]),
        "ends_at": ends, "author": m["author"], "comment": m["comment"],
        "recurring": m["recurring"] or [],
    })  # fmt: skip


class SilencesMixin(StoreBase):
    """Add, list and expire stored silences; every change is audit-logged with its author."""

    def add_silence(self, silence: SilenceConfig, now: float) -> SilenceConfig:
        """Store an ad hoc silence or a recurring maintenance window (audit-logged)."""
        starts = silence.starts_at.timestamp() if silence.starts_at else now
        ends = silence.ends_at.timestamp() if silence.ends_at else math.inf
        recurring = [w.model_dump(mode="json") for w in silence.recurring]
        values = {
            "id": silence.id, "matchers": [format_matcher(m) for m in silence.matchers],
            "starts_at": starts, "ends_at": ends, "author": silence.author,
            "comment": silence.comment, "created_at": now, "recurring": recurring,
        }  # fmt: skip
        detail = {k: values[k] for k in ("matchers", "starts_at", "comment", "recurring")}
        detail["ends_at"] = None if math.isinf(ends) else ends
        with self._tx() as conn:
            conn.execute(delete(t.silences).where(t.silences.c.id == silence.id))
            conn.execute(insert(t.silences).values(**values))
            entry = AuditEntry(now, silence.author, "silence.add", f"silence/{silence.id}", detail)
            self._audit_row(conn, entry)
        self._log_audit(entry)
        return _silence(self._one_silence(silence.id))

    def list_silences(self, now: float | None = None) -> list[SilenceConfig]:
        """Stored silences, newest first; with `now`, only those not yet ended."""
        query = select(t.silences).order_by(t.silences.c.created_at.desc())
        if now is not None:
            query = query.where(t.silences.c.ends_at > now)
        with self.engine.connect() as conn:
            return [_silence(row) for row in conn.execute(query)]

    def expire_silence(self, silence_id: str, actor: str, now: float) -> SilenceConfig:
        """End a silence now (audit-logged); StoreError if there is no such silence."""
        with self._tx() as conn:
            live = t.silences.c.id == silence_id, t.silences.c.ends_at > now
            starts = conn.execute(select(t.silences.c.starts_at).where(*live)).scalar()
            if starts is None:
                raise NotFoundError(f"no active silence {silence_id}")
            # A silence ended the instant it began still needs ends_at after starts_at.
            conn.execute(update(t.silences).where(*live).values(
                ends_at=now, starts_at=min(starts, now - 0.001)))  # fmt: skip
            entry = AuditEntry(now, actor, "silence.expire", f"silence/{silence_id}", {})
            self._audit_row(conn, entry)
        self._log_audit(entry)
        return _silence(self._one_silence(silence_id))

    def _one_silence(self, silence_id: str) -> Row[Any]:
        with self.engine.connect() as conn:
            row = conn.execute(select(t.silences).where(t.silences.c.id == silence_id)).first()
        if row is None:
            raise NotFoundError(f"no silence {silence_id}")
        return row
