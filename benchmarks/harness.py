"""The benchmark: ``python -m benchmarks.harness [--smoke] ...``, normally through
``benchmarks/run``, which provides the throwaway PostgreSQL cluster and Redis server.

One section per configuration (``--configs``) and server (``--server``), each in a process of its
own (``--section``, set by the parent): a scratch database (PostgreSQL, or a SQLite file), migrated
and seeded (bulk inserts); example_project under gunicorn (and a Celery worker in the production
configuration); then wrk runs the request scenarios. The first section also measures
node-oidc-provider between its rounds as the reference (unless --no-reference or --smoke), the
concurrency sweep, the callback latencies, the scale check and (optionally) a profile. Prints one
table; writes ``benchmarks/results/<timestamp>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from . import load
from .report import merge_sections, plot, render, write_json


HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
DOCS_PLOT = ROOT / "docs" / "_static" / "bench-concurrency.png"
CONFIGS = ("production", "embedded-postgres", "embedded-sqlite")
SERVERS = ("gthread", "asgi")


def _choices(text: str, allowed: tuple[str, ...], what: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    if names == ["all"]:
        return list(allowed)
    unknown = [name for name in names if name not in allowed]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"{what}: {', '.join(unknown) or 'none given'} (choose from {', '.join(allowed)} or all)"
        )
    return list(dict.fromkeys(names))


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
    add(
        "--configs",
        type=lambda text: _choices(text, CONFIGS, "unknown configuration"),
        help="comma-separated, one table section each: production (gunicorn, PostgreSQL, Redis cache, "
        "Celery worker), embedded-postgres and embedded-sqlite (in-process tasks, no broker, the "
        "default local-memory cache), or all (default: all; smoke: production)",
    )
    add(
        "--server",
        type=lambda text: _choices(text, SERVERS, "unknown server"),
        default=["gthread"],
        help="comma-separated: gthread (default; WSGI, balanced placement) and/or asgi (gunicorn with "
        "uvicorn's worker, Django's ASGI handler); each configuration is measured under each",
    )
    add("--section", help=argparse.SUPPRESS)  # CONFIG:SERVER, set by the parent for each child
    add("--primary", action="store_true", help=argparse.SUPPRESS)  # the child that runs the extras
    add("--logs", type=Path, help=argparse.SUPPRESS)  # the child's log directory
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
    args.configs = args.configs or (["production"] if smoke else list(CONFIGS))
    return args


def sections(args: argparse.Namespace) -> list[tuple[str, str]]:
    """``(configuration, server)`` pairs in the order they run; the first one runs the extras."""
    return [(config, server) for config in args.configs for server in args.server]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.section:
        return section_main(args)
    needed = ["DATABASE_URL"] + (["CELERY_BROKER_URL"] if "production" in args.configs else [])
    for name in needed:
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
    started = time.monotonic()
    parts = []
    for index, (config, server) in enumerate(sections(args)):
        name = f"{config}:{server}"
        part = run_dir / f"{config}-{server}.json"
        child = [
            *(sys.argv[1:] if argv is None else argv),
            *("--section", name, "--json", str(part), "--logs", str(run_dir / f"{config}-{server}")),
            *(["--primary"] if index == 0 else []),
        ]
        print(f"[bench {time.monotonic() - started:6.1f}s] section {name}", flush=True)
        code = _child([sys.executable, "-m", "benchmarks.harness", *child])
        if not part.exists():
            print(f"section {name} failed (exit {code}); see its log lines above", file=sys.stderr)
            return code or 1
        parts.append(json.loads(part.read_text()))
    data = merge_sections(parts)
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
    return 1 if (args.fail_on_wrong_answers and data["flagged"]) else 0


def _child(command: list[str], grace: float = 90) -> int:
    """Run one section in a session of its own, so that exactly one SIGINT reaches it: the one
    passed on here when this process gets Ctrl-C (from the terminal, or from scripts/with-postgres
    on the run's timeout); the section then stops its servers and drops its database."""
    process = subprocess.Popen(command, start_new_session=True)
    try:
        return process.wait()
    except KeyboardInterrupt:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        raise


def section_main(args: argparse.Namespace) -> int:
    """One configuration under one server (a child of :func:`main`): its JSON goes to ``--json``."""
    config, server = args.section.split(":")
    run_dir = args.logs or RESULTS / f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-logs"
    run_dir.mkdir(parents=True, exist_ok=True)

    from tests.integration.receiver import CallbackReceiver

    from .stack import Stack, create_database, drop_database, harness_environment

    cluster_url = os.environ["DATABASE_URL"]
    if config == "embedded-sqlite":
        db_name, db_url = "", f"sqlite:///{run_dir / 'bench.sqlite3'}"
    else:
        db_name, db_url = create_database(cluster_url)
    receiver = CallbackReceiver(run_dir / "receiver")
    stack = Stack(
        run_dir,
        database_url=db_url,
        broker_url=os.environ["CELERY_BROKER_URL"] if config == "production" else "",
        workers=args.workers,
        threads=args.threads,
        balanced=args.placement == "balanced",
        ca_file=receiver.ca_file,
        extra_env={
            "BENCH_CONN_MAX_AGE": str(args.conn_max_age),
            "BENCH_SECRET_HASHER": args.secret_hasher,
            "CIBA_EXAMPLE_SWEEP_SECONDS": "10",
        },
        server=server,
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
            log=lambda msg: print(
                f"[bench {config}:{server} {time.monotonic() - started:6.1f}s] {msg}", flush=True
            ),
            config=config,
            primary=args.primary,
        )
        data = bench.run()
        data["meta"]["elapsed_s"] = time.monotonic() - started
        write_json(data, args.json)
        status = 0
    finally:
        stack.stop()
        receiver.close()
        from django.db import connections

        connections.close_all()
        if not args.keep_db:
            if db_name:
                drop_database(cluster_url, db_name)
            else:
                for path in run_dir.glob("bench.sqlite3*"):
                    path.unlink()
    return status


if __name__ == "__main__":
    sys.exit(main())
