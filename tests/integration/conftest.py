"""Integration tests: a real PostgreSQL (``scripts/with-postgres``), Redis (``scripts/with-redis``)
and, for one test, Node.js.

Outside CI a missing service skips these tests with a hint; in CI (``CI=true``) it fails them,
so a CI run can never pass by skipping its integration suite.
"""

from __future__ import annotations

import os
import shutil

import pytest
from django.db import connections


HOW_TO_RUN = (
    "Run them with: scripts/run-integration (or scripts/with-postgres .venv/bin/pytest tests/integration)."
)


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def require(condition: bool, problem: str) -> None:
    """Fail in CI, skip elsewhere, when ``condition`` does not hold."""
    if condition:
        return
    if in_ci():
        pytest.fail(f"{problem} (CI=true: integration tests are never skipped in CI)", pytrace=False)
    pytest.skip(f"{problem}. {HOW_TO_RUN}")


@pytest.fixture(autouse=True)
def _require_postgresql() -> None:
    vendor = connections["default"].vendor
    require(
        vendor == "postgresql",
        f"The integration tests need PostgreSQL (DATABASE_URL=postgres://...), not {vendor}",
    )


@pytest.fixture(scope="session")
def node_tools() -> dict[str, str]:
    """Paths of ``node`` and ``npm``; skipped (failed in CI) when either is missing."""
    node, npm = shutil.which("node"), shutil.which("npm")
    require(bool(node and npm), "The independent-client check needs Node.js and npm on PATH")
    return {"node": node or "", "npm": npm or ""}


# --- real services: the callback receiver, the Redis broker, the served example project ----------
# (tests/integration/receiver.py and services.py; imported lazily so this file's imports stay put)


@pytest.fixture
def callback_receiver(tmp_path):
    """An HTTPS receiver on 127.0.0.1 (self-signed certificate in ``.ca_file``); closed afterwards."""
    from tests.integration.receiver import CallbackReceiver

    with CallbackReceiver(tmp_path / "receiver") as receiver:
        yield receiver


@pytest.fixture
def redis_server():
    """The broker of ``scripts/with-redis``; running again (if a test stopped it) afterwards."""
    from tests.integration.services import RedisServer

    server = RedisServer.from_env()
    require(
        server is not None,
        "These tests need the Redis broker of scripts/with-redis (CIBA_TEST_REDIS_PORT is not set; "
        "scripts/with-postgres scripts/with-redis .venv/bin/pytest tests/integration also starts it)",
    )
    assert server is not None
    server.ensure_running()
    yield server
    server.ensure_running()


@pytest.fixture
def postgres_cluster():
    """The cluster of ``scripts/with-postgres`` (a test may stop and start it); running again
    afterwards, whatever happened. Request it after ``served_project`` so that it is running again
    before the project's database is dropped."""
    from tests.integration.services import PostgresCluster

    cluster = PostgresCluster.from_env()
    require(
        cluster is not None,
        "This test restarts the PostgreSQL cluster of scripts/with-postgres (CIBA_TEST_PG_DATA and "
        "CIBA_TEST_PG_BIN are not set)",
    )
    assert cluster is not None
    cluster.ensure_running()
    try:
        yield cluster
    finally:
        cluster.ensure_running()


@pytest.fixture
def served_project_factory(tmp_path, redis_server):
    """``make(**kwargs) -> ServedProject`` (see services.ServedProject), on an empty broker; every
    project made is stopped, and its database dropped, afterwards."""
    from tests.integration.services import ServedProject

    redis_server.flushall()
    projects = []

    def make(**kwargs):
        kwargs.setdefault("broker_url", redis_server.url)
        project = ServedProject(tmp_path / f"project-{len(projects) + 1}", **kwargs)
        projects.append(project)
        return project

    yield make
    errors = []
    for project in reversed(projects):
        try:
            project.stop()
        except Exception as exc:  # stop the others anyway
            errors.append(exc)
    if errors:
        raise errors[0]


@pytest.fixture
def served_project(callback_receiver, served_project_factory):
    """The example project (not migrated, nothing started yet) on a fresh database and the Redis
    broker, trusting ``callback_receiver``'s certificate (REQUESTS_CA_BUNDLE)."""
    return served_project_factory(ca_file=callback_receiver.ca_file)
