"""The benchmark: ``python -m benchmarks.harness [--smoke] ...``, normally through
``benchmarks/run``, which provides the throwaway PostgreSQL cluster and Redis server.

Steps: a scratch database, migrated and seeded (bulk inserts); example_project under gunicorn and a
Celery worker; then wrk runs (requests, with node-oidc-provider measured between the rounds as the
reference unless --no-reference or --smoke), a concurrency sweep, callback latencies, the scale
check and (optionally) a profile. Prints a table; writes ``benchmarks/results/<timestamp>.json``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from . import load
from .report import plot, render, write_json


HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
DOCS_PLOT = ROOT / "docs" / "_static" / "bench-concurrency.png"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="benchmarks/run", description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add(
        "--smoke",
        action="store_true",
        help="a short run (CI): seconds per scenario, sweep 1 and 4, no 1M rows",
    )
    add("--duration", type=float, help="seconds per measured run (default 15, smoke 3)")
    add("--warmup", type=float, help="seconds of warm-up before each scenario (default 3, smoke 1)")
    add("--connections", type=int, default=16, help="wrk connections of the main runs (default 16)")
    add("--rounds", type=int, default=3, help="interleaved rounds per measurement (sweep: one fewer)")
    add("--sweep", help="connection counts of the sweep (default 1,2,4,8,16,32,64; smoke 1,4)")
    add("--sweep-duration", type=float, help="seconds per sweep point (default 8, smoke 2)")
    add("--workers", type=int, default=os.cpu_count() or 2, help="gunicorn workers (default: cores)")
    add("--threads", type=int, default=4, help="gthread threads per gunicorn worker (default 4)")
    add(
        "--placement",
        choices=("balanced", "free"),
        default="balanced",
        help="balanced (default): each worker accepts its share of wrk's connections, as behind a load "
        "balancer; free: gunicorn's own accept race (one worker often takes them all)",
    )
    add("--conn-max-age", type=int, default=600, help="Django CONN_MAX_AGE (default 600)")
    add("--secret-hasher", choices=("fast", "default"), default="fast", help="client secret hashing")
    add("--callbacks", type=int, help="approvals per callback mode (default 50, smoke 8)")
    add("--scale-rows", type=int, help="rows for the large scale point (default 1000000; smoke: none)")
    add("--approved-ids", type=int, help="approved requests to seed (default: sized from the measured rates)")
    add("--skip-scale", action="store_true")
    add("--skip-callbacks", action="store_true")
    add("--skip-sweep", action="store_true")
    add("--profile", choices=("none", "pending-poll"), default="none", help="profile a pending-poll run")
    add("--profiler", choices=("auto", "py-spy", "pyinstrument"), default="auto")
    add("--profile-format", choices=("flamegraph", "speedscope", "raw"), default="flamegraph")
    add("--json", type=Path, help="where to write the JSON (default benchmarks/results/<timestamp>.json)")
    add(
        "--plot",
        type=Path,
        help="concurrency plot (default: docs/_static/bench-concurrency.png; smoke: results)",
    )
    add(
        "--reference",
        action=argparse.BooleanOptionalAction,
        help="also measure node-oidc-provider (benchmarks/oidc_provider/run) between the rounds of the "
        "request block, for the reference rows and the 'x reference' column (default: on, off with --smoke)",
    )
    add("--keep-db", action="store_true", help="do not drop the scratch database")
    add("--fail-on-wrong-answers", action="store_true", help="exit 1 when a scenario is flagged")
    args = parser.parse_args(argv)
    smoke = args.smoke
    args.duration = args.duration or (3 if smoke else 15)
    args.warmup = args.warmup if args.warmup is not None else (1 if smoke else 3)
    args.sweep_duration = args.sweep_duration or (2 if smoke else 8)
    args.sweep = [int(x) for x in (args.sweep or ("1,4" if smoke else "1,2,4,8,16,32,64")).split(",")]
    args.callbacks = args.callbacks or (8 if smoke else 50)
    args.reference = args.reference if args.reference is not None else not smoke
    args.scale_rows = args.scale_rows if args.scale_rows is not None else (0 if smoke else 1_000_000)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for name in ("DATABASE_URL", "CELERY_BROKER_URL"):
        if not os.environ.get(name):
            print(
                f"{name} is not set: run benchmarks/run (PostgreSQL and Redis are started there)",
                file=sys.stderr,
            )
            return 2
    load.wrk_binary()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    run_dir = RESULTS / f"{stamp}-logs"
    run_dir.mkdir(parents=True, exist_ok=True)
    json_path = args.json or RESULTS / f"{stamp}.json"
    plot_path = args.plot or (RESULTS / f"{stamp}-concurrency.png" if args.smoke else DOCS_PLOT)

    from tests.integration.receiver import CallbackReceiver

    from .stack import Stack, create_database, drop_database, harness_environment

    cluster_url = os.environ["DATABASE_URL"]
    db_name, db_url = create_database(cluster_url)
    receiver = CallbackReceiver(run_dir / "receiver")
    stack = Stack(
        run_dir,
        database_url=db_url,
        broker_url=os.environ["CELERY_BROKER_URL"],
        workers=args.workers,
        threads=args.threads,
        balanced=args.placement == "balanced",
        ca_file=receiver.ca_file,
        extra_env={
            "BENCH_CONN_MAX_AGE": str(args.conn_max_age),
            "BENCH_SECRET_HASHER": args.secret_hasher,
            "CIBA_EXAMPLE_SWEEP_SECONDS": "10",
        },
    )
    started = time.monotonic()
    status = 1
    try:
        harness_environment(stack.env)
        import django

        django.setup()
        from .runner import Bench

        bench = Bench(
            args,
            stack,
            receiver,
            log=lambda msg: print(f"[bench {time.monotonic() - started:6.1f}s] {msg}", flush=True),
        )
        data = bench.run()
        data["meta"].update(
            started=stamp,
            elapsed_s=time.monotonic() - started,
            json=str(json_path),
            plot=str(plot_path) if data.get("sweep") else "",
            logs=str(run_dir),
        )
        if data.get("sweep"):
            title = f"django-ciba pending poll vs DOT client_credentials ({data['meta']['server_short']})"
            plot(data["sweep"], plot_path, title)
        write_json(data, json_path)
        print(render(data), flush=True)
        status = 1 if (args.fail_on_wrong_answers and bench.flagged) else 0
    finally:
        stack.stop()
        receiver.close()
        if not args.keep_db:
            from django.db import connections

            connections.close_all()
            drop_database(cluster_url, db_name)
    return status


if __name__ == "__main__":
    sys.exit(main())
