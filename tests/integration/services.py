"""Real services for the integration tests: the Redis broker, the PostgreSQL cluster (stopped and
started again by :class:`PostgresCluster`), the example project served as separate processes
(``runserver``, or several gunicorn app servers, and a Celery worker with beat) on a PostgreSQL
database of its own, and nginx as a load balancer in front of app servers (:class:`Nginx`, from
``scripts/with-nginx``; tests/integration/test_scale_out.py).

``scripts/run-integration`` runs the suite under ``scripts/with-postgres`` and ``scripts/with-redis``;
the latter exports ``CELERY_BROKER_URL`` and ``CIBA_TEST_REDIS_*``, which :class:`RedisServer`
reads, the former ``DATABASE_URL`` and ``CIBA_TEST_PG_*``, which :class:`PostgresCluster` reads
(``postgres_cluster.restart(down=3)``). Typical use (the fixtures are in ``conftest.py``)::

    def test_push(served_project, callback_receiver, redis_server):
        project = served_project
        project.migrate()
        project.start_web()
        project.start_worker()
        ...                                   # requests to project.issuer, project.manage(...)
        project.kill_worker()                 # SIGKILL to the worker's whole process group
        redis_server.stop(); redis_server.start()
        project.start_worker()

Every wait is bounded (``timeout`` arguments, capped by an optional :class:`Deadline`) and every
process is started in a session of its own and killed with its process group, on ``stop()``, at the
end of the fixture, and (as a last resort) when the test process exits.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import pytest


ROOT = Path(__file__).resolve().parents[2]
LOOPBACK = "127.0.0.1"
T = TypeVar("T")


# --- time limits and processes --------------------------------------------------------------
class Deadline:
    """A budget for a whole test: ``left(cap)`` is what remains (at most ``cap``); fails when spent."""

    def __init__(self, seconds: float, what: str = "the test") -> None:
        self.seconds = seconds
        self.what = what
        self.end = time.monotonic() + seconds

    def left(self, cap: float | None = None) -> float:
        remaining = self.end - time.monotonic()
        if remaining <= 0:
            pytest.fail(f"{self.what} went over its {self.seconds:g} s budget", pytrace=False)
        return min(remaining, cap) if cap is not None else remaining


def wait_until(
    predicate: Callable[[], T],
    timeout: float,
    message: str | Callable[[], str] = "condition not met",
    interval: float = 0.1,
) -> T:
    """Call ``predicate`` until it returns something true (returned); fail after ``timeout`` s."""
    end = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= end:
            text = message() if callable(message) else message
            pytest.fail(f"after {timeout:.1f} s: {text}", pytrace=False)
        time.sleep(interval)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def port_is_open(port: int, host: str = LOOPBACK, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def tail(path: Path | str, lines: int = 40) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _proc_state(pid: int) -> str | None:
    """The state letter of ``pid`` (``Z`` for a zombie), ``None`` when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def pid_alive(pid: int | None) -> bool:
    """True while ``pid`` runs (a zombie, which nothing may reap here, counts as dead)."""
    if not pid:
        return False
    state = _proc_state(pid)
    if state is None:
        try:
            os.kill(pid, 0)  # no /proc: fall back to signal 0 (zombies count as alive then)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return not Path("/proc").is_dir()
    return state != "Z"


def _live_processes() -> Iterator[tuple[int, list[str]]]:
    """``(pid, fields)`` of every live (non-zombie) process; ``fields`` are those of
    ``/proc/PID/stat`` after the command name: state, ppid, pgid, ..."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            yield int(entry.name), fields


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of process group ``pgid``."""
    return [pid for pid, fields in _live_processes() if int(fields[2]) == pgid]


def children(pid: int) -> list[int]:
    """Live (non-zombie) direct children of ``pid``, in pid order."""
    return sorted(child for child, fields in _live_processes() if int(fields[1]) == pid)


_live: set[subprocess.Popen] = set()


