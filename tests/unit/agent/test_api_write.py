"""The mutating API: who may do what, what an intruder gets, and that bodies stay data."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.testclient import TestClient

from agent.api import create_app
from agent.api_write import write_routes
from agent.config import ApiToken
from agent.model import Event, RemediationRun, RunState
from agent.risk_config import SilenceConfig
from agent.store import NewRun, Store
from exporters.prometheus import MetricsExporter

NOW = 1_700_000_000.0
NOC = "noc-token-0123456789abcdef"
HOOK = "hook-token-0123456789abcdef"


class Writes:
    """The agent's side, over a real store: events are collected, runs decided in the store."""

    def __init__(self, store: Store) -> None:
        self.store, self.events = store, []  # type: ignore[var-annotated]
        self.add_silence, self.expire_silence = store.add_silence, store.expire_silence
        self.list_silences = store.list_silences

    def on_event(self, event: Event) -> None:
        self.events.append(event)

    def approve(self, run_id: str, actor: str, now: float) -> RemediationRun:
        return self.store.approve_run(run_id, actor, now)

    def reject(self, run_id: str, actor: str, reason: str, now: float) -> RemediationRun:
        return self.store.reject_run(run_id, actor, reason, now)


@pytest.fixture
def setup(tmp_path: Path) -> tuple[TestClient, Writes]:
    store = Store(f"sqlite:///{tmp_path / 'opswatch.db'}", agent="web1")
    store.migrate()
    tokens = [
        ApiToken.model_validate({"name": "noc", "role": "operator", "token": NOC}),
        ApiToken.model_validate({"name": "alertmanager", "role": "events", "token": HOOK}),
    ]
    writes = Writes(store)
    routes = write_routes(tokens, writes, max_events=3, clock=lambda: NOW)
    app = create_app(MetricsExporter(process_metrics=False), store, lambda: True, routes)
    return TestClient(app), writes


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_intruders_get_401_and_small_roles_get_403(setup: tuple[TestClient, Writes]) -> None:
    http, writes = setup
    event = {"name": "linkDown", "labels": {"target": "sw1"}}
    assert http.post("/api/v1/events", json=event).status_code == 401
    assert http.post("/api/v1/events", json=event, headers=auth("guess")).status_code == 401
    assert (
        http.post("/api/v1/events", json=event, headers={"Authorization": NOC}).status_code == 401
    )
    silence = {"matchers": ['alertname="X"'], "comment": "c"}
    denied = http.post("/api/v1/silences", json=silence, headers=auth(HOOK))
    assert denied.status_code == 403
    assert "role events" in denied.json()["detail"]
    assert writes.events == [] and writes.store.list_silences() == []


def test_events_are_queued_as_data(setup: tuple[TestClient, Writes]) -> None:
    http, writes = setup
    hostile = "{{ lookup('pipe', 'id') }}"
    body = [{"name": "linkDown", "labels": {"target": "sw1", "ifAlias": hostile}},
            {"name": "linkUp", "labels": {"target": "sw1"}, "timestamp": NOW - 5}]  # fmt: skip
    response = http.post("/api/v1/events", json=body, headers=auth(HOOK))
    assert response.status_code == 202 and response.json() == {"accepted": 2}
    first, second = writes.events
    assert (first.name, first.source, first.timestamp) == ("linkDown", "webhook:alertmanager", NOW)
    assert dict(first.labels)["ifAlias"] == hostile
    assert second.timestamp == NOW - 5


def test_bad_event_bodies_are_refused_with_the_reason(setup: tuple[TestClient, Writes]) -> None:
    http, writes = setup
    bad_label = http.post("/api/v1/events", json={"name": "x", "labels": {"a-b": "1"}},
                          headers=auth(HOOK))  # fmt: skip
    assert bad_label.status_code == 422 and "identifiers" in bad_label.json()["detail"]
    unknown = http.post("/api/v1/events", json={"name": "x", "extra": 1}, headers=auth(HOOK))
    assert unknown.status_code == 422 and "extra" in unknown.json()["detail"]
    many = http.post("/api/v1/events", json=[{"name": "x"}] * 4, headers=auth(HOOK))
    assert many.status_code == 413
    garbage = http.post("/api/v1/events", content=b"{not json", headers=auth(HOOK))
    assert garbage.status_code == 422
    assert writes.events == []


