"""Peers for integration tests that several test modules share."""

from __future__ import annotations

import secrets
import shlex
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

PG_ROLE = "opswatch_test"


@dataclass(frozen=True)
class PgCluster:
    port: int
    password: str

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{PG_ROLE}:{self.password}@127.0.0.1:{self.port}/{database}"


def _psql(sql: str, port: int) -> str:
    """Run SQL as the postgres superuser over the local socket."""
    command = shlex.join(["psql", "-p", str(port), "-v", "ON_ERROR_STOP=1", "-Atqc", sql])
    done = subprocess.run(
        ["su", "postgres", "-c", command], capture_output=True, text=True, timeout=60
    )
    if done.returncode:
        raise RuntimeError(f"psql failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def _running_cluster() -> int:
    """The port of the local PostgreSQL cluster, started with pg_ctlcluster if it is down."""
    if shutil.which("pg_lsclusters") is None:
        pytest.fail("PostgreSQL is not installed (pg_lsclusters not found): install postgresql")
    rows = subprocess.run(["pg_lsclusters", "--no-header"], capture_output=True, text=True,
                          check=True).stdout.split("\n")  # fmt: skip
    version, name, port, status = rows[0].split()[:4]
    if status != "online":
        subprocess.run(["pg_ctlcluster", version, name, "start"], check=True, timeout=60)
    deadline = time.monotonic() + 30
    while True:
        try:
            _psql("SELECT 1", int(port))
            return int(port)
        except RuntimeError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


@pytest.fixture(scope="session")
def pg_cluster() -> PgCluster:
    """The local cluster with a test role (new password each session) allowed to create DBs."""
    port = _running_cluster()
    password = secrets.token_hex(16)
    exists = _psql(f"SELECT 1 FROM pg_roles WHERE rolname = '{PG_ROLE}'", port).strip()
    verb = "ALTER" if exists else "CREATE"
    _psql(f"{verb} ROLE {PG_ROLE} LOGIN CREATEDB PASSWORD '{password}'", port)
    return PgCluster(port, password)


@pytest.fixture
def postgres_url(pg_cluster: PgCluster) -> Iterator[str]:
    """A throwaway database on the local cluster, dropped after the test."""
    database = f"opswatch_test_{secrets.token_hex(6)}"
    _psql(f"CREATE DATABASE {database} OWNER {PG_ROLE}", pg_cluster.port)
    try:
        yield pg_cluster.url(database)
    finally:
        _psql(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)", pg_cluster.port)
