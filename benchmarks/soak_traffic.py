"""The soak's mixed traffic, in the soak process (Django set up on ``benchmarks.settings``).

New flows start at a steady rate for the whole traffic window, spread over poll, ping and push
clients; each flow is approved, denied (``django_ciba.approval.decisions`` in this process, as the
authentication device would) or left to expire. Client threads run every timed action from one
schedule: bc-authorize, polls every ``interval`` (``slow_down`` makes it 5 s longer), the
decisions, the token request after a ping, an occasional replay of a redeemed ``auth_req_id``.
A watcher thread reads the loopback HTTPS receiver for pings and pushes.

Every answer is classified: an expected outcome (counted per kind, with its latency) or an
unexpected error (any 5xx or transport error, an unexpected status or error code, a poll that
still sees ``authorization_pending`` after the decision committed, a callback for an unknown
request, a wrong bearer token, a duplicate callback, tokens issued twice). After the traffic the
flows still open (and the outbox) get ``grace`` seconds to finish; any flow left then is a lost
request.
"""

from __future__ import annotations

import heapq
import itertools
import json
import random
import secrets
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import jwt
import requests
from django.db import close_old_connections, transaction

from django_ciba.approval import decisions
from django_ciba.core.identifiers import hash_auth_req_id
from django_ciba.models import AuthenticationRequest

from .callbacks import percentile


CIBA_GRANT = "urn:openid:params:grant-type:ciba"
EXPIRY = 10  # requested_expiry of the flows left to expire (seconds)
NO_EXPIRY_TAIL = 45  # no new expiring flow this close to the end (a push expiry waits for beat)
MODES = (("poll", 0.4), ("ping", 0.3), ("push", 0.3))
PLANS = (("approve", 0.75), ("deny", 0.15), ("expire", 0.10))
REPLAY_SHARE = 0.1  # redeemed auth_req_ids polled once more (must answer invalid_grant)
DECISION_DELAY = (0.5, 6.0)  # seconds between bc-authorize and the user's decision
TIMEOUT = 30  # seconds per HTTP request


@dataclass
class Flow:
    auth_req_id: str
    mode: str
    plan: str
    token: str  # client_notification_token ("" for poll)
    started: float
    expires: float  # monotonic, as the client computes it
    interval: float = 5.0
    decided: float | None = None  # monotonic: decide() returned (the decision committed)
    committed: float | None = None  # monotonic: the commit (on_commit hook)
    done: bool = False
    outcome: str = ""
    callbacks: int = 0
    tokens: int = 0
    history: list[str] = field(default_factory=list)


