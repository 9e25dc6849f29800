"""Scale: cleanup of a million finished rows, batch by batch, while pending polls keep running.

``django_ciba.delivery.maintenance.purge_finished`` runs in a thread of the harness process; every SQL
statement it sends is timed through ``connection.execute_wrapper``. A batch is the pk-selecting
query (``ORDER BY ... LIMIT``) plus the deletes that follow it; each delete batch commits on its
own (autocommit), so the longest batch bounds how long any row lock is held. Meanwhile wrk sends
pending polls in short windows, so lock waits would show up as latency spikes or timeouts.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from .callbacks import percentile


def _is_batch_start(sql: str) -> bool:
    head = sql.lstrip().upper()
    return head.startswith("SELECT") and " ORDER BY " in head and " LIMIT " in head


def purge_with_load(run_window: Any, *, window: float, batch_size: int | None = None) -> dict[str, Any]:
    """Run the purge in a thread; ``run_window(seconds)`` (a wrk run) repeats until it is done."""
    from django.db import connection, connections

    from django_ciba.delivery import maintenance

    from .seed import row_count

    before = row_count()
    statements: list[tuple[float, float, str]] = []
    outcome: dict[str, Any] = {}

    def timer(execute, sql, params, many, context):
        started = time.monotonic()
        try:
            return execute(sql, params, many, context)
        finally:
            statements.append((started, time.monotonic(), sql))

    def purge() -> None:
        try:
            with connection.execute_wrapper(timer):
                started = time.monotonic()
                outcome["deleted"] = maintenance.purge_finished(batch_size=batch_size)
                outcome["seconds"] = time.monotonic() - started
        except Exception as exc:  # reported in the table
            outcome["error"] = f"{type(exc).__name__}: {exc}"
        finally:
            connections.close_all()

    thread = threading.Thread(target=purge, name="purge", daemon=True)
    thread.start()
    windows = []
    while thread.is_alive():
        windows.append(run_window(window))
    thread.join()

    batches: list[list[float]] = []  # [start, end, first delete start, last delete end]
    members: list[list[tuple[float, float, str]]] = []
    for started, ended, sql in statements:
        if _is_batch_start(sql) or not batches:
            batches.append([started, ended, 0.0, 0.0])
            members.append([(started, ended, sql)])
            continue
        members[-1].append((started, ended, sql))
        batch = batches[-1]
        batch[1] = ended
        if sql.lstrip().upper().startswith("DELETE"):
            batch[2] = batch[2] or started
            batch[3] = ended
    durations = [(end - start) * 1000 for start, end, _, _ in batches]
    deletes = [(last - first) * 1000 for _, _, first, last in batches if first]
    selects = [(ended - started) * 1000 for started, ended, sql in statements if _is_batch_start(sql)]
    slowest = []
    if durations:
        worst = members[durations.index(max(durations))]
        previous = worst[0][0]
        for started, ended, sql in worst:
            slowest.append(
                {
                    "sql": " ".join(sql.split())[:160],
                    "ms": round((ended - started) * 1000, 2),
                    "gap_before_ms": round((started - previous) * 1000, 2),
                }
            )
            previous = ended
    seconds = outcome.get("seconds", 0.0)
    deleted = outcome.get("deleted", 0)
    return {
        "rows_before": before,
        "rows_after": row_count(),
        "deleted": deleted,
        "seconds": round(seconds, 2),
        "rows_per_second": round(deleted / seconds) if seconds else 0,
        "batches": len(batches),
        "batch_size": batch_size,
        "statements": len(statements),
        "batch_ms": {
            "p50": round(percentile(durations, 50), 2),
            "p99": round(percentile(durations, 99), 2),
            "max": round(max(durations), 2) if durations else 0,
        },
        "select_ms_max": round(max(selects), 2) if selects else 0,
        "delete_transaction_ms_max": round(max(deletes), 2) if deletes else 0,
        "slowest_batch": slowest,
        "error": outcome.get("error", ""),
        "load_windows": windows,
    }
