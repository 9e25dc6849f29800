"""The benchmark's configurations and servers (benchmarks/harness.py, stack.py, report.py, seed.py):
--configs and --server, one table section per pair, the ratios of every section to its own
baseline and to the reference, the ASGI command line, and SQLite as the example project sets it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.harness import parse_args, sections
from benchmarks.load import Result, combine
from benchmarks.report import merge_sections, render


ROOT = Path(__file__).resolve().parents[2]


def test_configs_default_to_all_three_and_smoke_to_production():
    assert parse_args([]).configs == ["production", "embedded-postgres", "embedded-sqlite"]
    assert parse_args(["--smoke"]).configs == ["production"]
    assert parse_args(["--smoke", "--configs", "all"]).configs == [
        "production",
        "embedded-postgres",
        "embedded-sqlite",
    ]
    assert parse_args(["--configs", "embedded-sqlite,production"]).configs == [
        "embedded-sqlite",
        "production",
    ]
    assert parse_args([]).server == ["gthread"]


def test_unknown_config_or_server_is_refused(capsys):
    with pytest.raises(SystemExit):
        parse_args(["--configs", "production,embedded-mysql"])
    assert "embedded-mysql" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_args(["--server", "sync"])
    assert "sync" in capsys.readouterr().err


def test_every_configuration_under_every_server_first_section_first():
    args = parse_args(["--configs", "production,embedded-sqlite", "--server", "gthread,asgi"])
    assert sections(args) == [
        ("production", "gthread"),
        ("production", "asgi"),
        ("embedded-sqlite", "gthread"),
        ("embedded-sqlite", "asgi"),
    ]


def _stack(tmp_path: Path, server: str):
    from benchmarks.stack import Stack

    return Stack(
        tmp_path,
        database_url="sqlite:///unused.sqlite3",
        broker_url="",
        workers=2,
        threads=4,
        balanced=True,
        ca_file=None,
        extra_env={},
        server=server,
    )


def test_asgi_runs_uvicorns_worker_on_the_asgi_application(tmp_path):
    stack = _stack(tmp_path, "asgi")
    args = stack.server_args()
    assert args[0] == "example_project.asgi:application"
    assert args[args.index("--worker-class") + 1] == "uvicorn_worker.UvicornWorker"
    assert "--threads" not in args
    assert stack.env["BENCH_SERVER"] == "asgi"
    assert not stack.balanced  # no accept cap to set in uvicorn's worker
    assert "BENCH_WORKER_CONNECTIONS_FILE" not in stack.env
    assert "CELERY_BROKER_URL" not in stack.env  # embedded: tasks run in-process


def test_gthread_keeps_the_balanced_thread_worker(tmp_path):
    stack = _stack(tmp_path, "gthread")
    args = stack.server_args()
    assert args[0] == "example_project.wsgi:application"
    assert args[args.index("--worker-class") + 1] == "benchmarks.gunicorn_worker.BalancedThreadWorker"
    assert args[args.index("--threads") + 1] == "4"
    assert stack.balanced


def test_harness_environment_drops_the_broker_of_an_embedded_section(monkeypatch):
    from benchmarks.stack import harness_environment

    monkeypatch.setattr(os, "environ", dict(os.environ))  # harness_environment changes os.environ
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://127.0.0.1:1/0")
    monkeypatch.setenv("DATABASE_URL", "postgres://x@127.0.0.1/old")
    harness_environment({"DATABASE_URL": "sqlite:///bench.sqlite3", "BENCH_SERVER": "asgi"})
    assert "CELERY_BROKER_URL" not in os.environ
    assert os.environ["DATABASE_URL"] == "sqlite:///bench.sqlite3"
    assert os.environ["BENCH_SERVER"] == "asgi"


def test_server_and_worker_cpu_per_request_are_pooled():
    def result(requests: int, cpu: float, worker: float | None = None) -> Result:
        return Result(
            "s",
            16,
            2.0,
            requests,
            requests / 2,
            1,
            1,
            1,
            1,
            1,
            requests,
            0,
            0,
            0,
            {},
            [],
            quantiles=[(50.0, 1.0), (100.0, 2.0)],
            server_cpu_s=cpu,
            worker_cpu_s=worker,
        )

    row = combine([result(400, 1.0), result(600, 2.0)]).as_dict()
    assert row["server_cpu_ms_per_request"] == 3.0
    assert row["server_cores"] == 0.75
    assert "worker_cpu_ms_per_request" not in row  # no worker: no column
    row = combine([result(400, 1.0, 0.5), result(600, 2.0, 1.5)]).as_dict()
    assert row["worker_cpu_ms_per_request"] == 2.0


def test_the_worker_column_appears_with_a_worker():
    part = _part("production", "gthread", 1.0)
    part["requests"][3]["worker_cpu_ms_per_request"] = 7.25
    table = render(merge_sections([part]))
    assert "worker ms/req" in table
    assert "7.25" in next(line for line in table.splitlines() if line.startswith("bc-authorize "))
    embedded = render(merge_sections([_part("embedded-sqlite", "gthread", 1.0)]))
    assert "worker ms/req" not in next(line for line in embedded.splitlines() if line.startswith("scenario "))


def _row(label: str, rps: float, key: str | None, **extra) -> dict:
    row = {"label": label, "connections": 16, "rps": rps, "p50": 1.0, "p95": 10.0, "p99": 12.0, "errors": 0}
    row.update(server_cpu_ms_per_request=4.0, server_cores=1.2, **extra)
    if key:
        row["reference_scenario"] = key
    return row


def _part(config: str, server: str, scale: float, *, reference: bool = False, flagged: bool = False) -> dict:
    requests = [
        _row("client_credentials (baseline)", 300 * scale, "client_credentials"),
        _row("pending poll (10,000 rows)", 330 * scale, "pending_poll"),
        _row("approved poll (token issuance)", 100 * scale, None),
        _row("bc-authorize", 60 * scale, "bc_authorize", flagged=flagged, statuses={"500": 2}),
    ]
    meta = {"mode": "full", "started": "now", "elapsed_s": 1, "load": "wrk", "connections": 16}
    meta.update(duration=4, warmup=1, config=config, server_kind=server, server=f"{config} under {server}")
    part = {"meta": meta, "requests": requests, "baseline": requests[0], "flagged": flagged, "log_errors": []}
    if reference:
        ref = {
            name: _row("  node-oidc-provider (reference)", rps, None)
            for name, rps in (("client_credentials", 3000), ("pending_poll", 3300), ("bc_authorize", 3000))
        }
        part["reference"] = {
            "server": "node-oidc-provider",
            "version": "9",
            "node": "v20",
            "processes": 1,
            "rounds": 1,
            "warmup_s": 1,
            "duration_per_round_s": 4,
            "scenarios": ref,
        }
    return part


def test_one_section_per_configuration_with_ratios_to_its_own_baseline_and_the_reference():
    data = merge_sections(
        [
            _part("production", "gthread", 1.0, reference=True),
            _part("embedded-postgres", "gthread", 1.5),
            _part("embedded-sqlite", "gthread", 0.5, flagged=True),
        ]
    )
    data["meta"].update(elapsed_s=10, started="now")
    names = [section["name"] for section in data["sections"]]
    assert names == ["production:gthread", "embedded-postgres:gthread", "embedded-sqlite:gthread"]
    sqlite = data["sections"][2]
    assert sqlite["reference_ratios"]["pending_poll"]["rps"] == pytest.approx(165 / 3300, abs=1e-3)
    assert sqlite["requests"][1]["rps_vs_baseline"] == pytest.approx(1.1)
    assert data["sections"][1]["requests"][0]["x_reference"] == pytest.approx(0.15)
    assert data["requests"] == data["sections"][0]["requests"]  # the first section stays at the top
    assert data["flagged"] is True
    json.dumps(data)  # the JSON carries all of it

    table = render(data)
    for name in names:
        assert f"[{name}]" in table
    assert table.count("node-oidc-provider (reference)") == 3  # once, in the first section
    assert "measured during the first section" in table
    assert f"{165 / 3300:.2f}x" in table  # the SQLite pending poll against the reference
    assert "Sections side by side" in table
    assert "[embedded-sqlite:gthread] bc-authorize: statuses {'500': 2}" in table
    assert "cpu ms/req" in table


def test_single_section_without_reference_has_no_reference_column():
    data = merge_sections([_part("production", "asgi", 1.0)])
    data["meta"].update(elapsed_s=10, started="now")
    table = render(data)
    assert "[production:asgi]" in table
    assert "reference" not in table
    assert "side by side" not in table


def _django(code: str, env: dict[str, str]) -> str:
    env = {**os.environ, **env, "PYTHONPATH": str(ROOT)}
    for name in ("CELERY_BROKER_URL", "CIBA_EXAMPLE_REDIS_URL"):
        env.pop(name, None)
    done = subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def test_example_project_sqlite_takes_the_write_lock_up_front_in_wal_mode(tmp_path):
    out = _django(
        "from django.db import connection; c = connection.cursor(); c.execute('PRAGMA journal_mode'); "
        "import json; print(json.dumps([c.fetchone()[0], connection.settings_dict['OPTIONS']]))",
        {
            "DJANGO_SETTINGS_MODULE": "example_project.settings",
            "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
            "CIBA_EXAMPLE_KEY_FILE": str(tmp_path / "key.pem"),
        },
    )
    journal, options = json.loads(out)
    assert journal == "wal"
    assert options["transaction_mode"] == "IMMEDIATE"
    assert options["timeout"] >= 5


def test_bench_settings_under_asgi_pool_postgres_connections(tmp_path):
    out = _django(
        "from django.conf import settings; import json; d = settings.DATABASES['default']; "
        "print(json.dumps([d['CONN_MAX_AGE'], d.get('OPTIONS', {}).get('pool')]))",
        {
            "DJANGO_SETTINGS_MODULE": "benchmarks.settings",
            "DATABASE_URL": "postgres://bench@127.0.0.1:1/bench",
            "CIBA_EXAMPLE_KEY_FILE": str(tmp_path / "key.pem"),
            "BENCH_SERVER": "asgi",
        },
    )
    max_age, pool = json.loads(out)
    assert max_age == 0  # persistent connections would pile up, one per request thread
    assert pool and pool["max_size"] >= 8


@pytest.mark.django_db
def test_filler_rows_on_sqlite_are_cloned_in_python():
    from django.db import connection

    from benchmarks import seed
    from django_ciba.models import AuthenticationRequest

    if connection.vendor != "sqlite":
        pytest.skip("the SQL path (generate_series) is PostgreSQL's; this test covers the SQLite one")
    users = seed.create_users(3)
    client = seed.create_client("bench poll", "poll", secret_storage="plain")
    seed.seed_finished(client, users, 30)
    finished = AuthenticationRequest.objects.exclude(status=AuthenticationRequest.Status.PENDING)
    assert finished.count() == 30
    assert set(finished.values_list("status", flat=True)) == {"consumed", "expired", "denied"}
    assert len(set(finished.values_list("auth_req_id_hash", flat=True))) == 30
    assert set(finished.values_list("user_id", flat=True)) == {user.pk for user in users}


def test_ctrl_c_reaches_the_section_once_and_waits_for_its_cleanup(tmp_path):
    import signal
    import threading

    from benchmarks.harness import _child

    marker = tmp_path / "interrupted"
    ready = tmp_path / "ready"
    script = (
        "import os, pathlib, signal, sys, time\n"
        "def stop(*_):\n"
        f"    path = pathlib.Path({str(marker)!r})\n"
        "    path.write_text(path.read_text() + 'INT ' if path.exists() else 'INT ')\n"
        "    time.sleep(0.3)  # cleanup\n"
        "    sys.exit(3)\n"
        "signal.signal(signal.SIGINT, stop)\n"
        f"pathlib.Path({str(ready)!r}).write_text(str(os.getsid(0)))\n"
        "time.sleep(30)\n"
    )

    def interrupt() -> None:
        for _ in range(200):
            if ready.exists() and ready.read_text():
                break
            threading.Event().wait(0.05)
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C in the parent only: the child has its own session

    # Python leaves SIGINT ignored when it started ignored (a job started in the background by a
    # non-interactive shell): give this test the terminal's behaviour whatever ran it.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        threading.Thread(target=interrupt, daemon=True).start()
        with pytest.raises(KeyboardInterrupt):
            _child([sys.executable, "-c", script], grace=20)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert marker.read_text() == "INT "  # passed on once, and the cleanup ran before the parent went on
    assert int(ready.read_text()) != os.getsid(0)  # a terminal's Ctrl-C would not reach it a second time


@pytest.mark.django_db
def test_pending_entries_are_cached_for_seeded_requests_that_lack_one(ciba_settings):
    # Bulk-inserted pending rows get the hot-path entry the library would have written; none
    # with the hot path off, and an entry present (or a tombstone) is left alone.
    from django.core.cache import cache

    from benchmarks import seed
    from django_ciba.core import hot_path
    from django_ciba.core.identifiers import hash_auth_req_id

    users = seed.create_users(2)
    client = seed.create_client("bench poll", "poll", secret_storage="plain")
    ids = seed.seed_pending(client, users, 3)
    ciba_settings.set(HOT_PATH_CACHE=False)
    assert seed.cache_pending_entries(ids) == 0
    ciba_settings.set(HOT_PATH_CACHE=True)
    cache.set(hot_path.pending_key(hash_auth_req_id(ids[0])), hot_path.TOMBSTONE, 60)
    assert seed.cache_pending_entries(ids) == 2
    entry = hot_path.entry_from(cache.get(hot_path.pending_key(hash_auth_req_id(ids[1]))))
    assert entry is not None and entry.client_pk == client.application.pk and entry.interval == 5
    assert cache.get(hot_path.pending_key(hash_auth_req_id(ids[0]))) == hot_path.TOMBSTONE
    assert seed.cache_pending_entries(ids) == 0
