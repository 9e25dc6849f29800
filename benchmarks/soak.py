"""The soak run: ``python -m benchmarks.soak [--smoke] ...``, normally through
``benchmarks/soak``, which provides the throwaway PostgreSQL cluster and Redis server.

Bounded mixed traffic on loopback against the benchmark stack (example_project under gunicorn
gthread, a Celery worker with beat, PostgreSQL, Redis, an HTTPS callback receiver): bc-authorize for
poll, ping and push clients, polls, approvals and denials, pings, pushes, expiries. Every answer is
classified (expected or unexpected); the memory of the gunicorn and Celery processes is sampled.
Prints a table; writes ``benchmarks/results/soak-<timestamp>.json``. Exit status 1 when an
unexpected error occurred, or (long form only) when a process group's memory grows.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
USERS = 50


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="benchmarks/soak", description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--smoke", action="store_true", help="the short form (CI): 50 s + 10 s warm-up; memory not judged")
    add("--duration", type=float, help="seconds of traffic after the warm-up (default 600, smoke 50)")
    add("--warmup", type=float, help="seconds of traffic before the memory baseline (default 60, smoke 10)")
    add("--threads", type=int, default=8, help="client threads (default 8)")
    add("--rate", type=float, default=8.0, help="new flows (bc-authorize) per second (default 8)")
    add("--sample-interval", type=float, help="seconds between memory samples (default 10, smoke 5)")
    add("--grace", type=float, default=180.0, help="seconds for open flows to finish after the traffic")
    add("--growth-mb", type=float, default=8.0, help="memory growth limit in MB (default 8)")
    add("--growth-pct", type=float, default=10.0, help="memory growth limit in %% (default 10)")
    add("--workers", type=int, default=os.cpu_count() or 2, help="gunicorn workers (default: cores)")
    add("--gunicorn-threads", type=int, default=4, help="gthread threads per gunicorn worker (default 4)")
    add("--celery-concurrency", type=int, default=os.cpu_count() or 2, help="prefork pool size")
    add("--seed", type=int, default=7, help="random seed of the traffic mix")
    add(
        "--json", type=Path, help="where to write the JSON (default benchmarks/results/soak-<timestamp>.json)"
    )
    add("--keep-db", action="store_true", help="do not drop the scratch database")
    args = parser.parse_args(argv)
    args.duration = args.duration if args.duration is not None else (50 if args.smoke else 600)
    args.warmup = args.warmup if args.warmup is not None else (10 if args.smoke else 60)
    args.sample_interval = args.sample_interval or (5 if args.smoke else 10)
    return args


def pool_pids(stack: Any, timeout: float = 20) -> list[int]:
    """The Celery worker's prefork pool processes, from ``inspect stats`` (beat is the other child)."""
    name = stack.project.worker_name
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            reply = stack.project.control.control.inspect(destination=[name], timeout=2).stats() or {}
            processes = reply.get(name, {}).get("pool", {}).get("processes")
            if processes:
                return sorted(int(pid) for pid in processes)
        except Exception:  # the broker or the worker not answering yet
            pass
        time.sleep(0.5)
    return []


def process_groups(stack: Any, pool: list[int]) -> dict[str, list[int]]:
    """The server's processes by group: gunicorn master and workers, Celery main, pool and beat
    (``pool``: the pool's pids; without them, all the main process's children are one group)."""
    from tests.integration.services import children

    groups: dict[str, list[int]] = {"soak driver (this process)": [os.getpid()]}
    if stack.gunicorn is not None:
        groups["gunicorn master"] = [stack.gunicorn.pid]
        groups["gunicorn workers"] = children(stack.gunicorn.pid)
    worker = stack.project.worker
    if worker is not None:
        kids = children(worker.pid)
        groups["celery main"] = [worker.pid]
        if pool:
            groups["celery pool"] = [pid for pid in kids if pid in pool]
            groups["celery beat"] = [pid for pid in kids if pid not in pool]
        else:
            groups["celery children (pool + beat)"] = kids
    return groups


def token_rows(clients: dict[str, Any]) -> dict[str, int]:
    """Access tokens stored per soak client (each flow's tokens are minted once)."""
    from oauth2_provider.models import get_access_token_model

    AccessToken = get_access_token_model()
    return {
        mode: AccessToken.objects.filter(application=client.application).count()
        for mode, client in clients.items()
    }


def delivery_counts() -> dict[str, int]:
    from django.db.models import Count

    from django_ciba.models import Delivery

    rows = Delivery.objects.values("kind", "status").annotate(n=Count("pk"))
    return {f"{row['kind']}/{row['status']}": row["n"] for row in rows}


