"""PostgreSQL restarted under load (faults): nothing lost, nothing delivered twice, no 500.

The example project is served by runserver with a real Celery worker (with beat) on Redis and an
HTTPS callback receiver. Client threads run CIBA sessions over HTTP, poll and ping, while a
signed-in user approves every pending request through the device API and opens the approval page
like a browser. Meanwhile the PostgreSQL cluster is stopped (``pg_ctl -m fast``: every session is
terminated), stays down a few seconds and is started again, at a moment when a ping is in flight
(the receiver holds each ping for half a second) so that the worker has to record a delivery it made
while the database is gone.

What a client may see during the outage (docs/errors.rst): 503 ``temporarily_unavailable`` JSON
with ``Retry-After`` and ``Cache-Control: no-store`` (the approval page: a minimal HTML page for a
browser), besides the protocol's usual answers (``authorization_pending``, ``slow_down``).
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import pytest
import requests

from django_ciba.core.constants import CIBA_GRANT_TYPE
from tests.integration.receiver import Reply
from tests.integration.services import Deadline, wait_until


pytestmark = pytest.mark.integration

SCOPE = "openid profile"
SETTINGS = {
    "RETRY_BASE_DELAY": 0.5,
    "RETRY_MAX_DELAY": 2,
    "OUTBOUND_CONNECT_TIMEOUT": 2,
    "OUTBOUND_READ_TIMEOUT": 3,
    # Long enough to outlast the outage: a worker that delivered while the database was down
    # records it within its lease (django_ciba.delivery.worker), so nobody sends that ping again.
    "DELIVERY_LEASE": 12,
    "ACKNOWLEDGEMENT_GRACE": 3,
    "INTERVAL": 1,
    # The load is one user and two clients: the abuse limits would refuse most of it.
    "CLIENT_RATE_LIMIT": None,
    "USER_RATE_LIMIT": None,
    "MAX_PENDING_PER_USER": None,
    "MAX_PENDING_PER_CLIENT_USER": None,
    "UNAPPROVED_PROMPT_LIMIT": None,
    "UNAPPROVED_PROMPT_CEILING": None,
}
THREADS_PER_MODE = 3
LOAD_SECONDS = 14  # new sessions are started this long; each then finishes
OUTAGE_AFTER = 4  # seconds of load before the stop
DOWN = 4.0  # seconds the cluster stays down
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
# The normal protocol answers a client may get besides 200 (by endpoint).
PROTOCOL_ERRORS = {
    "token": {"authorization_pending", "slow_down"},
    "approve": {"not_pending"},  # approved in an earlier round whose answer was a 503
}


@dataclass
class Answer:
    endpoint: str
    at: float
    status: int
    headers: dict[str, str]
    body: str
    auth_req_id: str = ""

    @property
    def error(self) -> str | None:
        try:
            payload = json.loads(self.body)
        except ValueError:
            return None
        return payload.get("error") if isinstance(payload, dict) else None


@dataclass
class Load:
    """Everything the threads saw, shared (appends are atomic)."""

    answers: list[Answer] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    acked: dict[str, str] = field(default_factory=dict)  # auth_req_id -> mode
    tokens: Counter = field(default_factory=Counter)  # auth_req_id -> token responses (200)
    stop_starting: threading.Event = field(default_factory=threading.Event)
    finished: threading.Event = field(default_factory=threading.Event)

    def call(self, endpoint: str, send, auth_req_id: str = "") -> Answer | None:
        try:
            response = send()
        except requests.RequestException as exc:
            self.failures.append(f"{endpoint}: no answer ({type(exc).__name__})")
            return None
        answer = Answer(
            endpoint, time.monotonic(), response.status_code, dict(response.headers), response.text
        )
        self.answers.append(answer)
        return answer


def history(load: Load, auth_req_id: str) -> list[tuple[int, str | None]]:
    """The token endpoint's earlier answers for ``auth_req_id`` (status, error)."""
    return [(a.status, a.error) for a in load.answers if a.auth_req_id == auth_req_id]


def session() -> requests.Session:
    http = requests.Session()
    http.trust_env = False  # no proxies for loopback
    return http


