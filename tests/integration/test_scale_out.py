"""Scale-out: two app servers behind a real load balancer behave exactly as one server.

The topology of docs/deployment.rst ("Several app servers"), all on loopback and started here:
nginx (Debian's, ``scripts/with-nginx``; a throwaway configuration, round robin) in front of two
gunicorn app servers of the example project, both on ONE PostgreSQL database and ONE Redis (the
Django cache shared by both, db 1, and the Celery broker, db 0), one Celery worker with beat for
the outbox, and the HTTPS callback receiver. Every response names the app server that answered
(``X-Upstream``, added by nginx's test configuration) and nginx's access log lists them too, so
each check below proves that both servers took part:

- TOK-07: polls of one auth_req_id alternating between the servers faster than the interval get
  ``slow_down`` exactly as the same polls sent to one server do (the grown interval is shared);
- a client's own rate limit and ``LIMITS["USER_RATE"]`` are counted across both servers;
- TOK-12: concurrent token requests for one approved auth_req_id spread over both servers give
  exactly one token response;
- AERR-05 / TOK-04: a client whose registration is disabled (``CibaClient.enabled``, saved as the
  admin saves it) is refused by both servers from the very next request on;
- the outbox: ping and push callbacks for requests created through both servers each arrive
  exactly once.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
import types
from collections import Counter
from collections.abc import Iterator

import pytest
import requests

from django_ciba.core.constants import CIBA_GRANT_TYPE
from tests.integration.conftest import require
from tests.integration.receiver import CallbackReceiver
from tests.integration.services import Deadline, Nginx, RedisServer, ServedProject, free_port


pytestmark = pytest.mark.integration

MODULE_BUDGET = 120  # seconds for the whole module: setup and every test
SCOPE = "openid profile"
INTERVAL = 3
SETTINGS = {
    # TOK-07 with short steps: the interval is 3 s, each slow_down adds 3 s, 1 s of tolerance.
    "INTERVAL": INTERVAL,
    "SLOW_DOWN_INCREMENT": 3,
    "SLOW_DOWN_TOLERANCE": 1,
    "LIMITS": {"USER_RATE": [3, 3600]},
    # Fast retries and sweeps: a callback is never late enough to look lost.
    "RETRY_BASE_DELAY": 0.5,
    "RETRY_MAX_DELAY": 2,
    "OUTBOUND_CONNECT_TIMEOUT": 2,
    "OUTBOUND_READ_TIMEOUT": 3,
    "DELIVERY_LEASE": 6,
}
CLIENT_RATE = (4, 3600)  # the rate-limited client's own limit (its registration)
USERS = [f"user{number:02d}" for number in range(1, 17)]
SIGNING_IN = USERS[9:13]  # the outbox test's users approve on the approval pages
CLIENTS = {  # name: (delivery mode, notification path)
    "slow": ("poll", ""),
    "rate": ("poll", ""),
    "user-rate": ("poll", ""),
    "single": ("poll", ""),
    "disabled": ("poll", ""),
    "ping": ("ping", "/ping"),
    "push": ("push", "/push"),
}


def new_session() -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # no proxies for loopback
    return session


class Deployment(types.SimpleNamespace):
    project: ServedProject
    nginx: Nginx
    receiver: CallbackReceiver
    deadline: Deadline
    servers: list[str]  # the app servers as X-Upstream names them
    clients: dict[str, dict[str, str]]
    session: requests.Session

    @property
    def issuer(self) -> str:
        return self.project.issuer

    def direct_issuer(self, server: str) -> str:
        """The issuer's path on one app server, bypassing nginx."""
        return f"http://{server}/o"

    def bc_authorize(
        self,
        client: str,
        user: str,
        base: str | None = None,
        session: requests.Session | None = None,
        **extra: str,
    ) -> requests.Response:
        credentials = self.clients[client]
        return (session or self.session).post(
            f"{base or self.issuer}/bc-authorize",
            data={"scope": SCOPE, "login_hint": user, "binding_message": "Scale 42", **extra},
            auth=(credentials["client_id"], credentials["client_secret"]),
            timeout=15,
        )

    def start(
        self,
        client: str,
        user: str,
        base: str | None = None,
        session: requests.Session | None = None,
        **extra: str,
    ) -> str:
        response = self.bc_authorize(client, user, base, session, **extra)
        assert response.status_code == 200, response.text
        return response.json()["auth_req_id"]

    def poll(
        self, client: str, auth_req_id: str, base: str | None = None, session: requests.Session | None = None
    ) -> requests.Response:
        credentials = self.clients[client]
        return (session or self.session).post(
            f"{base or self.issuer}/token/",
            data={"grant_type": CIBA_GRANT_TYPE, "auth_req_id": auth_req_id},
            auth=(credentials["client_id"], credentials["client_secret"]),
            timeout=15,
        )

    def approve(self, *auth_req_ids: str, extra: str = "") -> None:
        """Approve the requests as their users, in one process of the project (then ``extra``)."""
        code = (
            "from django_ciba.approval import decisions; "
            "from django_ciba.models import AuthenticationRequest; "
            f"ids = {list(auth_req_ids)!r}\n"
            "for value in ids:\n"
            "    ar = AuthenticationRequest.objects.by_auth_req_id(value).get()\n"
            "    decisions.approve(ar, user=ar.user)\n"
            f"{extra}\n"
            "print('done')"
        )
        assert self.project.shell(code) == "done"

    def approve_as_user(self, user: str) -> list[str]:
        """Sign in as ``user`` on the approval pages and approve every pending request of theirs
        through the device API, all through nginx (so the session made on one server is used on
        the other); the app servers that answered the approvals."""
        session = new_session()
        login = f"{self.issuer}/ciba/login/"
        page = session.get(login, timeout=15)
        assert page.status_code == 200, page.text
        signed_in = session.post(
            login,
            data={"username": user, "password": "pw", "csrfmiddlewaretoken": session.cookies["csrftoken"]},
            timeout=15,
        )
        assert signed_in.status_code == 200 and "sessionid" in session.cookies, signed_in.text
        listing = session.get(f"{self.issuer}/ciba/device/requests/", timeout=15)
        assert listing.status_code == 200, listing.text
        answered = []
        for item in listing.json():
            approved = session.post(
                f"{self.issuer}/ciba/device/requests/{item['id']}/approve/",
                headers={"X-CSRFToken": session.cookies["csrftoken"]},
                timeout=15,
            )
            assert approved.status_code == 200, approved.text
            answered.append(upstream(approved))
        return answered

    def access_log_upstreams(self, uri_suffix: str, since: int = 0) -> Counter:
        """How many requests whose path ends with ``uri_suffix`` each app server answered,
        from nginx's access log (entries ``since`` onwards)."""
        return Counter(
            upstream
            for _m, uri, _s, upstream in self.nginx.access_entries()[since:]
            if uri.endswith(uri_suffix)
        )