def test_silences_are_authored_by_the_token(setup: tuple[TestClient, Writes]) -> None:
    http, _ = setup
    body = {"matchers": ['alertname="DiskFull"'], "duration": "30m", "comment": "swap disk"}
    made = http.post("/api/v1/silences", json=body, headers=auth(NOC))
    assert made.status_code == 201
    silence = made.json()
    assert silence["author"] == "noc"
    assert http.get("/api/v1/silences").status_code == 401
    listed = http.get("/api/v1/silences", headers=auth(NOC)).json()
    assert [s["id"] for s in listed] == [silence["id"]]
    assert http.delete(f"/api/v1/silences/{silence['id']}").status_code == 401
    gone = http.delete(f"/api/v1/silences/{silence['id']}", headers=auth(NOC))
    assert gone.status_code == 200
    assert http.delete(f"/api/v1/silences/{silence['id']}", headers=auth(NOC)).status_code == 404
    stored = SilenceConfig.model_validate(gone.json())
    assert stored.ends_at is not None and stored.ends_at.timestamp() == NOW


def test_runs_are_approved_once_over_http(setup: tuple[TestClient, Writes]) -> None:
    http, writes = setup
    run = writes.store.create_run(
        NewRun(fingerprint="fp", activation=NOW, rule="R", runbook="clean_directory",
               target="web1", variables={}, agent="web1", expires_at=NOW + 600),
        NOW,
    )  # fmt: skip
    assert run is not None
    assert http.post(f"/api/v1/runs/{run.id}/approve", json={}).status_code == 401
    approved = http.post(f"/api/v1/runs/{run.id}/approve", json={}, headers=auth(NOC))
    assert approved.status_code == 200
    assert (approved.json()["state"], approved.json()["approved_by"]) == ("approved", "noc")
    again = http.post(f"/api/v1/runs/{run.id}/approve", json={}, headers=auth(NOC))
    assert again.status_code == 409 and "already approved" in again.json()["detail"]
    assert writes.store.get_run(run.id).state is RunState.APPROVED  # type: ignore[union-attr]
    assert http.post("/api/v1/runs/nope/approve", json={}, headers=auth(NOC)).status_code == 404
    assert http.post(f"/api/v1/runs/{run.id}/delete", json={}, headers=auth(NOC)).status_code == 404


def test_tokens_must_be_long_and_from_one_source(tmp_path: Path) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="at least 16"):
        ApiToken.model_validate({"name": "x", "role": "admin", "token": "short"})
    secret = tmp_path / "token"
    secret.write_text("from-a-file-0123456789\n")
    token = ApiToken.model_validate({"name": "x", "role": "admin", "token_file": str(secret)})
    assert token.token is not None and token.token.get_secret_value() == "from-a-file-0123456789"
    assert "from-a-file" not in repr(token)


def test_a_recurring_window_over_http(setup: tuple[TestClient, Writes]) -> None:
    http, writes = setup
    window = {"start": "01:00", "end": "03:00", "time_zone": "America/New_York"}
    body = {"matchers": ['job="backup"'], "comment": "nightly backup", "recurring": [window]}
    made = http.post("/api/v1/silences", json=body, headers=auth(NOC))
    assert made.status_code == 201, made.text
    assert made.json()["ends_at"] is None
    (stored,) = writes.store.list_silences(NOW + 10 * 86400)
    assert stored.recurring[0].time_zone == "America/New_York"
    bad = dict(body, recurring=[{"start": "25:00", "end": "03:00"}])
    assert http.post("/api/v1/silences", json=bad, headers=auth(NOC)).status_code == 422


def test_hostile_label_names_and_timestamps_are_refused(setup: tuple[TestClient, Writes]) -> None:
    http, writes = setup
    for labels in ({"x\n": "v"}, {"__name__": "evil"}):
        response = http.post("/api/v1/events", json={"name": "e", "labels": labels},
                             headers=auth(HOOK))  # fmt: skip
        assert response.status_code == 422, labels
    for stamp in ("NaN", "Infinity", "1e20", "-5"):
        body = b'{"name": "e", "timestamp": ' + stamp.encode() + b"}"
        response = http.post("/api/v1/events", content=body, headers=auth(HOOK))
        assert response.status_code == 422, stamp
    long_value = {"name": "e", "labels": {"host": "x" * 2000}}
    assert http.post("/api/v1/events", json=long_value, headers=auth(HOOK)).status_code == 422
    assert writes.events == []


def test_with_tokens_configured_reading_needs_a_token(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'opswatch.db'}", agent="web1")
    store.migrate()
    tokens = [ApiToken.model_validate({"name": "grafana", "role": "viewer", "token": NOC})]
    app = create_app(MetricsExporter(process_metrics=False), store, lambda: True, (), None, tokens)
    http = TestClient(app)
    assert http.get("/api/v1/runs").status_code == 401
    assert http.get("/api/v1/runs", headers=auth(NOC)).status_code == 200
    assert http.get("/metrics").status_code == 200, "Prometheus scrapes without a token"
    assert http.get("/api/v1/tickets/" + "9" * 30, headers=auth(NOC)).status_code == 404
    assert http.get("/api/v1/runs?limit=²", headers=auth(NOC)).status_code == 400
