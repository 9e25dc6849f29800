"""The served stack: a scratch database (PostgreSQL, or a SQLite file), ``example_project`` under
gunicorn (gthread, one worker per core, kept-alive connections; or uvicorn's ASGI worker) and, in
the production configuration, a Celery worker with beat, all as process groups of their own
(started and stopped with the integration suite's helpers)."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from example_project.database import database_from_url
from tests.integration.services import LOOPBACK, ServedProject, children, free_port, spawn, stop_group, tail


def create_database(cluster_url: str, prefix: str = "ciba_bench") -> tuple[str, str]:
    """A fresh database on the server of ``cluster_url``; returns ``(name, url)``."""
    import psycopg
    from psycopg import sql

    params = database_from_url(cluster_url, Path("unused"))
    if not params["ENGINE"].endswith("postgresql"):
        raise RuntimeError(f"the benchmark needs PostgreSQL (DATABASE_URL={cluster_url!r})")
    name = f"{prefix}_{secrets.token_hex(4)}"
    with psycopg.connect(**_connect_args(params), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    base, _, query = cluster_url.partition("?")
    url = base.rsplit("/", 1)[0] + "/" + name + (f"?{query}" if query else "")
    return name, url


def drop_database(cluster_url: str, name: str) -> None:
    import psycopg
    from psycopg import sql

    params = database_from_url(cluster_url, Path("unused"))
    with psycopg.connect(**_connect_args(params), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _connect_args(params: dict[str, Any]) -> dict[str, Any]:
    return {
        "host": params.get("HOST") or LOOPBACK,
        "port": params.get("PORT") or "5432",
        "user": params.get("USER") or None,
        "password": params.get("PASSWORD") or None,
        "dbname": "postgres",
        "connect_timeout": 10,
        **params.get("OPTIONS", {}),
    }


class LogWatch:
    """Reports what new error lines (tracebacks, ERROR, 5xx) a set of logs gained since last time."""

    PATTERN = re.compile(r"Traceback|\bERROR\b|CRITICAL|Internal Server Error|\[CRITICAL\]|WORKER TIMEOUT")

    def __init__(self, *paths: Path) -> None:
        self.offsets: dict[Path, int] = {}
        self.add(*paths)

    def add(self, *paths: Path) -> None:
        for path in paths:
            self.offsets.setdefault(path, path.stat().st_size if path.exists() else 0)

    def new_errors(self, context: int = 12, limit: int = 60) -> list[str]:
        excerpts = []
        for path, offset in list(self.offsets.items()):
            if not path.exists():
                continue
            with path.open("rb") as handle:
                handle.seek(offset)
                text = handle.read().decode("utf-8", "replace")
                self.offsets[path] = handle.tell()
            lines = text.splitlines()
            hits = [i for i, line in enumerate(lines) if self.PATTERN.search(line)]
            if hits:
                first = hits[0]
                excerpt = lines[first : first + max(context, 1)]
                excerpts.append(
                    f"{path.name}: {len(hits)} error line(s); first:\n    " + "\n    ".join(excerpt[:limit])
                )
        return excerpts


class Stack:
    """Everything the load runs against. ``env`` is also what the harness process itself uses."""

    def __init__(
        self,
        directory: Path,
        *,
        database_url: str,
        broker_url: str,
        workers: int,
        threads: int,
        balanced: bool,
        ca_file: str | None,
        extra_env: dict[str, str],
        server: str = "gthread",
    ) -> None:
        self.directory = directory
        self.workers = workers
        self.threads = threads
        self.server = server
        # uvicorn's worker has no accept limit to set: its placement is always gunicorn's own.
        balanced = balanced and server == "gthread"
        self.balanced = balanced
        self.cap_file = directory / "worker-connections"
        self.cap = 0
        self.port = free_port()
        env = {
            "DJANGO_SETTINGS_MODULE": "benchmarks.settings",
            "PYTHONDONTWRITEBYTECODE": "1",
            "BENCH_SERVER": server,
            **extra_env,
        }
        if balanced:
            env["BENCH_WORKER_CONNECTIONS_FILE"] = str(self.cap_file)
        self.project = ServedProject(
            directory,
            database_url=database_url,
            broker_url=broker_url,
            ca_file=ca_file,
            env=env,
            port=self.port,
        )
        self.env = self.project.env
        self.base_url = self.project.base_url
        self.issuer = self.project.issuer
        self.gunicorn = None
        self.gunicorn_log = directory / "gunicorn.log"
        self.logs = LogWatch()

    def migrate(self) -> None:
        self.project.migrate(timeout=180)

    def start_gunicorn(self, timeout: float = 60) -> None:
        args = [sys.executable, "-m", "gunicorn", *self.server_args()]
        self.gunicorn = spawn(args, log=self.gunicorn_log, env=self.env)
        self.logs.add(self.gunicorn_log)
        url = f"{self.issuer}/.well-known/openid-configuration"
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        end = time.monotonic() + timeout
        while True:
            if self.gunicorn.poll() is not None:
                raise RuntimeError(
                    f"gunicorn exited with {self.gunicorn.returncode}:\n{tail(self.gunicorn_log)}"
                )
            try:
                with opener.open(url, timeout=2) as response:
                    if response.status == 200 and json.load(response).get("issuer") == self.issuer:
                        return
            except (OSError, ValueError):
                pass
            if time.monotonic() > end:
                raise RuntimeError(f"gunicorn did not answer {url}:\n{tail(self.gunicorn_log)}")
            time.sleep(0.2)

    def server_args(self) -> list[str]:
        """gunicorn's command line: gthread on the WSGI application, or uvicorn's worker on the ASGI
        one (Django runs the sync views in a thread per request; no --threads)."""
        if self.server == "asgi":
            app, worker = ["example_project.asgi:application"], ["--worker-class", self.worker_class]
        else:
            app = ["example_project.wsgi:application"]
            worker = ["--worker-class", self.worker_class, "--threads", str(self.threads)]
        return [
            *app,
            *("--bind", f"{LOOPBACK}:{self.port}", "--workers", str(self.workers)),
            *worker,
            *("--keep-alive", "30", "--backlog", "2048", "--timeout", "60", "--graceful-timeout", "10"),
            *("--error-logfile", "-", "--log-level", "warning"),
        ]

    @property
    def worker_class(self) -> str:
        if self.server == "asgi":
            return "uvicorn_worker.UvicornWorker"
        return "benchmarks.gunicorn_worker.BalancedThreadWorker" if self.balanced else "gthread"

    def spread_connections(self, connections: int) -> None:
        """Balanced placement: each worker accepts at most its share of ``connections``."""
        if not self.balanced:
            return
        cap = -(-connections // self.workers)
        if cap != self.cap:
            self.cap_file.write_text(f"{cap}\n")
            self.cap = cap
            time.sleep(0.5)  # the workers re-read the file every 0.2 s

    def stop_gunicorn(self) -> None:
        stop_group(self.gunicorn, grace=15)
        self.gunicorn = None

    def gunicorn_pids(self) -> list[int]:
        """The master and its worker processes (for py-spy)."""
        if self.gunicorn is None:
            return []
        master = self.gunicorn.pid
        return [master, *children(master)]

    def connections_per_worker(self) -> list[int]:
        """Established client connections held by each gunicorn worker, most first (from ``ss``)."""
        workers = self.gunicorn_pids()[1:]
        try:
            out = subprocess.run(
                ["ss", "-tnpH", "state", "established", f"( sport = :{self.port} )"],
                capture_output=True,
                text=True,
                timeout=5,
            ).stdout
        except (OSError, subprocess.SubprocessError):
            return []
        counts = {pid: len(re.findall(rf"pid={pid},", out)) for pid in workers}
        return sorted(counts.values(), reverse=True)

    def start_worker(self, concurrency: int) -> None:
        self.project.start_worker(concurrency=concurrency, beat=True, timeout=90)
        if self.project.worker_log is not None:
            self.logs.add(self.project.worker_log)

    def server_cpu_seconds(self) -> float:
        """CPU time used so far by the gunicorn master and its workers (for CPU per request)."""
        from .machine import cpu_seconds

        return sum(cpu_seconds(pid) for pid in self.gunicorn_pids())

    def worker_cpu_seconds(self) -> float | None:
        """CPU time used so far by the Celery worker: its main process and children (pool, beat);
        None when no worker runs (the embedded configurations)."""
        from .machine import cpu_seconds

        worker = self.project.worker
        if worker is None or worker.poll() is not None:
            return None
        return sum(cpu_seconds(pid) for pid in [worker.pid, *children(worker.pid)])

    def stop(self) -> None:
        try:
            self.project.stop_worker(grace=10)
        finally:
            self.stop_gunicorn()


def harness_environment(stack_env: dict[str, str]) -> None:
    """Make the harness process itself a Django process of the benchmark (seeding, approvals); a key
    the stack does not set is removed (no CELERY_BROKER_URL: tasks run in-process, as in the
    embedded configurations' server)."""
    for key in (
        "DJANGO_SETTINGS_MODULE",
        "DATABASE_URL",
        "CELERY_BROKER_URL",
        "CIBA_EXAMPLE_ISSUER",
        "CIBA_EXAMPLE_KEY_FILE",
        "REQUESTS_CA_BUNDLE",
        "DJANGO_DEBUG",
    ):
        if key in stack_env:
            os.environ[key] = stack_env[key]
        else:
            os.environ.pop(key, None)
    for key, value in stack_env.items():
        if key.startswith("BENCH_"):
            os.environ[key] = value