def upstream(response: requests.Response) -> str:
    name = response.headers.get("X-Upstream", "")
    assert name, f"no X-Upstream header: {response.status_code} {response.text}"
    return name


def alternates(servers: list[str]) -> bool:
    """True when no two consecutive requests were answered by the same server (round robin)."""
    return all(a != b for a, b in zip(servers, servers[1:], strict=False))


def error(response: requests.Response) -> str:
    return response.json().get("error", "") if response.status_code != 200 else "ok"


@pytest.fixture(scope="module")
def deployment(tmp_path_factory) -> Iterator[Deployment]:
    deadline = Deadline(MODULE_BUDGET, "the scale-out module")
    redis = RedisServer.from_env()
    require(
        redis is not None, "The scale-out tests need the Redis of scripts/with-redis (CIBA_TEST_REDIS_PORT)"
    )
    binary = Nginx.binary_from_env()
    require(binary is not None, "The scale-out tests need nginx (scripts/with-nginx installs Debian's)")
    try:
        import gunicorn  # noqa: F401  # the test extra
    except ImportError:
        require(False, "The scale-out tests need gunicorn (pip install -e '.[test]')")
    assert redis is not None and binary is not None
    redis.ensure_running()
    redis.flushall()

    base = tmp_path_factory.mktemp("scale-out")
    with CallbackReceiver(base / "receiver") as receiver:
        nginx_port = free_port()
        project = ServedProject(
            base / "project",
            broker_url=redis.url,
            ca_file=str(receiver.ca_file),
            deadline=deadline,
            port=nginx_port,  # the issuer is the load balancer's address
        )
        nginx = Nginx(binary, base / "nginx", [])
        try:
            project.env["CIBA_EXAMPLE_SETTINGS"] = json.dumps(SETTINGS)
            project.env["CIBA_EXAMPLE_SWEEP_SECONDS"] = "1"
            project.env["CIBA_EXAMPLE_REDIS_URL"] = f"redis://127.0.0.1:{redis.port}/1"  # the shared cache
            project.migrate(timeout=deadline.left(60))
            clients = project.shell_json(
                "import json; from django.contrib.auth import get_user_model; "
                "from django_ciba.testing import create_ciba_client\n"
                f"for name in {USERS!r}:\n"
                # A password (PBKDF2, slow) only for those who sign in to the approval pages.
                f"    password = 'pw' if name in {SIGNING_IN!r} else None\n"
                "    get_user_model().objects.create_user(name, name + '@example.com', password)\n"
                "made = {}\n"
                f"for name, (mode, path) in {CLIENTS!r}.items():\n"
                f"    endpoint = {receiver.base_url!r} + path if path else ''\n"
                "    app, secret = create_ciba_client(name, mode=mode, notification_endpoint=endpoint)\n"
                "    made[name] = {'client_id': app.client_id, 'client_secret': secret}\n"
                "    if name == 'rate':\n"
                f"        app.ciba.rate_limit_requests, app.ciba.rate_limit_period = {CLIENT_RATE!r}\n"
                "        app.ciba.save()\n"
                "print(json.dumps(made))",
                timeout=deadline.left(60),
            )
            ports = [project.start_app_server(timeout=deadline.left(40)) for _ in range(2)]
            nginx.upstreams = ports
            # The same address as the issuer: the port chosen above, unless it was taken since.
            nginx.start(nginx_port, timeout=deadline.left(15))
            project.start_worker(timeout=deadline.left(60))
            yield Deployment(
                project=project,
                nginx=nginx,
                receiver=receiver,
                deadline=deadline,
                servers=sorted(nginx.upstream_name(port) for port in ports),
                clients=clients,
                session=new_session(),
            )
        finally:
            try:
                nginx.stop()
            finally:
                project.stop()


