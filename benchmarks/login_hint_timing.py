"""How long ``bc-authorize`` takes to answer a known and an unknown ``login_hint``, over HTTP.

The example project runs under gunicorn on PostgreSQL (as in the benchmark); one kept-alive
connection sends known and unknown hints in alternating order, first with
``CIBA["EQUALIZE_UNKNOWN_USER_TIMING"]`` on (the default), then with it off. Prints mean,
median, p90 and the difference of the means with its 95 % confidence interval; writes
``benchmarks/results/<timestamp>-login-hint-timing.json``. From a fresh clone::

    scripts/with-postgres scripts/with-redis .venv/bin/python -m benchmarks.login_hint_timing

(``--requests N`` per kind and mode, default 1000; ``make login-hint-timing`` runs it too.)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
USERS = 200


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1000, help="requests per kind and mode")
    parser.add_argument("--warmup", type=int, default=100, help="unmeasured requests per kind first")
    parser.add_argument("--json", type=Path, help="where the figures go")
    return parser.parse_args(argv)


def describe(seconds: list[float]) -> dict[str, float]:
    ms = sorted(value * 1000 for value in seconds)
    return {
        "n": len(ms),
        "mean_ms": statistics.fmean(ms),
        "median_ms": statistics.median(ms),
        "p90_ms": ms[int(0.9 * (len(ms) - 1))],
        "stdev_ms": statistics.stdev(ms) if len(ms) > 1 else 0.0,
    }


def compare(known: list[float], unknown: list[float]) -> dict[str, Any]:
    """Difference of the means (known - unknown) with a 95 % interval (Welch, normal quantile)."""
    a, b = describe(known), describe(unknown)
    diff = a["mean_ms"] - b["mean_ms"]
    half = 1.96 * math.sqrt(a["stdev_ms"] ** 2 / a["n"] + b["stdev_ms"] ** 2 / b["n"])
    return {
        "known": a,
        "unknown": b,
        "mean_diff_ms": diff,
        "mean_diff_ci95_ms": [diff - half, diff + half],
        "median_diff_ms": a["median_ms"] - b["median_ms"],
        "indistinguishable": diff - half <= 0 <= diff + half,
    }


def measure(base_url: str, auth: str, users: list[str], count: int, warmup: int) -> dict[str, Any]:
    import requests

    session = requests.Session()
    session.trust_env = False
    url = f"{base_url}/o/bc-authorize"
    headers = {"Authorization": auth}
    times: dict[str, list[float]] = {"known": [], "unknown": []}
    expected = {"known": (200, None), "unknown": (400, "unknown_user_id")}
    wrong = 0
    for number in range(warmup + count):
        order = ("known", "unknown") if number % 2 else ("unknown", "known")
        for kind in order:
            hint = users[number % len(users)] if kind == "known" else f"nobody-{number:06d}"
            started = time.perf_counter()
            response = session.post(url, data={"scope": "openid", "login_hint": hint}, headers=headers)
            elapsed = time.perf_counter() - started
            try:
                answer = (response.status_code, response.json().get("error"))
            except ValueError:
                answer = (response.status_code, "not JSON")
            if answer != expected[kind]:
                wrong += 1
            elif number >= warmup:
                times[kind].append(elapsed)
    session.close()
    result = compare(times["known"], times["unknown"])
    result["wrong_answers"] = wrong
    return result


def render(results: dict[str, dict[str, Any]]) -> str:
    lines = [
        "login_hint timing at bc-authorize (ms; HTTP, gunicorn, PostgreSQL)",
        f"{'equalisation':<13}{'kind':<9}{'n':>6}{'mean':>9}{'median':>9}{'p90':>9}{'stdev':>9}",
    ]
    for mode, result in results.items():
        for kind in ("known", "unknown"):
            row = result[kind]
            lines.append(
                f"{mode:<13}{kind:<9}{row['n']:>6}{row['mean_ms']:>9.2f}{row['median_ms']:>9.2f}"
                f"{row['p90_ms']:>9.2f}{row['stdev_ms']:>9.2f}"
            )
        low, high = result["mean_diff_ci95_ms"]
        lines.append(
            f"{mode:<13}known - unknown: mean {result['mean_diff_ms']:+.2f} ms "
            f"(95 % CI {low:+.2f} .. {high:+.2f}), median {result['median_diff_ms']:+.2f} ms; "
            f"wrong answers {result['wrong_answers']}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for name in ("DATABASE_URL", "CELERY_BROKER_URL"):
        if not os.environ.get(name):
            print(f"{name} is not set: run under scripts/with-postgres scripts/with-redis", file=sys.stderr)
            return 2
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    run_dir = RESULTS / f"{stamp}-login-hint-logs"
    run_dir.mkdir(parents=True, exist_ok=True)

    from .stack import Stack, create_database, drop_database, harness_environment

    cluster_url = os.environ["DATABASE_URL"]
    db_name, db_url = create_database(cluster_url, prefix="ciba_timing")
    stack = Stack(
        run_dir,
        database_url=db_url,
        broker_url=os.environ["CELERY_BROKER_URL"],
        workers=1,
        threads=1,
        balanced=False,
        ca_file=None,
        extra_env={},
    )
    results: dict[str, dict[str, Any]] = {}
    try:
        harness_environment(stack.env)
        import django

        django.setup()
        from .seed import create_client, create_users

        stack.migrate()
        from django.conf import settings

        users = [user.username for user in create_users(USERS)]
        client = create_client("Timing", "poll", secret_storage=settings.BENCH_SECRET_STORAGE)
        for mode, flag in (("on", "1"), ("off", "0")):
            stack.env["BENCH_EQUALIZE_TIMING"] = flag
            stack.start_gunicorn()
            try:
                results[mode] = measure(stack.base_url, client.auth, users, args.requests, args.warmup)
            finally:
                stack.stop_gunicorn()
    finally:
        stack.stop()
        from django.db import connections

        connections.close_all()
        drop_database(cluster_url, db_name)
    print(render(results), flush=True)
    path = args.json or RESULTS / f"{stamp}-login-hint-timing.json"
    path.write_text(json.dumps({"started": stamp, "requests": args.requests, "results": results}, indent=2))
    print(f"figures: {path}")
    return 1 if any(result["wrong_answers"] for result in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