def retry_pause(answer: Answer | None) -> None:
    # Clients honour Retry-After; this one retries sooner, to put more load on the outage.
    time.sleep(0.3 if answer is not None and answer.status == 503 else 0.1)


def start(http: requests.Session, op, load: Load, client: dict, mode: str) -> str | None:
    """One bc-authorize; the auth_req_id when it was answered 200."""
    answer = load.call(
        "bc-authorize",
        lambda: http.post(
            f"{op.issuer}/bc-authorize",
            data={
                "scope": SCOPE,
                "login_hint": "ada",
                "binding_message": "Restart 1",
                "client_notification_token": f"token-{threading.get_ident()}-{time.monotonic_ns()}",
            },
            auth=(client["client_id"], client["client_secret"]),
            timeout=20,
        ),
    )
    if answer is None or answer.status != 200:
        retry_pause(answer)
        return None
    auth_req_id = json.loads(answer.body)["auth_req_id"]
    load.acked[auth_req_id] = mode
    return auth_req_id


def redeem(http, op, receiver, load: Load, client: dict, mode: str, auth_req_id: str, deadline) -> None:
    """Poll until the tokens come; a ping client first waits for its ping, then asks once (a 503
    is retried)."""
    if mode == "ping":
        while not any(r.json() == {"auth_req_id": auth_req_id} for r in receiver.requests("/cb")):
            if time.monotonic() > deadline.end - 5:
                load.failures.append("no ping before the deadline")
                return
            time.sleep(0.2)
    while True:
        poll = load.call(
            "token",
            lambda: http.post(
                f"{op.issuer}/token/",
                data={"grant_type": CIBA_GRANT_TYPE, "auth_req_id": auth_req_id},
                auth=(client["client_id"], client["client_secret"]),
                timeout=20,
            ),
            auth_req_id,
        )
        if poll is not None and poll.status == 200:
            load.tokens[auth_req_id] += 1
            return
        if poll is not None and poll.status != 503 and poll.error not in PROTOCOL_ERRORS["token"]:
            load.failures.append(f"token: {poll.status} {poll.body[:200]} after {history(load, auth_req_id)}")
            return
        if time.monotonic() > deadline.end - 5:
            load.failures.append("no tokens before the deadline")
            return
        time.sleep(1.0 if poll is not None and poll.error in PROTOCOL_ERRORS["token"] else 0.3)


def client_thread(op, receiver, load: Load, client: dict, mode: str, deadline: Deadline) -> None:
    """A client running one CIBA session after the other."""
    http = session()
    while not load.stop_starting.is_set():
        auth_req_id = start(http, op, load, client, mode)
        if auth_req_id is not None:
            redeem(http, op, receiver, load, client, mode, auth_req_id, deadline)


def starter_thread(op, load: Load, clients: dict, unredeemed: list) -> None:
    """Clients that only start requests, two a second (redeemed after the load): bc-authorize
    under load through the outage."""
    http = session()
    for mode in itertools.cycle(("poll", "ping")):
        if load.stop_starting.is_set():
            return
        auth_req_id = start(http, op, load, clients[mode], mode)
        if auth_req_id is not None:
            unredeemed.append((mode, auth_req_id))
            time.sleep(0.5)


def sign_in(op) -> requests.Session:
    http = session()
    login = f"{op.base_url}/o/ciba/login/"
    http.get(login, timeout=10).raise_for_status()
    response = http.post(
        login,
        data={"username": "ada", "password": "pw", "csrfmiddlewaretoken": http.cookies["csrftoken"]},
        headers={"Referer": login},
        timeout=10,
        allow_redirects=False,
    )
    assert response.status_code == 302, response.text[:500]
    return http


def approver_thread(op, load: Load, http: requests.Session) -> None:
    """The user: approves whatever is pending (device API) and opens the approval page."""
    api = f"{op.issuer}/ciba/device/requests/"
    while not load.finished.is_set():
        load.call(
            "page",
            lambda: http.get(f"{op.issuer}/ciba/requests/", headers={"Accept": BROWSER_ACCEPT}, timeout=20),
        )
        listing = load.call("list", lambda: http.get(api, headers={"Accept": "application/json"}, timeout=20))
        if listing is None or listing.status != 200:
            retry_pause(listing)
            continue
        for item in json.loads(listing.body):
            load.call(
                "approve",
                lambda item=item: http.post(
                    f"{api}{item['id']}/approve/",
                    json={},
                    headers={"X-CSRFToken": http.cookies["csrftoken"], "Referer": op.base_url + "/"},
                    timeout=20,
                ),
            )
        time.sleep(0.1)