def test_two_app_servers_answer_behind_nginx(deployment):
    """Discovery through nginx names the load balancer as issuer and alternates the servers."""
    answered = []
    for _ in range(4):
        response = deployment.session.get(f"{deployment.issuer}/.well-known/openid-configuration", timeout=15)
        assert response.status_code == 200, response.text
        assert response.json()["issuer"] == deployment.issuer
        answered.append(upstream(response))
    assert sorted(set(answered)) == deployment.servers
    assert alternates(answered), answered
    logged = deployment.access_log_upstreams("/openid-configuration")
    assert set(logged) == set(deployment.servers), logged


def test_slow_down_is_shared_by_both_servers(deployment):
    """TOK-07: the same schedule of polls gets the same answers through nginx (alternating servers)
    as against one server. The third poll comes after the original interval but before the grown
    one: only a shared interval answers it ``slow_down`` on the other server."""
    # Seconds after the first answer: at once (too early: before 3 - 1), 3.2 (past 3 - 1 but before
    # 6 - 1: the interval grew at the second poll), 8.4 (past 9 - 1: accepted again). Each margin
    # is over a second, for a loaded machine.
    schedule = [0.0, 0.0, 3.2, 8.4]
    expected = ["authorization_pending", "slow_down", "slow_down", "authorization_pending"]
    one_server = deployment.servers[0]
    runs: dict[str, list[tuple[str, str]] | BaseException] = {}

    def run(label: str, user: str, base: str | None) -> None:
        try:
            session = new_session()
            auth_req_id = deployment.start("slow", user, base, session)
            started = 0.0
            answers = []
            for step, at in enumerate(schedule):
                if step:
                    time.sleep(max(0.0, started + at - time.monotonic()))
                response = deployment.poll("slow", auth_req_id, base, session)
                if step == 0:
                    started = time.monotonic()
                # Sent to one server directly, a response names no upstream.
                answers.append((error(response), upstream(response) if base is None else one_server))
            runs[label] = answers
        except BaseException as exc:  # reported below
            runs[label] = exc

    alone = threading.Thread(target=run, args=("one server", USERS[1], deployment.direct_issuer(one_server)))
    alone.start()
    run("behind nginx", USERS[0], None)
    alone.join(deployment.deadline.left(30))
    assert not alone.is_alive()
    for label, outcome in runs.items():
        if isinstance(outcome, BaseException):
            raise AssertionError(f"{label}: {outcome!r}") from outcome

    alone_answers, balanced = runs["one server"], runs["behind nginx"]
    assert isinstance(alone_answers, list) and isinstance(balanced, list)
    assert [answer for answer, _ in alone_answers] == expected, runs
    assert [answer for answer, _ in balanced] == expected, runs
    servers = [server for _, server in balanced]
    assert alternates(servers), servers  # each poll on the other server


