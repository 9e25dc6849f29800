"""The benchmark's steps, in order, inside the harness process (Django set up on benchmarks.settings)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from . import callbacks, load, machine, seed
from .load import Result, Scenario
from .reference import Reference
from .scale import purge_with_load


CIBA_GRANT = "urn%3Aopenid%3Aparams%3Agrant-type%3Aciba"
PENDING_POOL = 6000  # ids polled in rotation: each id at most every PENDING_POOL / rps seconds
BASE_ROWS = 10_000  # rows in the table for the main runs (the small scale point)
USERS = 200
MIN_REPOLL_SECONDS = 10  # the pending pool holds at least this many seconds of polls at the best rate


class Bench:
    def __init__(
        self, args: Any, stack: Any, receiver: Any, log: Any, config: str = "production", primary: bool = True
    ) -> None:
        self.args = args
        self.config = config
        self.primary = primary  # the first section: reference, sweep, callbacks, scale, profile
        self.stack = stack
        self.receiver = receiver
        self.log = log
        self.flagged = False
        self.log_errors: list[tuple[str, str]] = []
        self.pending_rps = 0.0
        self.roots = machine.benchmark_roots()
        url = stack.project.database_url
        self.database_name = "" if url.startswith("sqlite") else url.rsplit("/", 1)[-1].split("?")[0]
        self.best_rps = 0.0
        self.approved_rps = 0.0  # until measured, the best rate of any scenario stands in
        self.reference: Reference | None = None

    # --- setup --------------------------------------------------------------------------------
    def prepare(self) -> None:
        from django.conf import settings

        self.log(f"migrating the scratch database ({self.stack.project.database_url})")
        self.stack.migrate()
        storage = settings.BENCH_SECRET_STORAGE
        self.users = seed.create_users(USERS)
        self.poll = seed.create_client("bench poll", "poll", secret_storage=storage)
        self.ping = seed.create_client(
            "bench ping", "ping", secret_storage=storage, endpoint=self.receiver.url("/ping")
        )
        self.push = seed.create_client(
            "bench push", "push", secret_storage=storage, endpoint=self.receiver.url("/push")
        )
        self.secret_format = seed.secret_format(self.poll)
        self.log(f"client secrets stored as: {self.secret_format}")
        self.pending = Scenario(
            "pending poll",
            "/o/token/",
            f"grant_type={CIBA_GRANT}&auth_req_id={{id}}",
            self.poll.auth,
            400,
            '"authorization_pending"',
            ids=seed.seed_pending(self.poll, self.users, PENDING_POOL),
        )
        filler = BASE_ROWS - seed.row_count()
        self.log(f"seeding {filler:,} finished filler rows (to {BASE_ROWS:,} rows)")
        seed.seed_finished(self.poll, self.users, filler)
        self.baseline = Scenario(
            "client_credentials",
            "/o/token/",
            "grant_type=client_credentials&scope=profile",
            self.poll.auth,
            200,
            '"access_token"',
        )
        self.bc_authorize = Scenario(
            "bc-authorize",
            "/o/bc-authorize",
            "scope=openid&login_hint={id}&binding_message=bench",
            self.poll.auth,
            200,
            '"auth_req_id"',
            ids=[u.username for u in self.users],
        )
        # The bare-Django floor (benchmarks/floor.py): the same two answers written by hand.
        self.floor_pending = Scenario(
            "floor: pending poll",
            "/bench-floor/token",
            f"grant_type={CIBA_GRANT}&auth_req_id={{id}}",
            self.poll.auth,
            400,
            '"authorization_pending"',
            ids=self.pending.ids,  # the same pool (extended in place), its own slow_down keys
        )
        self.floor_bc_authorize = Scenario(
            "floor: bc-authorize",
            "/bench-floor/bc-authorize",
            "scope=openid&login_hint={id}&binding_message=bench",
            self.poll.auth,
            200,
            '"auth_req_id"',
            ids=self.bc_authorize.ids,
        )
        self.approved = Scenario(
            "approved poll",
            "/o/token/",
            f"grant_type={CIBA_GRANT}&auth_req_id={{id}}",
            self.poll.auth,
            200,
            '"id_token"',
            once=True,
        )
        served = (
            f"{self.args.workers} gthread workers x {self.args.threads} threads"
            if self.stack.server == "gthread"
            else f"{self.args.workers} uvicorn ASGI workers"
        )
        worker = self.config == "production"
        self.log(f"starting gunicorn ({served})" + (" and Celery" if worker else "; tasks run in-process"))
        self.stack.start_gunicorn()
        if worker:
            self.stack.start_worker(concurrency=self.args.workers)
        self.stack.logs.new_errors()  # start-up noise is not load errors

    # --- runs ---------------------------------------------------------------------------------
    def block(
        self,
        plan: list[tuple[Scenario, str]],
        connections: int,
        duration: float,
        warmup: float,
        rounds: int,
        after_round: Callable[[float], None] | None = None,
    ) -> list:
        """Measure the scenarios of ``plan`` in interleaved rounds (A B C, A B C, ...) so that they
        share the machine's drift and gunicorn's ever-new placement of connections on workers;
        each scenario's rounds are pooled (:func:`load.combine`). One warm-up per scenario first.
        ``after_round(seconds)`` runs after each round (the reference, with the stack idle)."""
        rounds = max(1, min(rounds, int(duration)))
        rows_before = seed.row_count()
        before = machine.snapshot()
        for scenario, _ in plan:
            if warmup:
                if scenario is self.approved:
                    self.top_up_approved(warmup)
                self.one_run(scenario, connections, warmup)
        per: dict[str, list[Result]] = {label: [] for _, label in plan}
        for _ in range(rounds):
            for scenario, label in plan:
                if scenario is self.approved:
                    self.top_up_approved(duration / rounds)
                per[label].append(self.one_run(scenario, connections, duration / rounds))
            if after_round:
                after_round(duration / rounds)
        foreign = machine.foreign_load(before, machine.snapshot(), self.roots, self.database_name)
        if foreign["cores"] >= 0.1:
            busiest = ", ".join(f"{b['process']} ({b['cores']})" for b in foreign["busiest"])
            self.log(f"other processes used {foreign['cores']} cores meanwhile: {busiest}")
        rows = []
        for _, label in plan:
            result = load.combine(per[label])
            row = {**result.as_dict(), "label": label, "rows": rows_before, "rows_after": seed.row_count()}
            row["other_cores"] = foreign["cores"]
            row["other_processes"] = foreign
            self.flagged |= result.flagged
            spread = f"{min(result.rounds_rps):.0f}-{max(result.rounds_rps):.0f}"
            self.log(
                f"{label:<32} c={connections:<3} {result.rps:8.1f} rps (rounds {spread})  "
                f"p95 {result.p95:7.2f} ms  errors {result.errors}"
                f"{' FLAGGED ' + str(result.statuses) if result.flagged else ''}"
            )
            rows.append(row)
        for excerpt in self.stack.logs.new_errors():
            self.log_errors.append(
                (f"{', '.join(label for _, label in plan)} ({connections} connections)", excerpt)
            )
            self.flagged = True
        return rows

    def one_run(self, scenario: Scenario, connections: int, seconds: float) -> Result:
        # Each id must rest longer than the interval (5 s) between polls, or slow_down answers. The
        # pool holds MIN_REPOLL_SECONDS of polls at twice the best rate seen so far: a run that is
        # faster than every earlier one (the next step of the sweep) must not run out of rest.
        wanted = int(2 * max(self.pending_rps, self.best_rps) * MIN_REPOLL_SECONDS)
        polls = scenario is self.pending or scenario is self.floor_pending
        if polls and wanted > len(scenario.ids):
            more = wanted - len(scenario.ids)
            self.log(f"adding {more:,} pending requests to the polled pool")
            scenario.ids.extend(seed.seed_pending(self.poll, self.users, more))  # shared by both polls
        if scenario is self.pending:
            seed.cache_pending_entries(scenario.ids)
        self.stack.spread_connections(connections)
        sampler = threading.Timer(max(0.5, seconds / 2), self._sample_placement)
        self.placement: list[int] = []
        sampler.start()
        cpu, worker_cpu = self.stack.server_cpu_seconds(), self.stack.worker_cpu_seconds()
        try:
            result = load.run(scenario, self.stack.base_url, connections=connections, duration=seconds)
        finally:
            sampler.cancel()
        result.server_cpu_s = max(0.0, self.stack.server_cpu_seconds() - cpu)
        if scenario is self.bc_authorize:
            self.wait_for_outbox()  # the worker's share of this run: its device notifications
        worker_after = self.stack.worker_cpu_seconds()
        if worker_cpu is not None and worker_after is not None:
            result.worker_cpu_s = max(0.0, worker_after - worker_cpu)
        result.placement = [self.placement] if self.placement else []
        self.best_rps = max(self.best_rps, result.rps)
        if scenario is self.approved:
            self.approved_rps = max(self.approved_rps, result.rps)
        if polls:
            self.pending_rps = max(self.pending_rps, result.rps)
        return result

    def _sample_placement(self) -> None:
        """How many of wrk's connections each gunicorn worker holds (keep-alive keeps them there)."""
        self.placement = self.stack.connections_per_worker()

    def top_up_approved(self, seconds: float) -> None:
        """Enough approved requests for ``seconds`` of approved polls (each is redeemed once)."""
        rate = self.approved_rps or max(self.best_rps, 100)
        wanted = self.args.approved_ids or int(rate * seconds * 1.5) + 200
        left = len(self.approved.ids) - self.approved.cursor
        if left < wanted and not (self.args.approved_ids and self.approved.ids):
            self.approved.ids += seed.seed_approved(self.poll, self.users, wanted - left)

    def requests(self) -> list[dict]:
        a = self.args
        label = f"pending poll ({seed.row_count():,} rows)"
        plan = [
            (self.baseline, "client_credentials (baseline)"),
            (self.pending, label),
            (self.floor_pending, "floor: pending poll (bare Django)"),
            (self.approved, "approved poll (token issuance)"),
            (self.bc_authorize, "bc-authorize"),
            (self.floor_bc_authorize, "floor: bc-authorize (bare Django)"),
        ]
        after_round = None
        if a.reference and self.primary:
            self.reference = Reference(a.connections, self.log)
            if not self.reference.skipped:
                # Its own warm-up per scenario: each round starts a fresh node-oidc-provider.
                after_round = partial(self.reference.round, warmup=a.warmup)
        rows = self.block(plan, a.connections, a.duration, a.warmup, a.rounds, after_round)
        keys = ("client_credentials", "pending_poll", None, None, "bc_authorize", None)
        floors = (None, None, "pending_poll", None, None, "bc_authorize")
        for row, key, floor_of in zip(rows, keys, floors, strict=True):
            if key:
                row["reference_scenario"] = key
            if floor_of:
                row["floor_of"] = floor_of  # the floor of that scenario, not django-ciba's answer
        self.small_control, self.small_scale = rows[0], rows[1]
        return rows

    def wait_for_outbox(self, timeout: float = 120) -> None:
        """Let the worker finish the device notifications queued by bc-authorize before going on."""
        from django_ciba.models import Delivery

        end = time.monotonic() + timeout
        while Delivery.objects.filter(status=Delivery.Status.PENDING).exists() and time.monotonic() < end:
            time.sleep(0.2)

    def sweep(self) -> list[dict]:
        rows = []
        duration = self.args.sweep_duration
        plan = [(self.pending, "pending poll"), (self.baseline, "client_credentials")]
        for connections in self.args.sweep:
            rows += self.block(plan, connections, duration, min(1, duration), max(1, self.args.rounds - 1))
        return sorted(rows, key=lambda row: (row["label"] != "pending poll", row["connections"]))

    def callbacks(self) -> dict:
        n = self.args.callbacks + 2
        result = {
            "noop": callbacks.noop_round_trip(self.args.callbacks * 2),
            "post": callbacks.direct_post(self.receiver, self.args.callbacks * 2),
            "task_post": callbacks.task_post(self.receiver, self.args.callbacks),
            "ping": callbacks.callback_latency(
                self.receiver, "/ping", seed.seed_pending_objects(self.ping, self.users, n)
            ),
            "push": callbacks.callback_latency(
                self.receiver, "/push", seed.seed_pending_objects(self.push, self.users, n)
            ),
        }
        for row in result.values():
            self.flagged |= row["flagged"]
            self.log(
                f"{row['scenario']:<32} n={row['count']:<4} p50 {row['p50']:.2f} ms  p95 {row['p95']:.2f} ms"
            )
        for excerpt in self.stack.logs.new_errors():
            self.log_errors.append(("callbacks", excerpt))
        return result

    def scale(self) -> dict:
        a = self.args
        small = self.small_scale
        result: dict[str, Any] = {
            "small": {**small, "label": f"pending poll @ {small['rows']:,}-{small['rows_after']:,} rows"},
            "small_control": {**self.small_control, "label": "client_credentials (control)"},
        }
        if a.scale_rows:
            missing = a.scale_rows - seed.row_count()
            self.log(
                f"seeding {missing:,} finished rows (INSERT ... SELECT generate_series, 100k per statement)"
            )
            seconds = seed.seed_finished(self.poll, self.users, missing)
            self.log(f"seeded in {seconds:.1f} s; VACUUM ANALYZE")
            self._vacuum()
            rows = seed.row_count()
            result["seed_seconds"] = round(seconds, 1)
            # The control does not touch the CIBA table: it tells load drift from table growth.
            plan = [
                (self.baseline, "client_credentials (control)"),
                (self.pending, f"pending poll @ {rows:,} rows"),
            ]
            result["large_control"], result["large"] = self.block(
                plan, a.connections, a.duration, a.warmup, a.rounds
            )
        self.log(
            "purging finished rows (django_ciba.delivery.maintenance.purge_finished) under pending-poll load"
        )
        window = min(5.0, a.duration)

        def run_window(seconds: float) -> dict:
            row = self.one_run(self.pending, a.connections, seconds).as_dict()
            self.flagged |= row["flagged"]
            return row

        result["purge"] = purge_with_load(run_window, window=window)
        for excerpt in self.stack.logs.new_errors():
            self.log_errors.append(("purge", excerpt))
        purge = result["purge"]
        self.log(
            f"purged {purge['deleted']:,} rows in {purge['seconds']} s, "
            f"longest batch {purge['batch_ms']['max']} ms"
        )
        return result

    def _vacuum(self) -> None:
        from django.db import connection

        from django_ciba.models import AuthenticationRequest

        with connection.cursor() as cursor:
            cursor.execute(
                f"VACUUM ANALYZE {connection.ops.quote_name(AuthenticationRequest._meta.db_table)}"
            )

    def profile(self) -> str:
        from .profiling import profile_pending

        return profile_pending(self.stack, self.pending, self.args, self.log)

    # --- everything ---------------------------------------------------------------------------
    def run(self) -> dict:
        a = self.args
        self.prepare()
        data: dict[str, Any] = {"meta": self.meta()}
        data["requests"] = self.requests()
        data["baseline"] = data["requests"][0]
        if self.reference:
            data["reference"] = self.reference.summary(data["requests"])
        # The extras run once, in the first section (production with gthread in make bench).
        if self.primary and not a.skip_sweep:
            data["sweep"] = self.sweep()
        if self.primary and not a.skip_callbacks:
            if self.config == "production":
                data["callbacks"] = self.callbacks()
            else:
                self.log("callbacks skipped: they measure the Celery worker (production configuration)")
        if self.primary and not a.skip_scale:
            if self.database_name:
                data["scale"] = self.scale()
            else:
                self.log("scale skipped: the 1M-row seeding and VACUUM need PostgreSQL")
        if self.primary and a.profile == "pending-poll":
            data["profile"] = self.profile()
        data["log_errors"] = self.log_errors
        data["flagged"] = self.flagged
        return data

    def meta(self) -> dict:
        return machine.describe(self.args, self.secret_format, self.config, self.stack.server)
