"""The HTTP port: metrics, health, readiness and read-only JSON; nothing mutates over HTTP yet."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from agent.api import create_app
from agent.model import Alert, AlertState, Level, Priority, make_labels, sample
from agent.store import NewRun, Store
from exporters.prometheus import MetricsExporter, Snapshot

NOW = 1_700_000_000.0


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(f"sqlite:///{tmp_path / 'opswatch.db'}", agent="web1")
    s.migrate()
    return s


def client(store: Store, ready: bool = True) -> tuple[TestClient, MetricsExporter]:
    exporter = MetricsExporter(process_metrics=False)
    return TestClient(create_app(exporter, store, lambda: ready)), exporter


def test_readiness_waits_for_start_up(store: Store) -> None:
    http, _ = client(store, ready=False)
    assert http.get("/-/healthy").status_code == 200
    assert http.get("/-/ready").status_code == 503


def test_metrics_serve_the_published_snapshot(store: Store) -> None:
    http, exporter = client(store)
    exporter.publish(Snapshot(samples=[sample("node_load1", 0.5, NOW)]))
    response = http.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert "node_load1 0.5" in response.text


def test_metrics_parts_split_the_agent_from_the_poller_process_page(store: Store) -> None:
    http, exporter = client(store)
    exporter.publish(Snapshot(samples=[sample("node_load1", 0.5, NOW)]))

    async def poller_page() -> AsyncIterator[bytes]:
        yield b"# HELP ifMtu x\n# TYPE ifMtu gauge\n"
        yield b'ifMtu{target="sw1"} 1500.0\n'

    exporter.streams.append(poller_page)
    whole, agent, snmp = (http.get("/metrics" + q).text for q in ("", "?part=agent", "?part=snmp"))
    assert whole == agent + snmp
    assert "node_load1 0.5" in agent and "ifMtu" not in agent
    assert snmp == '# HELP ifMtu x\n# TYPE ifMtu gauge\nifMtu{target="sw1"} 1500.0\n'
    assert http.get("/metrics?part=everything").status_code == 400


def test_pages_of_pollers_of_two_intervals_share_each_family_header(store: Store) -> None:
    """Text format: one HELP/TYPE per family. A 30 s and a 300 s poller write the same ones."""
    http, exporter = client(store)

    def poller(target: str, mtu: str) -> Callable[[], AsyncIterator[bytes]]:
        async def page() -> AsyncIterator[bytes]:
            yield b"# HELP ifMtu x\n# TYPE ifMtu gauge\n"
            yield f'ifMtu{{target="{target}"}} {mtu}\n'.encode()
            yield b"# HELP ifSpeed \n# TYPE ifSpeed gauge\n"
            yield f'ifSpeed{{target="{target}",ifAlias="# HELP \\n"}} 1.0\n'.encode()

        return page

    exporter.streams += [poller("core", "9000.0"), poller("edge", "1500.0")]
    assert http.get("/metrics?part=snmp").text == (
        "# HELP ifMtu x\n# TYPE ifMtu gauge\n"
        'ifMtu{target="core"} 9000.0\nifMtu{target="edge"} 1500.0\n'
        "# HELP ifSpeed \n# TYPE ifSpeed gauge\n"
        'ifSpeed{target="core",ifAlias="# HELP \\n"} 1.0\n'
        'ifSpeed{target="edge",ifAlias="# HELP \\n"} 1.0\n'
    )


def test_alerts_runs_and_tickets_as_json(store: Store) -> None:
    http, exporter = client(store)
    alert = Alert(
        fingerprint="fp1", rule="DiskFull", state=AlertState.FIRING, level=Level.CRITICAL,
        labels=make_labels({"host": "web1", "mountpoint": "/"}), annotations=(), value=97.0,
        starts_at=NOW, priority=Priority.P1,
    )  # fmt: skip
    exporter.publish(Snapshot(alerts=[alert]))
    run = store.create_run(
        NewRun(fingerprint="fp1", activation=NOW, rule="DiskFull", runbook="clean_directory",
               target="web1", variables={"path": "/var/tmp"}, agent="web1", expires_at=NOW + 60),
        NOW,
    )  # fmt: skip
    assert run is not None
    (got,) = http.get("/api/v1/alerts").json()
    assert got["labels"] == {"host": "web1", "mountpoint": "/"}
    assert (got["state"], got["level"], got["priority"]) == ("firing", "critical", "P1")
    (listed,) = http.get("/api/v1/runs").json()
    assert listed["id"] == run.id and "output" not in listed
    assert http.get(f"/api/v1/runs/{run.id}").json()["variables"] == {"path": "/var/tmp"}
    assert http.get("/api/v1/runs/nope").status_code == 404
    assert http.get("/api/v1/tickets").json() == []
    assert http.get("/api/v1/tickets/7").status_code == 404


def test_nothing_mutates_over_http(store: Store) -> None:
    http, _ = client(store)
    assert http.post("/api/v1/runs/x/approve").status_code in (404, 405)
    assert http.delete("/api/v1/runs/x").status_code == 405


def test_bad_query_parameters_get_a_clear_400(store: Store) -> None:
    http, _ = client(store)
    response = http.get("/api/v1/runs?state=bogus")
    assert response.status_code == 400
    assert response.json()["detail"].startswith("state must be one of: pending_approval, approved")
    assert http.get("/api/v1/runs?limit=-1").status_code == 400