def test_rate_limits_are_counted_across_both_servers(deployment):
    """The client's own limit (4 an hour) and LIMITS["USER_RATE"] (3 an hour per user) hold for the
    two servers together: per server, the refused requests would have been accepted."""
    since = len(deployment.nginx.access_entries())
    # Client rate: 6 requests alternating over the servers, for two users (3 requests each at most).
    answers = [deployment.bc_authorize("rate", USERS[2 + number % 2]) for number in range(6)]
    statuses = [response.status_code for response in answers]
    assert statuses == [200, 200, 200, 200, 403, 403], [r.text for r in answers]
    assert {error(response) for response in answers[4:]} == {"access_denied"}
    assert all(1 <= int(response.headers["Retry-After"]) <= CLIENT_RATE[1] for response in answers[4:])
    assert {upstream(response) for response in answers[:4]} == set(deployment.servers)
    assert {upstream(response) for response in answers[4:]} == set(deployment.servers)

    # User rate: 5 requests naming one user; each server would have accepted 3.
    answers = [deployment.bc_authorize("user-rate", USERS[4]) for _ in range(5)]
    assert [response.status_code for response in answers] == [200, 200, 200, 403, 403], [
        r.text for r in answers
    ]
    assert {error(response) for response in answers[3:]} == {"access_denied"}
    assert {upstream(response) for response in answers[3:]} == set(deployment.servers)
    # nginx's access log agrees: the 11 requests went to both servers, in turn.
    logged = deployment.access_log_upstreams("/bc-authorize", since)
    assert set(logged) == set(deployment.servers) and sorted(logged.values()) == [5, 6], logged