def register(project, receiver, mode: str) -> dict:
    return project.create_client(
        *("--name", f"{mode}-rp", "--mode", mode, "--scope", SCOPE),
        *("--notification-endpoint", receiver.url("/cb")),
    )


@pytest.fixture
def op(served_project):
    project = served_project
    project.env["CIBA_EXAMPLE_SETTINGS"] = json.dumps(SETTINGS)
    project.env["CIBA_EXAMPLE_SWEEP_SECONDS"] = "1"
    project.migrate()
    project.create_user("ada", "ada@example.com", "pw")
    project.start_web()
    # More pool processes than deliveries in flight: some tasks start during the outage and fail.
    # The worker keeps its connections between tasks (CONN_MAX_AGE; the example project sets
    # CELERY_DB_REUSE_MAX), so the connections the restart broke must be replaced, not reused.
    project.env["CIBA_EXAMPLE_CONN_MAX_AGE"] = "60"
    project.start_worker(concurrency=4)
    del project.env["CIBA_EXAMPLE_CONN_MAX_AGE"]
    return project


def test_postgres_restart_under_load(op, postgres_cluster, callback_receiver, tmp_path):
    deadline = Deadline(55, "the restart test")
    callback_receiver.script("/cb", Reply(204, delay=0.5))  # each ping is in flight for 0.5 s
    clients = {mode: register(op, callback_receiver, mode) for mode in ("poll", "ping")}
    load = Load()
    approver = threading.Thread(target=approver_thread, args=(op, load, sign_in(op)), daemon=True)
    threads = [
        threading.Thread(
            target=client_thread,
            args=(op, callback_receiver, load, clients[mode], mode, deadline),
            daemon=True,
        )
        for mode in ("poll", "ping")
        for _ in range(THREADS_PER_MODE)
    ]
    unredeemed: list[tuple[str, str]] = []
    threads.append(threading.Thread(target=starter_thread, args=(op, load, clients, unredeemed), daemon=True))
    started = time.monotonic()
    approver.start()
    for thread in threads:
        thread.start()

    # --- the outage: stop while a ping is in flight (held by the receiver), start DOWN s later ---
    time.sleep(OUTAGE_AFTER)
    while not any(time.monotonic() - r.monotonic < 0.3 for r in callback_receiver.requests("/cb")):
        assert time.monotonic() - started < OUTAGE_AFTER + 8, "no ping was sent under load"
        time.sleep(0.02)
    in_flight = [
        r.json()["auth_req_id"]
        for r in callback_receiver.requests("/cb")
        if time.monotonic() - r.monotonic < 0.5
    ]
    stop_at = time.monotonic()
    try:
        outage = postgres_cluster.restart(down=DOWN, mode="fast")
    finally:
        postgres_cluster.ensure_running()
    up_at = time.monotonic()
    time.sleep(max(0.0, started + LOAD_SECONDS - time.monotonic()))
    load.stop_starting.set()
    for thread in threads:
        thread.join(deadline.left(30))
    http = session()
    for mode, auth_req_id in unredeemed:
        redeem(http, op, callback_receiver, load, clients[mode], mode, auth_req_id, deadline)
    load.finished.set()
    approver.join(deadline.left(10))
    assert not any(thread.is_alive() for thread in threads), "client sessions did not finish"

    # --- what the clients saw -------------------------------------------------------------------
    assert load.failures == [], f"{load.failures}\n{op.log_tail()}"
    assert [a for a in load.answers if a.status >= 500 and a.status != 503] == [], op.log_tail()
    assert [a for a in load.answers if "Traceback" in a.body or "OperationalError" in a.body] == []
    unavailable = [a for a in load.answers if a.status == 503]
    for answer in unavailable:
        assert answer.headers.get("Retry-After") == "5", answer
        assert answer.headers.get("Cache-Control") == "no-store", answer
        if answer.endpoint == "page":
            assert answer.headers["Content-Type"].startswith("text/html"), answer
            assert "Temporarily unavailable" in answer.body, answer
        else:
            assert answer.headers["Content-Type"] == "application/json", answer
            assert answer.error == "temporarily_unavailable", answer
    others = [
        a
        for a in load.answers
        if a.status >= 300 and a.status != 503 and a.error not in PROTOCOL_ERRORS.get(a.endpoint, set())
    ]
    assert others == [], others
    # Every 503 was answered while the cluster was down or coming back (not before, not long after).
    assert all(stop_at - 0.5 <= a.at <= up_at + 2 for a in unavailable), [
        (a.endpoint, round(a.at - stop_at, 2)) for a in unavailable
    ]

    # --- nothing lost: every acknowledged request exists and got its tokens exactly once ---------
    ids_file = tmp_path / "acked.json"
    ids_file.write_text(json.dumps(sorted(load.acked)))
    rows = op.shell_json(
        "import json; from django_ciba.models import AuthenticationRequest, Delivery; "
        "from oauth2_provider.models import get_access_token_model; "
        f"ids = json.load(open({str(ids_file)!r})); "
        "found = {i: list(AuthenticationRequest.objects.by_auth_req_id(i).values_list('status', flat=True)) "
        "for i in ids}; "
        "pings = list(Delivery.objects.filter(kind='ping').values('status', 'attempts')); "
        "print(json.dumps({'found': found, 'tokens': get_access_token_model().objects.count(), "
        "'pings': pings}))"
    )
    assert {i: s for i, s in rows["found"].items() if s != ["consumed"]} == {}, (
        "requests lost or not redeemed"
    )
    assert all(load.tokens[i] == 1 for i in load.acked), "a session got no tokens or tokens twice"
    assert rows["tokens"] == len(load.acked), "access tokens issued other than once per request"

    # --- pings: every approved ping request was pinged, exactly once -----------------------------
    callback_receiver.assert_no_more(len(callback_receiver.requests("/cb")), "/cb", wait=2)
    pinged = Counter(r.json()["auth_req_id"] for r in callback_receiver.requests("/cb"))
    ping_ids = {i for i, mode in load.acked.items() if mode == "ping"}
    assert {i: n for i, n in pinged.items() if n != 1} == {}, "a ping was delivered twice"
    assert ping_ids <= set(pinged), "an approved ping request was never pinged"
    assert {p["status"] for p in rows["pings"]} <= {"delivered"}, rows["pings"]

    # --- the worker: tasks that failed on the outage were swept and re-run, none lost ------------
    # Every outbox row (device notifications included) ends finished: a task that failed on the
    # outage left its row due, and the sweep enqueued it again.
    def outbox_settled() -> dict | None:
        counts = op.shell_json(
            "import json; from django.db.models import Count; from django_ciba.models import Delivery; "
            "print(json.dumps(dict(Delivery.objects.values_list('status').annotate(n=Count('pk')))))"
        )
        return None if counts.get("pending") else counts

    outbox = wait_until(
        outbox_settled, deadline.left(15), lambda: f"deliveries left pending:\n{op.log_tail()}", 1
    )
    log = "\n".join(path.read_text(errors="replace") for path in op.directory.glob("worker-*.log"))
    failed_tasks = Counter(re.findall(r"Task (\S+)\[[^\]]+\] raised unexpected: (\w+)", log))
    retried = len(re.findall(r"its outcome could not be recorded", log))
    print(
        f"\nPostgreSQL down {outage:.1f} s (fast stop to first new connection); "
        f"{len(load.answers)} answers, {len(unavailable)} of them 503 "
        f"({dict(Counter(a.endpoint for a in unavailable))}); "
        f"{len(load.acked)} requests ({len(ping_ids)} ping), {sum(pinged.values())} pings; "
        f"pings in flight at the stop: {len(in_flight)}, recording retried {retried} times; "
        f"worker tasks failed on the outage: {dict(failed_tasks)}; outbox: {outbox}; "
        f"ping attempts {dict(Counter(p['attempts'] for p in rows['pings']))}; "
        f"{time.monotonic() - started:.1f} s of load"
    )
    assert op.worker_alive(), op.log_tail()