def spawn(args: list[str], *, log: Path, env: Mapping[str, str], cwd: Path = ROOT) -> subprocess.Popen:
    """Start ``args`` in a session (and process group) of its own, output appended to ``log``."""
    with log.open("ab") as out:
        process = subprocess.Popen(
            args,
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    _live.add(process)
    return process


def kill_group(
    process: subprocess.Popen | None, sig: int = signal.SIGKILL, timeout: float = 15
) -> int | None:
    """Send ``sig`` to the process group of ``process`` (started by :func:`spawn`) and wait until
    the group leader exited and, for SIGKILL, no member of the group is left. Returns the exit code.
    """
    if process is None:
        return None
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        pass
    try:
        code = process.wait(timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{process.args!r} did not exit within {timeout:g} s of signal {sig}", pytrace=False)
    if sig == signal.SIGKILL:
        wait_until(
            lambda: not group_members(process.pid),
            timeout,
            lambda: f"processes of group {process.pid} survived SIGKILL: {group_members(process.pid)}",
        )
    _live.discard(process)
    return code


def stop_group(process: subprocess.Popen | None, grace: float = 10) -> int | None:
    """SIGTERM to the process group, SIGKILL after ``grace`` s; never fails."""
    if process is None:
        return None
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            pass
        try:
            process.wait(wait)
            break
        except subprocess.TimeoutExpired:
            continue
    if group_members(process.pid):  # workers left behind by a leader that exited first
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    _live.discard(process)
    return process.returncode


@atexit.register
def _kill_leftovers() -> None:
    for process in list(_live):
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


# --- Redis ------------------------------------------------------------------------------------
def redis_ping(port: int, host: str = LOOPBACK, timeout: float = 1.0) -> bool:
    """True when a Redis server on ``port`` answers PING with PONG."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


# Servers started by RedisServer.start(), by port: kept referenced (no "still running" warning when a
# RedisServer is dropped), and reaped by whichever RedisServer on that port stops them.
_redis_processes: dict[int, subprocess.Popen] = {}


class RedisServer:
    """The broker started by ``scripts/with-redis``: stop it and start it again on the same port.

    ``scripts/with-redis`` writes the server's whole configuration (port, bind 127.0.0.1, dir,
    pidfile, logfile, no persistence) to ``CIBA_TEST_REDIS_CONF``; :meth:`start` runs
    ``redis-server CONF`` again, so the new server has the same port and pidfile and with-redis's
    cleanup (SHUTDOWN NOSAVE on the port, then the pid in the pidfile) stops it whoever started it.
    A server started here runs in a session of its own and outlives the test process if it has to.
    """

    def __init__(
        self, port: int, server: str = "redis-server", cli: str | None = None, conf: str | None = None
    ):
        self.port = int(port)
        self.server = server
        self.cli_path = cli or shutil.which("redis-cli") or str(Path(server).with_name("redis-cli"))
        self.conf = Path(conf) if conf else None
        self._own_dir: Path | None = None

    @classmethod
    def from_env(cls) -> RedisServer | None:
        """The server of ``scripts/with-redis`` (``None`` when ``CIBA_TEST_REDIS_PORT`` is unset)."""
        port = os.environ.get("CIBA_TEST_REDIS_PORT")
        if not port:
            return None
        return cls(
            int(port),
            server=os.environ.get("CIBA_TEST_REDIS_SERVER") or shutil.which("redis-server") or "redis-server",
            cli=os.environ.get("CIBA_TEST_REDIS_CLI") or None,
            conf=os.environ.get("CIBA_TEST_REDIS_CONF") or None,
        )

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}/0"

    @property
    def _process(self) -> subprocess.Popen | None:
        return _redis_processes.get(self.port)

    @_process.setter
    def _process(self, process: subprocess.Popen | None) -> None:
        if process is None:
            _redis_processes.pop(self.port, None)
        else:
            _redis_processes[self.port] = process

    @property
    def directory(self) -> Path:
        if self.conf is not None:
            return self.conf.parent
        if self._own_dir is None:
            self._own_dir = Path(tempfile.mkdtemp(prefix="ciba-redis-"))
        return self._own_dir

    @property
    def pidfile(self) -> Path:
        return self.directory / "redis.pid"

    def pid(self) -> int | None:
        """The pid in the pidfile while it is a live redis-server."""
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            cmdline = b"redis"
        return pid if pid_alive(pid) and b"redis" in cmdline else None

    def ping(self, timeout: float = 1.0) -> bool:
        return redis_ping(self.port, timeout=timeout)

    running = ping

    def cli(self, *args: str, timeout: float = 10) -> str:
        """``redis-cli -p PORT ARGS...``; its stdout (fails on a non-zero exit)."""
        result = subprocess.run(
            [self.cli_path, "-h", LOOPBACK, "-p", str(self.port), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert result.returncode == 0, f"redis-cli {' '.join(args)}: {result.stdout}{result.stderr}"
        return result.stdout.strip()

    def flushall(self) -> None:
        """Forget every queued message and result (between tests)."""
        assert self.cli("FLUSHALL") == "OK"

    def stop(self, kill: bool = False, timeout: float = 15) -> None:
        """Take the broker down: SHUTDOWN NOSAVE (``kill=True``: SIGKILL, like a crash), then wait
        until the port is closed and the process gone."""
        pid = self.pid()
        if kill and pid:
            os.kill(pid, signal.SIGKILL)
        elif self.ping():
            subprocess.run(
                [self.cli_path, "-h", LOOPBACK, "-p", str(self.port), "SHUTDOWN", "NOSAVE"],
                capture_output=True,
                timeout=timeout,
            )

        def down() -> bool:
            if self._process is not None and self._process.poll() is None:
                return False
            return not port_is_open(self.port) and not pid_alive(pid)

        end = time.monotonic() + timeout
        while not down() and time.monotonic() < end:
            time.sleep(0.05)
        if not down() and pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
            wait_until(down, 5, f"Redis on port {self.port} (pid {pid}) did not stop")
        if self._process is not None:
            try:
                self._process.wait(5)
            except subprocess.TimeoutExpired:
                pass
            self._process = None
        assert down(), f"Redis on port {self.port} did not stop:\n{self.log_tail()}"

    def start(self, timeout: float = 15) -> None:
        """Start the server again on the same port (a no-op while it answers PING)."""
        if self.ping():
            return
        wait_until(
            lambda: not port_is_open(self.port), timeout, f"port {self.port} is taken by something else"
        )
        if self.conf is not None:
            args = [self.server, str(self.conf)]
        else:
            args = [
                self.server,
                *("--port", str(self.port), "--bind", LOOPBACK, "--daemonize", "no"),
                *("--save", "", "--appendonly", "no", "--dir", str(self.directory)),
                *("--pidfile", str(self.pidfile), "--logfile", str(self.directory / "redis.log")),
            ]
        log = self.directory / "restarts.log"
        with log.open("ab") as out:
            self._process = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=self.directory,
            )

        def up() -> bool:
            if self._process is not None and self._process.poll() is not None:
                pytest.fail(
                    f"redis-server exited with {self._process.returncode}:\n{tail(log)}\n{self.log_tail()}",
                    pytrace=False,
                )
            return self.ping()

        wait_until(up, timeout, lambda: f"Redis did not answer PING on port {self.port}:\n{self.log_tail()}")

    def ensure_running(self, timeout: float = 15) -> None:
        if not self.ping():
            self.start(timeout)

    def log_tail(self, lines: int = 20) -> str:
        return tail(self.directory / "redis.log", lines)


# --- PostgreSQL ---------------------------------------------------------------------------------
class ScratchDatabase:
    """A fresh database on the test cluster (the one of ``settings.DATABASES['default']``),
    dropped (``WITH (FORCE)``) by :meth:`drop`. ``url`` is a ``DATABASE_URL`` for child processes."""

    def __init__(self, prefix: str = "ciba_it") -> None:
        import psycopg
        from django.conf import settings
        from psycopg import sql

        db = settings.DATABASES["default"]
        assert db["ENGINE"].endswith("postgresql"), f"not a PostgreSQL database: {db['ENGINE']}"
        self.name = f"{prefix}_{secrets.token_hex(4)}"
        self._params = {
            "host": db.get("HOST") or LOOPBACK,
            "port": db.get("PORT") or "5432",
            "user": db.get("USER") or None,
            "password": db.get("PASSWORD") or None,
            "dbname": "postgres",
            "connect_timeout": 10,
        }
        with psycopg.connect(**self._params, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.name)))
        self.dropped = False
        user = quote(db.get("USER") or "", safe="")
        password = quote(db.get("PASSWORD") or "", safe="")
        credentials = f"{user}:{password}@" if password else (f"{user}@" if user else "")
        host, port = self._params["host"], self._params["port"]
        # A socket directory as HOST goes in the query string (example_project/database.py reads it).
        if host.startswith("/"):
            self.url = f"postgres://{credentials}localhost:{port}/{self.name}?host={quote(host, safe='')}"
        else:
            self.url = f"postgres://{credentials}{host}:{port}/{self.name}"

    def drop(self) -> None:
        if self.dropped:
            return
        import psycopg
        from psycopg import sql

        with psycopg.connect(**self._params, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.name)))
        self.dropped = True

    def __enter__(self) -> ScratchDatabase:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.drop()


class PostgresCluster:
    """The cluster of ``scripts/with-postgres``: stop it (a fast or immediate shutdown, like a
    restart or a crash) and start it again with the same data directory and port.

    ``scripts/with-postgres`` exports ``CIBA_TEST_PG_BIN`` (the directory of ``pg_ctl``),
    ``CIBA_TEST_PG_DATA``, ``CIBA_TEST_PG_LOG`` and, as root, ``CIBA_TEST_PG_RUN_AS=postgres`` (the
    server refuses to run as root, so ``pg_ctl`` runs through ``runuser -u postgres --``). A server
    started here is detached (a session of its own); with-postgres's cleanup stops it like the
    first one (``pg_ctl -D DATA stop``). Connections are checked with the parameters of
    ``settings.DATABASES['default']`` (database ``postgres``).
    """

    def __init__(
        self, bin_dir: str | Path, data: str | Path, log: str | Path | None = None, run_as: str | None = None
    ) -> None:
        self.bin_dir = Path(bin_dir)
        self.data = Path(data)
        self.log = Path(log) if log else self.data.parent / "server.log"
        self.run_as = run_as or None

    @classmethod
    def from_env(cls) -> PostgresCluster | None:
        """The cluster of ``scripts/with-postgres`` (``None`` when ``CIBA_TEST_PG_DATA`` is unset)."""
        data, bin_dir = os.environ.get("CIBA_TEST_PG_DATA"), os.environ.get("CIBA_TEST_PG_BIN")
        if not data or not bin_dir:
            return None
        return cls(bin_dir, data, os.environ.get("CIBA_TEST_PG_LOG"), os.environ.get("CIBA_TEST_PG_RUN_AS"))

    def _command(self, *args: str) -> list[str]:
        command = [str(self.bin_dir / "pg_ctl"), "-D", str(self.data), *args]
        return ["runuser", "-u", self.run_as, "--", *command] if self.run_as else command

    def pg_ctl(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        """``pg_ctl -D DATA ARGS...`` (as ``run_as``); output to ``restarts.log`` (never a pipe: the
        server it starts would hold it open)."""
        with (self.data.parent / "restarts.log").open("ab") as out:
            return subprocess.run(
                self._command(*args),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.data.parent,  # readable by run_as
                start_new_session=True,  # the server outlives this process group
                timeout=timeout,
            )

    def _params(self) -> dict[str, Any]:
        from django.conf import settings

        db = settings.DATABASES["default"]
        return {
            "host": db.get("HOST") or LOOPBACK,
            "port": db.get("PORT") or "5432",
            "user": db.get("USER") or None,
            "password": db.get("PASSWORD") or None,
            "dbname": "postgres",
        }

    def accepting(self, timeout: float = 2.0) -> bool:
        """True when a new connection gets an answer to ``SELECT 1``."""
        import psycopg

        try:
            with psycopg.connect(**self._params(), connect_timeout=max(1, int(timeout))) as conn:
                return conn.execute("SELECT 1").fetchone() == (1,)
        except psycopg.Error:
            return False

    def running(self) -> bool:
        """``pg_ctl status``: a postmaster runs on the data directory."""
        return self.pg_ctl("status", timeout=15).returncode == 0

    def stop(self, mode: str = "fast", timeout: float = 30) -> None:
        """``pg_ctl stop -m MODE`` (``fast``: sessions are terminated, a clean shutdown;
        ``immediate``: like a crash, recovery at the next start); returns once it is down."""
        assert mode in ("smart", "fast", "immediate"), mode
        result = self.pg_ctl("stop", "-m", mode, "-w", "-t", str(int(timeout)), timeout=timeout + 10)
        assert result.returncode == 0 or not self.running(), (
            f"pg_ctl stop -m {mode} failed:\n{tail(self.data.parent / 'restarts.log')}\n{self.log_tail()}"
        )
        wait_until(lambda: not self.accepting(1), timeout, "PostgreSQL still accepts connections")

    def start(self, timeout: float = 60) -> None:
        """``pg_ctl start -w`` with the same data directory (so the same port); returns once a new
        connection is served. A no-op while it runs."""
        if not self.running():
            result = self.pg_ctl(
                "start", "-w", "-t", str(int(timeout)), "-l", str(self.log), timeout=timeout + 10
            )
            assert result.returncode == 0, (
                f"pg_ctl start failed:\n{tail(self.data.parent / 'restarts.log')}\n{self.log_tail()}"
            )
        self.wait_ready(timeout)

    def restart(self, down: float = 3.0, mode: str = "fast", timeout: float = 60) -> float:
        """Stop, stay down ``down`` seconds, start; the seconds during which no connection was
        served (from the stop command to the first new connection)."""
        began = time.monotonic()
        self.stop(mode, timeout)
        time.sleep(max(0.0, down - (time.monotonic() - began)))
        self.start(timeout)
        return time.monotonic() - began

    def wait_ready(self, timeout: float = 60) -> None:
        wait_until(
            lambda: self.accepting(1),
            timeout,
            lambda: f"PostgreSQL did not come back:\n{self.log_tail()}",
            0.1,
        )

    def ensure_running(self, timeout: float = 60) -> None:
        if not self.accepting(2):
            self.start(timeout)

    def log_tail(self, lines: int = 20) -> str:
        return tail(self.log, lines)


# --- Celery control -----------------------------------------------------------------------------
def control_app(broker_url: str):
    """A bare Celery app on ``broker_url`` for remote control (ping, inspect): no Django involved."""
    from celery import Celery

    app = Celery("ciba-tests-control", broker=broker_url, set_as_current=False)
    app.conf.broker_connection_timeout = 2
    app.conf.broker_connection_retry_on_startup = False
    app.conf.broker_transport_options = {"max_retries": 1, "interval_start": 0, "interval_step": 0.5}
    return app


def ping_workers(app, destination: Iterable[str] | None = None, timeout: float = 1.0) -> list[dict[str, Any]]:
    """``app.control.ping()``; ``[]`` when nobody answered or the broker is unreachable."""
    try:
        return app.control.ping(destination=list(destination) if destination else None, timeout=timeout) or []
    except Exception:  # kombu.exceptions.OperationalError, redis ConnectionError...
        return []


# --- the served example project -----------------------------------------------------------------
READY = re.compile(rb"(\S+@\S+) ready\.")


class ServedProject:
    """``example_project`` served by subprocesses that share one PostgreSQL database.

    ``directory`` holds the OIDC key, the logs and the beat schedule. Without ``database_url`` a
    :class:`ScratchDatabase` is created (and dropped by :meth:`stop`). ``broker_url`` defaults to
    ``$CELERY_BROKER_URL`` (tasks run in-process in each child when there is none). ``ca_file`` is
    passed as ``REQUESTS_CA_BUNDLE`` (the callback receiver's certificate). ``env`` is added last;
    :attr:`env` may still be changed before a process is started.
    """

    def __init__(
        self,
        directory: str | Path,
        *,
        database_url: str | None = None,
        broker_url: str | None = None,
        ca_file: str | None = None,
        env: Mapping[str, str] | None = None,
        deadline: Deadline | None = None,
        port: int | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.deadline = deadline
        self.database = ScratchDatabase() if database_url is None else None
        self.database_url = database_url or self.database.url  # type: ignore[union-attr]
        self.broker_url = broker_url if broker_url is not None else os.environ.get("CELERY_BROKER_URL", "")
        self.port = port or free_port()
        self.issuer = f"http://{LOOPBACK}:{self.port}/o"
        self.base_url = f"http://{LOOPBACK}:{self.port}"
        self.web: subprocess.Popen | None = None
        self.app_servers: dict[int, subprocess.Popen] = {}  # gunicorn, by port (start_app_server)
        self.worker: subprocess.Popen | None = None
        self.worker_name: str | None = None
        self.worker_log: Path | None = None
        self._worker_starts = 0
        self._control = None

        dropped = ("DJANGO_SETTINGS_MODULE", "CELERY_BROKER_URL", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
        self.env: dict[str, str] = {k: v for k, v in os.environ.items() if k not in dropped}
        no_proxy = ",".join(filter(None, [os.environ.get("NO_PROXY", ""), LOOPBACK, "localhost"]))
        self.env.update(
            DJANGO_SETTINGS_MODULE="example_project.settings",
            DATABASE_URL=self.database_url,
            CIBA_EXAMPLE_ISSUER=self.issuer,
            CIBA_EXAMPLE_KEY_FILE=str(self.directory / "oidc-key.pem"),
            DJANGO_DEBUG="0",
            PYTHONUNBUFFERED="1",
            NO_PROXY=no_proxy,
            no_proxy=no_proxy,
        )
        if self.broker_url:
            self.env["CELERY_BROKER_URL"] = self.broker_url
        if ca_file:
            self.env["REQUESTS_CA_BUNDLE"] = str(ca_file)
        self.env.update(env or {})

    def _time(self, timeout: float) -> float:
        return self.deadline.left(timeout) if self.deadline is not None else timeout

    # --- one-off commands ---------------------------------------------------------------------
    def manage(self, *args: str, timeout: float = 60, check: bool = True) -> str:
        """``manage.py ARGS...`` with the project's environment; its stdout (asserts exit 0)."""
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=self._time(timeout),
        )
        if check:
            assert result.returncode == 0, (
                f"manage.py {' '.join(args)} exited with {result.returncode}:\n"
                f"{result.stdout}\n{result.stderr}"
            )
        return result.stdout

    def shell(self, code: str, timeout: float = 60) -> str:
        """The last line ``manage.py shell -c CODE`` printed (Django 5.2 may print a banner first)."""
        lines = [
            line for line in self.manage("shell", "--no-imports", "-c", code, timeout=timeout).splitlines()
        ]
        lines = [line for line in lines if line.strip()]
        assert lines, f"manage.py shell printed nothing for {code!r}"
        return lines[-1].strip()

    def create_user(self, username: str, email: str, password: str) -> int:
        """A user of the served project (``create_user``); returns its pk."""
        return int(
            self.shell(
                "from django.contrib.auth import get_user_model; "
                f"print(get_user_model().objects.create_user({username!r}, {email!r}, {password!r}).pk)"
            )
        )

    def create_client(self, *args: str) -> dict[str, Any]:
        """``manage.py ciba_create_client ARGS``: the client it printed (client_id, client_secret, ...)."""
        return json.loads(self.manage("ciba_create_client", *args).strip().splitlines()[-1])

    def shell_json(self, code: str, timeout: float = 60) -> Any:
        """``json.loads`` of :meth:`shell` (``code`` prints ``json.dumps(...)`` last)."""
        return json.loads(self.shell(code, timeout=timeout))

    def migrate(self, timeout: float = 90) -> None:
        self.manage("migrate", "--noinput", "-v0", timeout=timeout)

    # --- runserver ----------------------------------------------------------------------------
    @property
    def web_log(self) -> Path:
        return self.directory / "web.log"

    def start_web(self, timeout: float = 30) -> None:
        """``manage.py runserver 127.0.0.1:PORT --noreload``; returns once discovery answers 200."""
        assert self.web is None or self.web.poll() is not None, "the web server is already running"
        self.web = spawn(
            [sys.executable, "manage.py", "runserver", f"{LOOPBACK}:{self.port}", "--noreload"],
            log=self.web_log,
            env=self.env,
        )
        self._wait_for_discovery(
            f"{self.issuer}/.well-known/openid-configuration", self.web, "runserver", self.web_log, timeout
        )

    def _wait_for_discovery(
        self, url: str, process: subprocess.Popen | None, name: str, log: Path, timeout: float
    ) -> None:
        """Until discovery at ``url`` answers 200 with this project's issuer; fails at once when
        ``process`` exits, with the end of ``log``."""
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

        def answers() -> bool:
            if process is not None and process.poll() is not None:
                pytest.fail(f"{name} exited with {process.returncode}:\n{tail(log)}", pytrace=False)
            try:
                with opener.open(url, timeout=2) as response:
                    return response.status == 200 and json.load(response).get("issuer") == self.issuer
            except (OSError, ValueError):
                return False

        wait_until(answers, self._time(timeout), lambda: f"{url} did not answer:\n{tail(log)}", 0.2)

    def stop_web(self) -> None:
        stop_group(self.web, grace=5)
        self.web = None

    # --- gunicorn app servers (several behind a load balancer: Nginx) --------------------------
    def app_server_log(self, port: int) -> Path:
        return self.directory / f"gunicorn-{port}.log"

    def start_app_server(self, port: int | None = None, *, threads: int = 8, timeout: float = 30) -> int:
        """One more app server: ``gunicorn example_project.wsgi`` (one gthread worker) on
        ``127.0.0.1:PORT`` (a free one by default), with this project's environment, so with its
        issuer whatever port it listens on (behind a load balancer, the balancer's). Returns the
        port once discovery answers 200 there with :attr:`issuer`."""
        port = port or free_port()
        assert port not in self.app_servers, f"an app server already listens on {port}"
        log = self.app_server_log(port)
        self.app_servers[port] = spawn(
            [
                sys.executable,
                *("-m", "gunicorn", "example_project.wsgi:application"),
                *("--bind", f"{LOOPBACK}:{port}", "--workers", "1"),
                *("--worker-class", "gthread", "--threads", str(threads)),
                *("--graceful-timeout", "5", "--error-logfile", "-"),
            ],
            log=log,
            env=self.env,
        )
        url = f"http://{LOOPBACK}:{port}{urlsplit(self.issuer).path}/.well-known/openid-configuration"
        self._wait_for_discovery(url, self.app_servers[port], f"gunicorn on {port}", log, timeout)
        return port

    def stop_app_servers(self) -> None:
        for port in list(self.app_servers):
            stop_group(self.app_servers.pop(port), grace=5)

    # --- the Celery worker (with beat) --------------------------------------------------------
    def start_worker(
        self, *extra_args: str, concurrency: int = 2, beat: bool = True, timeout: float = 60
    ) -> str:
        """A prefork worker (with embedded beat) in its own process group, logging to
        ``worker-N.log``; returns its node name once it logged "ready"."""
        assert self.broker_url, "start_worker() needs a broker (CELERY_BROKER_URL, scripts/with-redis)"
        assert self.worker is None or self.worker.poll() is not None, "a worker is already running"
        self._worker_starts += 1
        number = self._worker_starts
        self.worker_name = f"ciba-it-{number}-{secrets.token_hex(3)}@{socket.gethostname()}"
        self.worker_log = self.directory / f"worker-{number}.log"
        args = [
            sys.executable,
            *("-m", "celery", "-A", "example_project", "worker"),
            *("--pool=prefork", f"--concurrency={concurrency}", "--loglevel=INFO"),
            *("-n", self.worker_name, "--without-mingle", "--without-gossip"),
        ]
        if beat:
            args += ["-B", "-s", str(self.directory / "beat-schedule")]
        self.worker = spawn([*args, *extra_args], log=self.worker_log, env=self.env)
        log = self.worker_log

        def ready() -> bool:
            worker = self.worker
            if worker is not None and worker.poll() is not None:
                pytest.fail(
                    f"the Celery worker exited with {worker.returncode}:\n{tail(log, 60)}", pytrace=False
                )
            try:
                return bool(READY.search(log.read_bytes()))
            except OSError:
                return False

        wait_until(
            ready, self._time(timeout), lambda: f"the Celery worker did not get ready:\n{tail(log, 60)}"
        )
        return self.worker_name

    def kill_worker(self, sig: int = signal.SIGKILL, timeout: float = 30) -> int | None:
        """Send ``sig`` to the worker's whole process group (main process, pool children, beat) and
        wait until it is gone; the exit code of the main process."""
        worker, self.worker = self.worker, None
        return kill_group(worker, sig, self._time(timeout))

    def stop_worker(self, grace: float = 20) -> int | None:
        """A warm shutdown (SIGTERM), SIGKILL after ``grace`` s."""
        worker, self.worker = self.worker, None
        return stop_group(worker, grace)

    def worker_alive(self) -> bool:
        return self.worker is not None and self.worker.poll() is None

    @property
    def control(self):
        """A Celery app on the project's broker for remote control (see :func:`ping_workers`)."""
        if self._control is None:
            self._control = control_app(self.broker_url)
        return self._control

    def ping_worker(self, timeout: float = 30) -> dict[str, Any]:
        """Wait until the current worker answers a control ping; its reply."""
        assert self.worker_name, "no worker was started"
        name = self.worker_name

        def answered() -> dict[str, Any] | None:
            for reply in ping_workers(self.control, [name], timeout=1.0):
                if name in reply:
                    return reply
            return None

        return wait_until(
            answered, self._time(timeout), lambda: f"{name} did not answer a ping:\n{self.log_tail()}", 0.2
        )

    def wait_for_worker_log(self, pattern: str | re.Pattern[str], timeout: float = 30) -> re.Match[str]:
        """Wait until the current worker's log matches ``pattern`` (a regex); the match."""
        assert self.worker_log is not None, "no worker was started"
        log = self.worker_log
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern

        def found() -> re.Match[str] | None:
            try:
                return regex.search(log.read_text(errors="replace"))
            except OSError:
                return None

        return wait_until(
            found, self._time(timeout), lambda: f"{regex.pattern!r} not in:\n{tail(log, 60)}", 0.2
        )

    # --- diagnostics and lifetime -------------------------------------------------------------
    def log_tail(self, lines: int = 40) -> str:
        """The end of every log (runserver, each worker), for assertion messages."""
        parts = []
        logs = [self.web_log, *sorted(self.directory.glob("gunicorn-*.log"))]
        for path in [*logs, *sorted(self.directory.glob("worker-*.log"))]:
            if path.exists():
                parts.append(f"--- {path.name} ---\n{tail(path, lines)}")
        return "\n".join(parts) or "(no logs)"

    def stop(self) -> None:
        """Stop the worker and the web server (process groups), then drop the scratch database."""
        try:
            self.stop_worker(grace=10)
            self.stop_web()
            self.stop_app_servers()
        finally:
            if self._control is not None:
                try:
                    self._control.close()
                except Exception:
                    pass
                self._control = None
            if self.database is not None:
                self.database.drop()

    def __enter__(self) -> ServedProject:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


# --- the load balancer ----------------------------------------------------------------------------
#: The start of every throwaway nginx.conf of the tests (Nginx, tls.MtlsProxy): one worker in the
#: foreground, and every file under {directory}; the ``http`` block stays open.
NGINX_PREAMBLE = """\
daemon off;
worker_processes 1;
pid {directory}/nginx.pid;
error_log {directory}/error.log warn;
events {{ worker_connections 256; }}
http {{
    client_body_temp_path {directory}/tmp/body;
    proxy_temp_path {directory}/tmp/proxy;
    fastcgi_temp_path {directory}/tmp/fastcgi;
    uwsgi_temp_path {directory}/tmp/uwsgi;
    scgi_temp_path {directory}/tmp/scgi;
"""
NGINX_CONF = (
    """\
# Throwaway configuration written by tests/integration/services.py (Nginx): nothing of the
# system's nginx is read; every path is under {directory}.
"""
    + NGINX_PREAMBLE
    + """\
    # Which app server answered each request: the access log and the X-Upstream header.
    log_format upstreams '$msec $request_method $uri $status $upstream_addr';
    access_log {directory}/access.log upstreams;
    upstream app_servers {{
        # Round robin; max_fails=0: a slow answer never takes a server out of the rotation.
{servers}
        keepalive 16;
    }}
    server {{
        listen {host}:{port};
        location / {{
            proxy_pass http://app_servers;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            # A request is sent to one app server only, never retried on the other.
            proxy_next_upstream off;
            proxy_max_temp_file_size 0;
            proxy_read_timeout 30s;
            add_header X-Upstream $upstream_addr always;
        }}
    }}
}}
"""
)


class Nginx:
    """nginx as a round-robin load balancer on ``127.0.0.1:port`` in front of app servers on
    loopback ``upstreams`` (ports), with a configuration of its own in ``directory``.

    The binary is ``$CIBA_NGINX`` (``scripts/with-nginx`` installs Debian's nginx when missing and
    exports it). It runs in the foreground (``daemon off``) in a session of its own, ``-p``/``-c``/
    ``-e`` pointing into ``directory``: no system configuration or log is touched. Every response
    carries ``X-Upstream: 127.0.0.1:PORT`` (the app server that answered) and ``access.log`` lists
    ``time method uri status upstream`` per request.
    """

    def __init__(self, binary: str, directory: str | Path, upstreams: Iterable[int]) -> None:
        self.binary = binary
        self.directory = Path(directory)
        self.upstreams = [int(port) for port in upstreams]
        self.port: int | None = None
        self.process: subprocess.Popen | None = None

    @classmethod
    def binary_from_env(cls) -> str | None:
        """``$CIBA_NGINX`` when executable, else nginx on PATH or /usr/sbin/nginx; None if none."""
        for candidate in (os.environ.get("CIBA_NGINX"), shutil.which("nginx"), "/usr/sbin/nginx"):
            if candidate and os.access(candidate, os.X_OK):
                return candidate
        return None

    @property
    def url(self) -> str:
        assert self.port is not None, "nginx was not started"
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def conf(self) -> Path:
        return self.directory / "nginx.conf"

    @property
    def access_log(self) -> Path:
        return self.directory / "access.log"

    @property
    def log(self) -> Path:
        return self.directory / "nginx.log"

    def upstream_name(self, port: int) -> str:
        """How the access log and ``X-Upstream`` name the app server on ``port``."""
        return f"{LOOPBACK}:{port}"

    def write_conf(self, port: int) -> None:
        (self.directory / "tmp").mkdir(parents=True, exist_ok=True)
        servers = "\n".join(f"        server {LOOPBACK}:{up} max_fails=0;" for up in self.upstreams)
        self.conf.write_text(
            NGINX_CONF.format(directory=self.directory, servers=servers, host=LOOPBACK, port=port)
        )

    def _command(self, *args: str) -> list[str]:
        directory = str(self.directory)
        return [
            self.binary,
            "-p",
            directory,
            "-c",
            str(self.conf),
            "-e",
            str(self.directory / "error.log"),
            *args,
        ]

    def start(self, port: int | None = None, timeout: float = 15) -> None:
        """Write the configuration, check it (``nginx -t``), start nginx on ``port`` and wait until
        it accepts connections. Without ``port`` a free one is chosen (and another one tried when
        it was taken meanwhile); a given ``port`` (already named by the app servers' issuer, say)
        is tried once."""
        assert self.process is None, "nginx is already running"
        self.directory.mkdir(parents=True, exist_ok=True)
        end = time.monotonic() + timeout
        for _attempt in range(1 if port else 5):
            chosen = port or free_port()
            self.write_conf(chosen)
            check = subprocess.run(
                self._command("-t", "-q"),
                capture_output=True,
                text=True,
                timeout=max(1, end - time.monotonic()),
            )
            assert check.returncode == 0, f"nginx -t refused {self.conf}:\n{check.stdout}{check.stderr}"
            process = spawn(self._command(), log=self.log, env=os.environ)

            def up(process: subprocess.Popen = process, chosen: int = chosen) -> str | None:
                if process.poll() is not None:
                    return "exited"
                return "listening" if port_is_open(chosen) else None

            state = wait_until(
                up,
                max(0.5, end - time.monotonic()),
                lambda: f"nginx did not listen:\n{self.log_tail()}",
                0.05,
            )
            if state == "listening":
                self.process, self.port = process, chosen
                return
            _live.discard(process)  # exited (the port was taken)
        pytest.fail(f"nginx could not be started:\n{self.log_tail()}", pytrace=False)

    def stop(self) -> None:
        """SIGQUIT (graceful), SIGKILL after 5 s; the process group with it."""
        process, self.process = self.process, None
        if process is None:
            return
        try:
            os.killpg(process.pid, signal.SIGQUIT)
            process.wait(5)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
        stop_group(process, grace=5)

    def access_entries(self) -> list[tuple[str, str, int, str]]:
        """``(method, uri, status, upstream)`` of every request logged so far, oldest first."""
        entries = []
        try:
            lines = self.access_log.read_text(errors="replace").splitlines()
        except OSError:
            return []
        for line in lines:
            parts = line.split()
            if len(parts) >= 5:
                entries.append((parts[1], parts[2], int(parts[3]), parts[4]))
        return entries

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(
            f"--- {path.name} ---\n{tail(path, lines)}" for path in (self.log, self.directory / "error.log")
        )

    def __enter__(self) -> Nginx:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