def test_one_approved_auth_req_id_gives_tokens_once_across_servers(deployment):
    """TOK-12: 12 concurrent polls of one approved auth_req_id, spread over both servers by nginx:
    exactly one 200, the others invalid_grant."""
    count = 12
    auth_req_id = deployment.start("single", USERS[5])
    deployment.approve(auth_req_id)
    barrier = threading.Barrier(count, timeout=deployment.deadline.left(20))
    results: list[object] = [None] * count

    def one(index: int) -> None:
        session = new_session()
        try:
            barrier.wait()
            results[index] = deployment.poll("single", auth_req_id, session=session)
        except BaseException as exc:  # reported below
            results[index] = exc

    threads = [threading.Thread(target=one, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(deployment.deadline.left(30))
    responses = [result for result in results if isinstance(result, requests.Response)]
    assert len(responses) == count, results
    outcomes = Counter(error(response) for response in responses)
    assert outcomes == {"ok": 1, "invalid_grant": count - 1}, [r.text for r in responses]
    assert {upstream(response) for response in responses} == set(deployment.servers)
    [winner] = [response for response in responses if response.status_code == 200]
    assert winner.json()["access_token"] and winner.json()["id_token"]
    assert error(deployment.poll("single", auth_req_id)) == "invalid_grant"  # spent for good
    issued = deployment.project.shell(
        "from oauth2_provider.models import get_access_token_model; "
        f"print(get_access_token_model().objects.filter(application__client_id={deployment.clients['single']['client_id']!r}).count())"
    )
    assert issued == "1"


def test_a_disabled_client_is_refused_by_both_servers_at_once(deployment):
    """AERR-05 / TOK-04: the registration disabled as the admin does it (``enabled`` off, ``save()``)
    is refused by each server on its very next request, tokens and bc-authorize alike, though both
    servers had just served the client; enabled again, it is served again."""
    # Both servers serve the client first (whatever they keep about it is warm).
    first = deployment.bc_authorize("disabled", USERS[6])
    second = deployment.bc_authorize("disabled", USERS[7])
    assert first.status_code == second.status_code == 200, (first.text, second.text)
    assert {upstream(first), upstream(second)} == set(deployment.servers)
    auth_req_id = first.json()["auth_req_id"]
    polled = [deployment.poll("disabled", auth_req_id) for _ in range(2)]
    assert {upstream(response) for response in polled} == set(deployment.servers)

    client_id = deployment.clients["disabled"]["client_id"]
    switch = (
        "from django_ciba.models import CibaClient; "
        f"ciba = CibaClient.objects.get(application__client_id={client_id!r}); "
        "ciba.enabled = {enabled}; ciba.save()"
    )
    # Approved, so that only the disabled registration stands between the poll and the tokens.
    deployment.approve(auth_req_id, extra=switch.format(enabled=False))

    refused = [deployment.poll("disabled", auth_req_id) for _ in range(2)]
    refused += [deployment.bc_authorize("disabled", USERS[8]) for _ in range(2)]
    assert [error(response) for response in refused] == ["unauthorized_client"] * 4, [r.text for r in refused]
    assert {upstream(response) for response in refused[:2]} == set(deployment.servers)
    assert {upstream(response) for response in refused[2:]} == set(deployment.servers)

    deployment.project.shell(switch.format(enabled=True) + "; print('ok')")
    served = deployment.poll("disabled", auth_req_id)
    assert served.status_code == 200, served.text  # still approved, never spent while disabled


def test_outbox_callbacks_of_requests_from_both_servers_arrive_exactly_once(deployment):
    """Ping and push: 4 requests each, created alternately on the two servers and approved by their
    users through both servers (the approval pages' device API); every callback reaches the
    receiver once, none is lost or repeated."""
    receiver = deployment.receiver
    created: dict[str, list[tuple[str, str, str]]] = {"ping": [], "push": []}
    for client in ("ping", "push"):  # each client's 4 requests alternate over the servers
        for number in range(4):
            token = secrets.token_urlsafe(24)
            response = deployment.bc_authorize(client, SIGNING_IN[number], client_notification_token=token)
            assert response.status_code == 200, response.text
            created[client].append((response.json()["auth_req_id"], token, upstream(response)))
    for client in ("ping", "push"):
        assert {server for _, _, server in created[client]} == set(deployment.servers), created
    # Each user approves their ping and push request on the approval pages, through nginx.
    approvals = [server for user in SIGNING_IN for server in deployment.approve_as_user(user)]
    assert len(approvals) == 8 and set(approvals) == set(deployment.servers), approvals

    pings = receiver.wait_for(4, path="/ping", timeout=deployment.deadline.left(30))
    pushes = receiver.wait_for(4, path="/push", timeout=deployment.deadline.left(30))
    expected_pings = {(f"Bearer {token}", auth_req_id) for auth_req_id, token, _ in created["ping"]}
    assert {(r.headers["Authorization"], r.json()["auth_req_id"]) for r in pings} == expected_pings
    expected_pushes = {(f"Bearer {token}", auth_req_id) for auth_req_id, token, _ in created["push"]}
    assert {(r.headers["Authorization"], r.json()["auth_req_id"]) for r in pushes} == expected_pushes
    assert all(r.json()["access_token"] and r.json()["id_token"] for r in pushes)

    # Settled: every callback row delivered with one attempt, and nothing more arrives.
    rows = deployment.project.shell_json(
        "import json; from django_ciba.models import Delivery; "
        "print(json.dumps(list(Delivery.objects.exclude(kind='device')"
        ".values_list('kind', 'status', 'attempts'))))"
    )
    assert (
        sorted(map(tuple, rows)) == [("ping", "delivered", 1)] * 4 + [("push_tokens", "delivered", 1)] * 4
    ), rows
    receiver.assert_no_more(4, path="/ping", wait=1.5)
    receiver.assert_no_more(4, path="/push", wait=0)
    assert receiver.errors == []