class Stats:
    """Expected outcomes per kind (with latencies) and unexpected errors, thread-safe."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latencies: dict[str, list[float]] = defaultdict(list)
        self.unexpected: Counter[str] = Counter()
        self.samples: list[str] = []

    def ok(self, kind: str, seconds: float) -> None:
        with self.lock:
            self.latencies[kind].append(seconds)

    def bad(self, kind: str, message: str) -> None:
        with self.lock:
            self.unexpected[kind] += 1
            if len(self.samples) < 40:
                self.samples.append(f"{kind}: {message[:400]}")

    @property
    def unexpected_total(self) -> int:
        with self.lock:
            return sum(self.unexpected.values())

    def rows(self, seconds: float) -> list[dict[str, Any]]:
        with self.lock:
            kinds = sorted(set(self.latencies) | set(self.unexpected))
            rows = []
            for kind in kinds:
                ms = [v * 1000.0 for v in self.latencies.get(kind, [])]
                rows.append(
                    {
                        "kind": kind,
                        "count": len(ms),
                        "rate": round(len(ms) / seconds, 2) if seconds > 0 else 0.0,
                        "p50_ms": round(percentile(ms, 50), 2) if ms else None,
                        "p95_ms": round(percentile(ms, 95), 2) if ms else None,
                        "max_ms": round(max(ms), 2) if ms else None,
                        "unexpected": self.unexpected.get(kind, 0),
                    }
                )
            return rows


class Schedule:
    """Timed actions, run by whichever client thread is free first."""

    def __init__(self) -> None:
        self.heap: list[tuple[float, int, Any, tuple]] = []
        self.cond = threading.Condition()
        self.counter = itertools.count()
        self.closed = False
        self.lateness: list[float] = []

    def at(self, due: float, action: Any, *args: Any) -> None:
        with self.cond:
            heapq.heappush(self.heap, (due, next(self.counter), action, args))
            self.cond.notify()

    def take(self) -> tuple[Any, tuple] | None:
        with self.cond:
            while not self.closed:
                now = time.monotonic()
                if self.heap and self.heap[0][0] <= now:
                    due, _, action, args = heapq.heappop(self.heap)
                    if len(self.lateness) < 200_000:
                        self.lateness.append(now - due)
                    return action, args
                self.cond.wait(min(0.5, self.heap[0][0] - now) if self.heap else 0.5)
            return None

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    def __len__(self) -> int:
        with self.cond:
            return len(self.heap)


def _pick(rng: random.Random, choices: tuple[tuple[str, float], ...]) -> str:
    return rng.choices([name for name, _ in choices], weights=[weight for _, weight in choices])[0]


def id_token_claim(id_token: str, name: str) -> Any:
    """A claim of an ID token, read without verification (the OP's own signature is not in question)."""
    return jwt.decode(id_token, options={"verify_signature": False}).get(name)


class Traffic:
    def __init__(
        self,
        base_url: str,
        clients: dict[str, Any],
        usernames: list[str],
        receiver: Any,
        *,
        threads: int,
        rate: float,
        seconds: float,
        grace: float,
        seed: int,
        log: Any,
        backlog: Any = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.clients = clients  # mode -> benchmarks.seed.Client
        self.usernames = usernames
        self.receiver = receiver
        self.threads = threads
        self.rate = rate
        self.seconds = seconds
        self.grace = grace
        self.rng = random.Random(seed)
        self.rng_lock = threading.Lock()
        self.log = log
        self.backlog = backlog or (lambda: 0)  # deliveries still due (device notifications too)
        self.stats = Stats()
        self.schedule = Schedule()
        self.flows: dict[str, Flow] = {}
        self.flows_lock = threading.Lock()
        self.local = threading.local()
        self.started = 0.0
        self.traffic_end = 0.0
        self.stopping = threading.Event()
        self.tokens_received: Counter[str] = Counter()
        self.callbacks_seen = 0
        self.drain_seconds = 0.0
        self.due_max = 0  # most outbox deliveries due at one progress line (every 30 s)

    # --- plumbing -----------------------------------------------------------------------------
    def session(self) -> requests.Session:
        session = getattr(self.local, "session", None)
        if session is None:
            session = requests.Session()
            session.trust_env = False  # loopback only, never a proxy
            self.local.session = session
        return session

    def random(self, fn: str, *args: Any) -> Any:
        with self.rng_lock:
            return getattr(self.rng, fn)(*args)

    def post(self, path: str, data: dict[str, str], mode: str) -> tuple[requests.Response | None, float, str]:
        started = time.monotonic()
        try:
            response = self.session().post(
                self.base_url + path,
                data=data,
                headers={"Authorization": self.clients[mode].auth},
                timeout=TIMEOUT,
            )
        except requests.RequestException as exc:
            return None, time.monotonic() - started, f"{type(exc).__name__}: {exc}"
        return response, time.monotonic() - started, ""

    @staticmethod
    def describe(response: requests.Response) -> str:
        return f"HTTP {response.status_code} {response.text[:200]!r}"

    @staticmethod
    def error_code(response: requests.Response) -> str:
        try:
            return str(response.json().get("error", ""))
        except ValueError:
            return ""

    def finish(self, flow: Flow, outcome: str) -> None:
        with self.flows_lock:
            flow.done = True
            flow.outcome = outcome

    # --- the client threads -------------------------------------------------------------------
    def worker(self) -> None:
        try:
            while True:
                item = self.schedule.take()
                if item is None:
                    return
                action, args = item
                try:
                    action(*args)
                except Exception as exc:  # a bug in the soak itself still counts, loudly
                    self.stats.bad("soak driver", f"{action.__name__}: {type(exc).__name__}: {exc}")
        finally:
            close_old_connections()

    def generator(self) -> None:
        """New flows at ``rate`` per second until the end of the traffic window."""
        step = 1.0 / self.rate
        due = self.started
        while not self.stopping.is_set():
            now = time.monotonic()
            if due >= self.traffic_end:
                return
            if due > now:
                self.stopping.wait(due - now)
                continue
            mode = self.random("choices", [m for m, _ in MODES], [w for _, w in MODES])[0]
            plan = self.random("choices", [p for p, _ in PLANS], [w for _, w in PLANS])[0]
            if plan == "expire" and self.traffic_end - due < NO_EXPIRY_TAIL:
                plan = "approve"
            self.schedule.at(due, self.authorize, mode, plan)
            due += step

    # --- actions ------------------------------------------------------------------------------
    def authorize(self, mode: str, plan: str) -> None:
        kind = f"bc-authorize ({mode})"
        data = {
            "scope": "openid profile",
            "login_hint": self.random("choice", self.usernames),
            "binding_message": "soak",
        }
        token = secrets.token_urlsafe(24) if mode != "poll" else ""
        if token:
            data["client_notification_token"] = token
        if plan == "expire":
            data["requested_expiry"] = str(EXPIRY)
        sent = time.monotonic()
        response, seconds, error = self.post("/o/bc-authorize", data, mode)
        if response is None:
            self.stats.bad(kind, error)
            return
        try:
            body = response.json() if response.status_code == 200 else {}
        except ValueError:
            body = {}
        if response.status_code != 200 or not body.get("auth_req_id"):
            self.stats.bad(kind, self.describe(response))
            return
        expected_interval = mode != "push"
        if ("interval" in body) != expected_interval:
            self.stats.bad(kind, f"interval present={'interval' in body} for a {mode} client")
        if plan == "expire" and int(body.get("expires_in", 0)) != EXPIRY:
            self.stats.bad(kind, f"expires_in {body.get('expires_in')} for requested_expiry {EXPIRY}")
        self.stats.ok(kind, seconds)
        flow = Flow(
            auth_req_id=body["auth_req_id"],
            mode=mode,
            plan=plan,
            token=token,
            started=sent,
            expires=sent + float(body.get("expires_in", 300)),
            interval=float(body.get("interval") or 5),
        )
        with self.flows_lock:
            self.flows[flow.auth_req_id] = flow
        now = time.monotonic()
        if plan in ("approve", "deny"):
            self.schedule.at(now + self.random("uniform", *DECISION_DELAY), self.decide, flow)
        if mode == "poll":
            self.schedule.at(sent + flow.interval + 0.2, self.poll, flow)
        elif mode == "ping" and plan == "expire":
            self.schedule.at(flow.expires + 1.5, self.token_request, flow)
        # push: waits for the receiver (tokens, access_denied or expired_token)

    def decide(self, flow: Flow) -> None:
        kind = "approve (decisions)" if flow.plan == "approve" else "deny (decisions)"
        started = time.monotonic()
        try:
            auth_request = AuthenticationRequest.objects.select_related("user").get(
                auth_req_id_hash=hash_auth_req_id(flow.auth_req_id)
            )
            with transaction.atomic():
                # Registered first, so it runs before the outbox dispatch that approve() registers.
                transaction.on_commit(lambda: setattr(flow, "committed", time.monotonic()))
                if flow.plan == "approve":
                    decisions.approve(auth_request, user=auth_request.user)
                else:
                    decisions.deny(auth_request, user=auth_request.user)
        except Exception as exc:
            self.stats.bad(kind, f"{type(exc).__name__}: {exc}")
            self.finish(flow, "decision failed")
            return
        now = time.monotonic()
        with self.flows_lock:
            flow.decided = now
        self.stats.ok(kind, now - started)

    def poll(self, flow: Flow) -> None:
        """Poll mode: the token endpoint every ``interval`` until an outcome."""
        if flow.done:
            return
        sent = time.monotonic()
        decided_before = flow.committed
        response, seconds, error = self.post(
            "/o/token/", {"grant_type": CIBA_GRANT, "auth_req_id": flow.auth_req_id}, "poll"
        )
        if response is None:
            self.stats.bad("poll", error)
            self.schedule.at(time.monotonic() + flow.interval, self.poll, flow)
            return
        code = "" if response.status_code == 200 else self.error_code(response)
        if response.status_code == 400 and code == "authorization_pending":
            if decided_before is not None:
                self.stats.bad("poll: authorization_pending", "still pending after the decision committed")
            elif flow.plan == "expire" and sent > flow.expires + 1:
                self.stats.bad("poll: authorization_pending", "still pending after expiry")
            else:
                self.stats.ok("poll: authorization_pending", seconds)
            self.schedule.at(sent + flow.interval + 0.2, self.poll, flow)
            return
        if response.status_code == 400 and code == "slow_down":
            self.stats.ok("poll: slow_down", seconds)
            flow.interval += 5
            self.schedule.at(sent + flow.interval + 0.2, self.poll, flow)
            return
        self.outcome(flow, response, seconds, sent, "poll")

    def token_request(self, flow: Flow) -> None:
        """Ping mode: one token request after the ping (or after expiry)."""
        sent = time.monotonic()
        response, seconds, error = self.post(
            "/o/token/", {"grant_type": CIBA_GRANT, "auth_req_id": flow.auth_req_id}, "ping"
        )
        if response is None:
            self.stats.bad("ping: token request", error)
            self.finish(flow, "transport error")
            return
        self.outcome(flow, response, seconds, sent, "ping")

    def outcome(
        self, flow: Flow, response: requests.Response, seconds: float, sent: float, mode: str
    ) -> None:
        """A final answer of the token endpoint (poll or ping mode)."""
        status = response.status_code
        code = "" if status == 200 else self.error_code(response)
        if status == 200:
            kind = f"{mode}: tokens"
            try:
                body = response.json()
                claim = id_token_claim(body["id_token"], "urn:openid:params:jwt:claim:auth_req_id")
                assert body.get("access_token"), "no access_token"
                assert claim == flow.auth_req_id, "id_token for another auth_req_id"
            except Exception as exc:
                self.stats.bad(kind, f"{type(exc).__name__}: {exc}")
                self.finish(flow, "bad tokens")
                return
            with self.flows_lock:
                flow.tokens += 1
                self.tokens_received[mode] += 1
            if flow.plan != "approve" or flow.tokens > 1:
                self.stats.bad(kind, f"tokens for a flow planned {flow.plan} (tokens {flow.tokens})")
            else:
                self.stats.ok(kind, seconds)
            self.finish(flow, "tokens")
            if self.random("random") < REPLAY_SHARE:
                self.schedule.at(time.monotonic() + 0.5, self.replay, flow, mode)
            return
        expected = {"deny": "access_denied", "expire": "expired_token"}.get(flow.plan)
        kind = f"{mode}: {code or status}"
        if status >= 500 or status != 400 or code != expected:
            self.stats.bad(kind, f"{self.describe(response)} for a flow planned {flow.plan}")
        elif code == "expired_token" and sent < flow.expires - 1:
            self.stats.bad(kind, "expired_token before the expiry")
        elif code == "access_denied" and flow.committed is None:
            self.stats.bad(kind, "access_denied before the denial")
        else:
            self.stats.ok(kind, seconds)
        self.finish(flow, code or str(status))

    def replay(self, flow: Flow, mode: str) -> None:
        """A redeemed auth_req_id once more: invalid_grant, never a second set of tokens."""
        response, seconds, error = self.post(
            "/o/token/", {"grant_type": CIBA_GRANT, "auth_req_id": flow.auth_req_id}, mode
        )
        if response is None:
            self.stats.bad("replay: invalid_grant", error)
        elif response.status_code == 400 and self.error_code(response) == "invalid_grant":
            self.stats.ok("replay: invalid_grant", seconds)
        else:
            if response.status_code == 200:
                with self.flows_lock:
                    flow.tokens += 1
                    self.tokens_received[mode] += 1
            self.stats.bad("replay: invalid_grant", f"{self.describe(response)} (tokens issued twice?)")

    # --- the receiver -------------------------------------------------------------------------
    def watcher(self) -> None:
        seen = 0
        while True:
            arrived = self.receiver.requests()
            for request in arrived[seen:]:
                try:
                    self.callback(request)
                except Exception as exc:
                    self.stats.bad("callback", f"{type(exc).__name__}: {exc}")
            seen = len(arrived)
            self.callbacks_seen = seen
            if self.stopping.is_set() and self.schedule.closed:
                return
            time.sleep(0.05)

    def callback(self, request: Any) -> None:
        mode = request.path.strip("/")
        try:
            body = request.json()
        except ValueError:
            body = {}
        with self.flows_lock:
            flow = self.flows.get(body.get("auth_req_id", ""))
            if flow is not None:
                flow.callbacks += 1
        if mode not in ("ping", "push") or flow is None or flow.mode != mode:
            self.stats.bad(f"{mode} received", f"a callback to {request.path} for an unknown request")
            return
        if request.headers.get("Authorization") != f"Bearer {flow.token}":
            self.stats.bad(f"{mode} received", "wrong bearer token (client_notification_token)")
        if flow.callbacks > 1:
            self.stats.bad(f"{mode} received", f"duplicate delivery ({flow.callbacks} callbacks)")
            return
        if mode == "ping":
            if flow.plan == "expire" or flow.committed is None:
                self.stats.bad("ping received", f"a ping for a flow planned {flow.plan}")
                return
            self.stats.ok("ping received (commit -> arrival)", request.monotonic - (flow.committed or 0))
            self.schedule.at(time.monotonic(), self.token_request, flow)
            return
        error = body.get("error")
        if error:
            expected = {"deny": "access_denied", "expire": "expired_token"}.get(flow.plan)
            kind = f"push {error} received"
            if error != expected:
                self.stats.bad(kind, f"for a flow planned {flow.plan}")
            elif error == "expired_token":
                self.stats.ok(kind + " (expiry -> arrival)", max(0.0, request.monotonic - flow.expires))
            else:
                self.stats.ok(kind + " (commit -> arrival)", request.monotonic - (flow.committed or 0))
            self.finish(flow, f"push {error}")
            return
        kind = "push tokens received"
        try:
            assert body.get("access_token"), "no access_token"
            claim = id_token_claim(body["id_token"], "urn:openid:params:jwt:claim:auth_req_id")
            assert claim == flow.auth_req_id, "id_token for another auth_req_id"
        except Exception as exc:
            self.stats.bad(kind, f"{type(exc).__name__}: {exc}")
            self.finish(flow, "bad push")
            return
        with self.flows_lock:
            flow.tokens += 1
            self.tokens_received["push"] += 1
        if flow.plan != "approve":
            self.stats.bad(kind, f"tokens pushed for a flow planned {flow.plan}")
        else:
            self.stats.ok(kind + " (commit -> arrival)", request.monotonic - (flow.committed or 0))
        self.finish(flow, "push tokens")

    # --- the run ------------------------------------------------------------------------------
    def open_flows(self) -> list[Flow]:
        with self.flows_lock:
            return [flow for flow in self.flows.values() if not flow.done]

    def run(self) -> None:
        self.started = time.monotonic()
        self.traffic_end = self.started + self.seconds
        threads = [
            threading.Thread(target=self.worker, name=f"soak-client-{n}", daemon=True)
            for n in range(self.threads)
        ]
        threads.append(threading.Thread(target=self.watcher, name="soak-watcher", daemon=True))
        generator = threading.Thread(target=self.generator, name="soak-generator", daemon=True)
        for thread in [*threads, generator]:
            thread.start()
        next_log = self.started + 30
        while time.monotonic() < self.traffic_end:
            time.sleep(0.5)
            if time.monotonic() >= next_log:
                next_log += 30
                self.progress()
        generator.join(5)
        drain_started = time.monotonic()
        self.log(
            f"traffic window over; draining {len(self.open_flows())} open flows (grace {self.grace:g} s)"
        )
        while time.monotonic() - drain_started < self.grace:
            if not self.open_flows() and not self.backlog():
                break
            time.sleep(0.5)
        time.sleep(2)  # a late duplicate callback still gets seen
        self.drain_seconds = time.monotonic() - drain_started
        self.stopping.set()
        self.schedule.close()
        for thread in threads:
            thread.join(TIMEOUT + 5)
        lost = self.open_flows()
        for flow in lost:
            self.stats.bad(
                "lost request",
                f"{flow.mode}/{flow.plan} never finished: decided={flow.decided is not None} "
                f"callbacks={flow.callbacks} tokens={flow.tokens}",
            )
        self.progress()

    def progress(self) -> None:
        with self.flows_lock:
            total = len(self.flows)
            open_ = sum(1 for flow in self.flows.values() if not flow.done)
        late = self.schedule.lateness[-500:]
        due = self.backlog()
        self.due_max = max(self.due_max, due)
        self.log(
            f"flows {total} (open {open_}), callbacks {self.callbacks_seen}, scheduled {len(self.schedule)}, "
            f"deliveries due {due}, "
            f"lateness p95 {percentile(late, 95) * 1000 if late else 0:.0f} ms, "
            f"unexpected {self.stats.unexpected_total}"
        )

    def summary(self) -> dict[str, Any]:
        with self.flows_lock:
            plans = Counter(f"{flow.mode}/{flow.plan}" for flow in self.flows.values())
            outcomes = Counter(
                f"{flow.mode}/{flow.plan} -> {flow.outcome or 'open'}" for flow in self.flows.values()
            )
        late = self.schedule.lateness
        return {
            "flows": sum(plans.values()),
            "plans": dict(sorted(plans.items())),
            "outcomes": dict(sorted(outcomes.items())),
            "tokens_received": dict(self.tokens_received),
            "callbacks": self.callbacks_seen,
            "drain_s": round(self.drain_seconds, 1),
            "deliveries_due_max": self.due_max,
            "schedule_lateness_ms": {
                "p50": round(percentile(late, 50) * 1000, 1) if late else None,
                "p95": round(percentile(late, 95) * 1000, 1) if late else None,
                "max": round(max(late) * 1000, 1) if late else None,
            },
        }


def as_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)
