"""Baseline Celery tasks of the callback-latency benchmark (imported by the worker through
``CELERY_IMPORTS`` in ``benchmarks/settings.py``)."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="benchmarks.noop")
def noop() -> float:
    """Nothing: enqueue -> run -> result is the broker's and the worker's own round trip."""
    import time

    return time.time()


@shared_task(name="benchmarks.post", ignore_result=True)
def post(url: str) -> int:
    """One callback-like POST through django_ciba.core.outbound from the worker (no database work)."""
    from django_ciba.core.outbound import post_json

    return post_json(url, b'{"benchmark":"baseline"}', headers={"Authorization": "Bearer baseline"}).status
