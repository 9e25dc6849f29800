"""CPU used on the machine by processes that are not part of the benchmark, during each block.

Everything shares two cores here: another program busy at the same time (another benchmark, a test
suite) lowers the numbers of one block and not of another. The harness reads every process's CPU
time from /proc before and after each block and reports what the others used, so that a skewed
block is visible in the table instead of being taken for a property of django-ciba.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any


TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: str) -> tuple[int, int, float] | None:
    """(parent pid, session id, CPU seconds) of one process; None for a zombie: it has exited, and
    its CPU time is no more counted than that of a process already reaped (a just-killed reference
    server, handed to PID 1 until reaped, would otherwise show as another program's load)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if fields[0] == "Z":
        return None
    return int(fields[1]), int(fields[3]), (int(fields[11]) + int(fields[12])) / TICKS


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one live process so far (0 when it is gone)."""
    stat = _stat(str(pid))
    return stat[2] if stat else 0.0


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def snapshot() -> tuple[float, dict[int, tuple[int, int, float]]]:
    processes = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _stat(entry)
            if stat is not None:
                processes[int(entry)] = stat
    return time.monotonic(), processes


def _ours(pid: int, processes: dict[int, tuple[int, int, float]], roots: set[int], database: str) -> bool:
    if database and database in _cmdline(pid):
        return True  # a PostgreSQL backend serving the benchmark's database
    seen = 0
    while pid > 1 and seen < 64:
        if pid in roots:
            return True
        pid = processes.get(pid, (1, 0, 0.0))[0]
        seen += 1
    return False


def benchmark_roots() -> set[int]:
    """This process and its ancestors that carry its command line (with-redis, with-postgres and
    timeout, started by ``benchmarks/run``): their descendants are the benchmark's processes."""
    roots, pid = {os.getpid()}, os.getppid()
    while pid > 1 and "benchmarks.harness" in _cmdline(pid):
        roots.add(pid)
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            break
    return roots


def foreign_load(before: tuple, after: tuple, roots: set[int], database: str) -> dict:
    """Cores used by other processes between two snapshots, with the busiest ones named."""
    (t0, first), (t1, second) = before, after
    seconds = max(1e-6, t1 - t0)
    used: dict[str, float] = {}
    postgres = 0.0
    for pid, (_, _, cpu) in second.items():
        delta = cpu - first.get(pid, (0, 0, 0.0))[2]  # a process started meanwhile: all its CPU
        if delta <= 0:
            continue
        if _ours(pid, second, roots, database):
            continue
        name = " ".join(_cmdline(pid).split())[:60] or f"pid {pid}"
        if name.startswith("postgres"):
            postgres += delta  # shared server processes (checkpointer, autovacuum...) or other clusters
            continue
        used[name] = used.get(name, 0.0) + delta
    busiest = sorted(used.items(), key=lambda item: -item[1])[:3]
    return {
        "cores": round(sum(used.values()) / seconds, 2),
        "postgres_other_cores": round(postgres / seconds, 2),
        "busiest": [{"process": name, "cores": round(cpu / seconds, 2)} for name, cpu in busiest],
    }


SERVERS = {
    "gthread": "gunicorn gthread, {workers} workers x {threads} threads, keep-alive, connections spread "
    "over the workers: {placement}",
    "asgi": "gunicorn with uvicorn's ASGI worker (uvicorn-worker), {workers} workers, Django's ASGI "
    "handler running the sync views in a thread per request, keep-alive, connections placed by the "
    "workers' own accept race",
}
CONFIGS = {
    "production": "Redis cache + broker; Celery prefork {workers} with beat",
    "embedded-postgres": "in-process tasks (CELERY_TASK_ALWAYS_EAGER, no broker, no worker); the "
    "example project's default cache (local memory, per process)",
    "embedded-sqlite": "in-process tasks (CELERY_TASK_ALWAYS_EAGER, no broker, no worker); the "
    "example project's default cache (local memory, per process)",
}


def database_version() -> str:
    """``PostgreSQL 15.18`` or ``SQLite 3.40.1 (WAL, BEGIN IMMEDIATE)``: what the harness is connected to."""
    from django.db import connection

    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SHOW server_version")
            return f"PostgreSQL {cursor.fetchone()[0].split()[0]}"
        cursor.execute("PRAGMA journal_mode")
        journal = str(cursor.fetchone()[0]).upper()
    mode = connection.settings_dict.get("OPTIONS", {}).get("transaction_mode") or "DEFERRED"
    return f"SQLite {connection.Database.sqlite_version} ({journal}, BEGIN {mode})"


def describe(args: Any, secret_format: str, config: str = "production", server: str = "gthread") -> dict:
    """The run's setting, for the table's header and the JSON."""
    import platform
    import subprocess

    from .load import wrk_binary

    a = args
    database = database_version()
    pooled = server == "asgi" and database.startswith("PostgreSQL")
    connections = (
        "psycopg pool, CONN_MAX_AGE=0"
        if pooled
        else f"CONN_MAX_AGE={0 if server == 'asgi' else a.conn_max_age}"
    )
    wrk = subprocess.run([wrk_binary(), "--version"], capture_output=True, text=True).stdout.split(" [")[0]
    served = SERVERS[server].format(workers=a.workers, threads=a.threads, placement=a.placement)
    return {
        "mode": "smoke" if a.smoke else "full",
        "config": config,
        "server_kind": server,
        "server": (
            f"example_project under {served}; {database} ({connections}); "
            f"{CONFIGS[config].format(workers=a.workers)}; client secrets stored as {secret_format}; "
            f"{platform.python_implementation()} {platform.python_version()}, {a.workers} of "
            f"{os.cpu_count()} cores"
        ),
        "server_short": (
            f"gunicorn gthread {a.workers}x{a.threads} {a.placement}"
            if server == "gthread"
            else f"gunicorn + uvicorn worker x{a.workers}"
        )
        + f", {database.split(' (')[0]}",
        "load": f"{wrk}, 1 thread, closed loop, loopback; every answer checked (status and body)",
        "connections": a.connections,
        "duration": a.duration,
        "warmup": a.warmup,
        "sweep_duration": a.sweep_duration,
        "args": {k: (v if isinstance(v, int | float | bool | list) else str(v)) for k, v in vars(a).items()},
    }