def server_line(args: argparse.Namespace) -> str:
    import platform

    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        pg = cursor.fetchone()[0].split()[0]
    return (
        f"gunicorn gthread {args.workers}x{args.gunicorn_threads}, Celery prefork {args.celery_concurrency} "
        f"+ beat, PostgreSQL {pg}, Redis; {platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} cores"
    )


def due_deliveries() -> int:
    from django_ciba.models import Delivery

    return Delivery.objects.filter(status=Delivery.Status.PENDING).count()


# A device notification is cancelled when the user decided before the worker sent it.
FINE_DELIVERIES = {"device/delivered", "device/cancelled", "ping/delivered", "push_tokens/delivered"}
FINE_DELIVERIES |= {"push_error/delivered"}


def render(data: dict[str, Any]) -> str:
    from .soak_memory import render as memory_table

    meta = data["meta"]
    lines = [
        f"django-ciba soak ({'smoke' if meta['smoke'] else 'long form'}): "
        f"{meta['traffic_s']:.0f} s of traffic "
        f"({meta['warmup_s']:.0f} s warm-up), {meta['threads']} client threads, {meta['rate']:g} flows/s; "
        f"{meta['server']}",
        "",
    ]
    header = (
        f"{'kind':<46}{'count':>8}{'per s':>8}{'p50 ms':>10}{'p95 ms':>10}{'max ms':>10}{'unexpected':>12}"
    )
    lines += [header, "-" * len(header)]

    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}"

    for row in data["kinds"]:
        lines.append(
            f"{row['kind']:<46}{row['count']:>8}{row['rate']:>8.2f}{ms(row['p50_ms']):>10}"
            f"{ms(row['p95_ms']):>10}{ms(row['max_ms']):>10}{row['unexpected']:>12}"
        )
    traffic = data["traffic"]
    lines += [
        "",
        f"flows {traffic['flows']}: " + ", ".join(f"{k} {v}" for k, v in traffic["plans"].items()),
        f"tokens received {traffic['tokens_received']}, stored {data['checks']['tokens_stored']}; "
        f"callbacks {traffic['callbacks']}; drain {traffic['drain_s']} s; most deliveries due "
        f"{traffic['deliveries_due_max']}; schedule lateness "
        f"p95 {traffic['schedule_lateness_ms']['p95']} ms, max {traffic['schedule_lateness_ms']['max']} ms",
        f"deliveries: {data['checks']['deliveries']}",
        "",
        f"memory (RSS in MB, sums per group; baseline = first sample after {meta['warmup_s']:.0f} s; "
        f"grows = fitted growth > {meta['growth_mb']:g} MB and > {meta['growth_pct']:g} %):",
        memory_table(data["memory"], judged=not meta["smoke"]),
    ]
    if data["restarts"]:
        lines.append(f"process changes during the run: {data['restarts']}")
    lines.append("")
    if data["unexpected_samples"]:
        lines.append("unexpected errors (first ones):")
        lines += [f"  {sample}" for sample in data["unexpected_samples"]]
    for excerpt in data["log_errors"]:
        lines.append("error lines in the logs:\n  " + excerpt)
    lines.append(
        f"RESULT: {'PASS' if data['passed'] else 'FAIL'}: unexpected errors {data['unexpected']}, "
        f"growing groups {data['growing'] or 'none'}"
        + (" (memory not judged in the smoke form)" if meta["smoke"] else "")
    )
    lines.append(f"JSON: {meta['json']}   logs: {meta['logs']}   wall time {meta['elapsed_s']:.0f} s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for name in ("DATABASE_URL", "CELERY_BROKER_URL"):
        if not os.environ.get(name):
            print(
                f"{name} is not set: run benchmarks/soak (PostgreSQL and Redis are started there)",
                file=sys.stderr,
            )
            return 2
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    run_dir = RESULTS / f"soak-{stamp}-logs"
    run_dir.mkdir(parents=True, exist_ok=True)
    json_path = args.json or RESULTS / f"soak-{stamp}.json"

    from tests.integration.receiver import CallbackReceiver

    from .stack import Stack, create_database, drop_database, harness_environment

    started = time.monotonic()

    def log(message: str) -> None:
        print(f"[soak {time.monotonic() - started:6.1f}s] {message}", flush=True)

    cluster_url = os.environ["DATABASE_URL"]
    db_name, db_url = create_database(cluster_url, prefix="ciba_soak")
    receiver = CallbackReceiver(run_dir / "receiver")
    stack = Stack(
        run_dir,
        database_url=db_url,
        broker_url=os.environ["CELERY_BROKER_URL"],
        workers=args.workers,
        threads=args.gunicorn_threads,
        balanced=True,
        ca_file=receiver.ca_file,
        extra_env={"CIBA_EXAMPLE_SWEEP_SECONDS": "10"},
    )
    status = 1
    try:
        harness_environment(stack.env)
        import django

        django.setup()
        from django.conf import settings

        from . import seed
        from .soak_memory import MemorySampler
        from .soak_traffic import Traffic

        log(f"migrating the scratch database {db_name}")
        stack.migrate()
        storage = settings.BENCH_SECRET_STORAGE
        users = seed.create_users(USERS)
        clients = {
            "poll": seed.create_client("soak poll", "poll", secret_storage=storage),
            "ping": seed.create_client(
                "soak ping", "ping", secret_storage=storage, endpoint=receiver.url("/ping")
            ),
            "push": seed.create_client(
                "soak push", "push", secret_storage=storage, endpoint=receiver.url("/push")
            ),
        }
        log(
            f"starting gunicorn ({args.workers} gthread workers x {args.gunicorn_threads} threads) "
            f"and Celery (prefork {args.celery_concurrency}, beat)"
        )
        stack.start_gunicorn()
        stack.start_worker(concurrency=args.celery_concurrency)
        # Each worker accepts its share of the kept-alive client connections, plus slack for reconnects.
        stack.spread_connections(args.threads + 2 * args.workers)
        stack.logs.new_errors()  # start-up noise is not soak errors
        pool = pool_pids(stack)
        groups = process_groups(stack, pool)
        log("processes: " + "; ".join(f"{name} {pids}" for name, pids in groups.items()))

        traffic = Traffic(
            stack.base_url,
            clients,
            [user.username for user in users],
            receiver,
            threads=args.threads,
            rate=args.rate,
            seconds=args.warmup + args.duration,
            grace=args.grace,
            seed=args.seed,
            log=log,
            backlog=due_deliveries,
        )
        sampler = MemorySampler(lambda: process_groups(stack, pool), args.sample_interval)
        log(
            f"traffic: {args.warmup:g} s warm-up + {args.duration:g} s, {args.rate:g} flows/s, "
            f"{args.threads} client threads; memory every {args.sample_interval:g} s"
        )
        sampler.start()
        traffic.run()
        sampler.stop()
        traffic_s = args.warmup + args.duration

        log_errors = stack.logs.new_errors()
        for excerpt in log_errors:
            traffic.stats.bad("log error lines", excerpt.splitlines()[0])
        for error in receiver.errors:
            traffic.stats.bad("receiver error", error)
        tokens_stored = token_rows(clients)
        received = traffic.tokens_received
        expected_tokens = {"poll": received["poll"], "ping": received["ping"], "push": received["push"]}
        if tokens_stored != expected_tokens:
            traffic.stats.bad(
                "tokens stored vs received", f"stored {tokens_stored}, received {expected_tokens}"
            )
        deliveries = delivery_counts()
        for key, count in deliveries.items():
            if key not in FINE_DELIVERIES:
                traffic.stats.bad("deliveries not delivered", f"{key}: {count}")
        memory = sampler.summary(
            args.warmup,
            threshold_mb=args.growth_mb,
            threshold_pct=args.growth_pct,
            informative={"soak driver (this process)"},
        )
        restarts = sampler.restarts()
        for name, count in restarts.items():
            if name != "soak driver (this process)":
                traffic.stats.bad("process restarts", f"{name}: the set of processes changed {count} time(s)")
        growing = [row["group"] for row in memory if row.get("judged") and row.get("grows")]
        unexpected = traffic.stats.unexpected_total
        passed = unexpected == 0 and (args.smoke or not growing)
        data = {
            "meta": {
                "started": stamp,
                "smoke": args.smoke,
                "traffic_s": traffic_s,
                "warmup_s": args.warmup,
                "duration_s": args.duration,
                "threads": args.threads,
                "rate": args.rate,
                "workers": args.workers,
                "gunicorn_threads": args.gunicorn_threads,
                "celery_concurrency": args.celery_concurrency,
                "sample_interval_s": args.sample_interval,
                "growth_mb": args.growth_mb,
                "growth_pct": args.growth_pct,
                "server": server_line(args),
                "json": str(json_path),
                "logs": str(run_dir),
                "elapsed_s": time.monotonic() - started,
            },
            "kinds": traffic.stats.rows(traffic_s),
            "traffic": traffic.summary(),
            "checks": {"tokens_stored": tokens_stored, "deliveries": deliveries},
            "memory": memory,
            "restarts": restarts,
            "unexpected": unexpected,
            "unexpected_by_kind": dict(traffic.stats.unexpected),
            "unexpected_samples": traffic.stats.samples,
            "log_errors": log_errors,
            "growing": growing,
            "passed": passed,
        }
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(data, indent=2, default=str) + "\n")
        print(render(data), flush=True)
        status = 0 if passed else 1
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
