"""A Celery worker keeps its database connection from one django-ciba task to the next, as
``CONN_MAX_AGE`` says, instead of Celery's default of closing it after every task (a new
connection, and a new PostgreSQL backend process, per delivery). Real parts: the example project
(``CELERY_DB_REUSE_MAX`` set, ``CONN_MAX_AGE`` 60 s), a prefork worker on Redis, PostgreSQL.
"""

from __future__ import annotations

import time

import psycopg
import pytest
import requests


pytestmark = pytest.mark.integration

SESSION = requests.Session()
SESSION.trust_env = False
APPLICATION_NAME = "ciba-it-worker"


@pytest.fixture
def op(served_project):
    project = served_project
    project.env["CIBA_EXAMPLE_CONN_MAX_AGE"] = "60"
    project.migrate()
    project.create_user("ada", "ada@example.com", "pw")
    project.start_web()
    # Only the worker's connections carry this name (the environment is copied when it starts).
    url = project.env["DATABASE_URL"]
    project.env["DATABASE_URL"] = f"{url}{'&' if '?' in url else '?'}application_name={APPLICATION_NAME}"
    project.start_worker(concurrency=1, beat=False)
    project.env["DATABASE_URL"] = url
    return project


def worker_backends(db) -> set[tuple[int, object]]:
    rows = db.execute(
        "SELECT pid, backend_start FROM pg_stat_activity WHERE application_name = %s", (APPLICATION_NAME,)
    ).fetchall()
    return {(pid, started) for pid, started in rows}


def delivered(db) -> int:
    return db.execute("SELECT count(*) FROM django_ciba_delivery WHERE status = 'delivered'").fetchone()[0]


def wait_delivered(db, count: int, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while delivered(db) < count:
        assert time.monotonic() < end, f"{delivered(db)} of {count} device notifications delivered"
        time.sleep(0.1)


def test_the_worker_reuses_its_database_connection_between_deliveries(op):
    client = op.create_client("--name", "teller", "--mode", "poll", "--scope", "openid")
    with psycopg.connect(op.database_url, autocommit=True) as db:

        def start() -> None:
            response = SESSION.post(
                f"{op.issuer}/bc-authorize",
                data={"scope": "openid", "login_hint": "ada"},
                auth=(client["client_id"], client["client_secret"]),
                timeout=15,
            )
            assert response.status_code == 200, response.text

        start()
        wait_delivered(db, 1)
        first = worker_backends(db)
        assert len(first) == 1, first  # the pool's process holds its connection after its task

        for _ in range(10):
            start()
        wait_delivered(db, 11)
        assert worker_backends(db) == first  # the same backend process served all eleven
