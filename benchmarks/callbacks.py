"""Approval-to-callback latency (ping and push) and its baselines, measured in the harness process.

Each seeded ping or push request is approved with ``django_ciba.approval.decisions.approve`` inside an outer
transaction whose first ``on_commit`` hook stamps the commit (it runs before the outbox dispatch
hook that ``approve`` registers); the loopback HTTPS receiver stamps the arrival with the same
monotonic clock. One approval at a time, so these are latencies, not throughput.

Baselines: a no-op Celery task's round trip (enqueue -> worker -> result in Redis -> caller), one
direct ``django_ciba.core.outbound.post_json`` to the receiver, and a Celery task that makes that POST
(enqueue -> arrival), the floor for any worker-delivered callback.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from django.db import transaction

from django_ciba.approval import decisions
from django_ciba.core.outbound import post_json


def percentile(values: list[float], pct: float) -> float:
    """Linear interpolation between closest ranks (``values`` need not be sorted)."""
    if not values:
        return float("nan")
    data = sorted(values)
    rank = (len(data) - 1) * pct / 100.0
    low = int(rank)
    high = min(low + 1, len(data) - 1)
    return data[low] + (data[high] - data[low]) * (rank - low)


def summarize(name: str, seconds: list[float], *, errors: int = 0, samples: list[str] | None = None) -> dict:
    ms = [value * 1000.0 for value in seconds]
    return {
        "scenario": name,
        "count": len(ms),
        "p50": round(percentile(ms, 50), 2),
        "p95": round(percentile(ms, 95), 2),
        "p99": round(percentile(ms, 99), 2),
        "max": round(max(ms), 2) if ms else float("nan"),
        "errors": errors,
        "samples": samples or [],
        "flagged": errors > 0 or not ms,
    }


def _timed(count: int, warmup: int, one: Callable[[int], float | None]) -> tuple[list[float], int, list[str]]:
    values: list[float] = []
    errors = 0
    samples: list[str] = []
    for index in range(warmup + count):
        try:
            value = one(index)
        except Exception as exc:  # reported, not raised: the table flags the scenario
            value = None
            if len(samples) < 3:
                samples.append(f"{type(exc).__name__}: {str(exc)[:300]}")
        if index < warmup:
            continue
        if value is None:
            errors += 1
        else:
            values.append(value)
    return values, errors, samples


def callback_latency(receiver: Any, path: str, pairs: list[tuple[str, Any]], *, warmup: int = 2) -> dict:
    """Approve ``pairs`` (auth_req_id, request) one by one; commit -> arrival at ``path``."""
    name = "push" if "push" in path else "ping"

    def one(index: int) -> float | None:
        auth_req_id, auth_request = pairs[index]
        seen = len(receiver.requests(path))
        stamp: dict[str, float] = {}
        with transaction.atomic():
            transaction.on_commit(lambda: stamp.setdefault("commit", time.monotonic()))
            decisions.approve(auth_request, user=auth_request.user)
        arrived = receiver.wait_for(seen + 1, path=path, timeout=60)[seen]
        body = arrived.json()
        if body.get("auth_req_id") != auth_req_id:
            raise AssertionError(f"{name} callback for another request: {sorted(body)}")
        if name == "push" and "id_token" not in body:
            raise AssertionError(f"push callback without tokens: {sorted(body)}")
        return arrived.monotonic - stamp["commit"]

    count = len(pairs) - warmup
    values, errors, samples = _timed(count, warmup, one)
    return summarize(f"{name} callback", values, errors=errors, samples=samples)


def noop_round_trip(count: int, *, warmup: int = 3) -> dict:
    from benchmarks.tasks import noop

    def one(index: int) -> float:
        started = time.monotonic()
        noop.delay().get(timeout=30)
        return time.monotonic() - started

    values, errors, samples = _timed(count, warmup, one)
    return summarize("celery no-op round trip", values, errors=errors, samples=samples)


def direct_post(receiver: Any, count: int, *, warmup: int = 3) -> dict:
    url = receiver.url("/baseline-post")

    def one(index: int) -> float:
        started = time.monotonic()
        response = post_json(url, b'{"benchmark":"baseline"}', headers={"Authorization": "Bearer x"})
        if response.status != 204:
            raise AssertionError(f"receiver answered {response.status}")
        return time.monotonic() - started

    values, errors, samples = _timed(count, warmup, one)
    return summarize("HTTPS POST (post_json)", values, errors=errors, samples=samples)


def task_post(receiver: Any, count: int, *, warmup: int = 3) -> dict:
    from benchmarks.tasks import post

    path = "/baseline-task"
    url = receiver.url(path)

    def one(index: int) -> float:
        seen = len(receiver.requests(path))
        started = time.monotonic()
        post.delay(url)
        arrived = receiver.wait_for(seen + 1, path=path, timeout=60)[seen]
        return arrived.monotonic - started

    values, errors, samples = _timed(count, warmup, one)
    return summarize("celery task + POST", values, errors=errors, samples=samples)
