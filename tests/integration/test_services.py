"""Smoke tests of the integration infrastructure itself: the HTTPS callback receiver, the Redis
broker of ``scripts/with-redis`` (stopped and started again) and a Celery worker of the example
project that is killed with SIGKILL and started again. Only Celery's own machinery is used (remote
control pings), not django-ciba's tasks.
"""

from __future__ import annotations

import subprocess
import threading
import time

import pytest
import requests

from tests.integration.receiver import Reply
from tests.integration.services import Deadline, group_members, ping_workers, wait_until


pytestmark = pytest.mark.integration


def session() -> requests.Session:
    """No proxies from the environment: everything here is on loopback."""
    http = requests.Session()
    http.trust_env = False
    return http


def test_receiver_records_requests_and_answers_as_scripted(callback_receiver):
    receiver = callback_receiver
    assert receiver.url("/cb") == f"https://127.0.0.1:{receiver.port}/cb"
    receiver.script(
        "/cb", [Reply(503), Reply(200, body=b'{"ok": true}', headers={"X-Reply": "2"}), Reply(204)]
    )
    http = session()

    statuses = []
    for number in range(4):
        response = http.post(
            receiver.url("/cb"),
            json={"number": number},
            headers={"Authorization": "Bearer token-1"},
            verify=receiver.ca_file,
            timeout=10,
        )
        statuses.append(response.status_code)
        if number == 1:
            assert response.json() == {"ok": True} and response.headers["x-reply"] == "2"
    assert statuses == [503, 200, 204, 204]  # in order, then the last one repeats
    # Unscripted paths answer 204; HEAD and GET are recorded too; "localhost" is in the certificate.
    assert (
        http.get(f"https://localhost:{receiver.port}/other?x=1", verify=receiver.ca_file).status_code == 204
    )
    assert http.head(receiver.url("/other"), verify=receiver.ca_file).status_code == 204

    seen = receiver.wait_for(4, path="/cb", timeout=5)
    assert [request.json() for request in seen] == [{"number": n} for n in range(4)]
    first = seen[0]
    assert first.method == "POST" and first.path == "/cb"
    assert first.headers["authorization"] == "Bearer token-1"  # case-insensitive
    assert first.headers["CONTENT-TYPE"] == "application/json"
    assert [request.reply.status for request in seen] == statuses
    assert [(r.method, r.path, r.query) for r in receiver.requests("/other")] == [
        ("GET", "/other", "x=1"),
        ("HEAD", "/other", ""),
    ]
    assert len(receiver.requests()) == 6

    # A client that does not trust the certificate gets no answer, and nothing is recorded.
    with pytest.raises(requests.exceptions.SSLError):
        http.post(receiver.url("/cb"), data=b"x", timeout=10)
    wait_until(lambda: receiver.errors, 5, "the failed handshake was not noted")
    assert len(receiver.requests()) == 6

    with pytest.raises(AssertionError, match="expected 1 request"):
        receiver.wait_for(1, path="/never", timeout=0.3)


def test_receiver_delays_are_recorded_at_arrival_and_do_not_block_shutdown(callback_receiver):
    receiver = callback_receiver
    receiver.script("/slow", [Reply(202, delay=0.6), Reply(204, delay=60)])
    http = session()

    started = time.monotonic()
    response = http.post(receiver.url("/slow"), data=b"a", verify=receiver.ca_file, timeout=10)
    assert response.status_code == 202 and time.monotonic() - started >= 0.6

    # The second reply hangs for a minute: the request is recorded at once, and close() cuts it short.
    outcome: list[object] = []

    def hang() -> None:
        try:
            outcome.append(http.post(receiver.url("/slow"), data=b"b", verify=receiver.ca_file, timeout=30))
        except requests.RequestException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=hang, daemon=True)
    thread.start()
    seen = receiver.wait_for(2, path="/slow", timeout=5)
    assert [request.body for request in seen] == [b"a", b"b"]
    started = time.monotonic()
    receiver.close()
    thread.join(10)
    assert time.monotonic() - started < 5
    assert outcome and isinstance(outcome[0], requests.ConnectionError), outcome


def redis_cli_ping(redis_server) -> subprocess.CompletedProcess:
    return subprocess.run(
        [redis_server.cli_path, "-h", "127.0.0.1", "-p", str(redis_server.port), "ping"],
        capture_output=True,
        text=True,
        timeout=10,
    )


def test_redis_can_be_stopped_and_started_again_on_the_same_port(redis_server):
    assert redis_cli_ping(redis_server).stdout.strip() == "PONG"
    first_pid = redis_server.pid()
    assert first_pid

    redis_server.stop()
    answer = redis_cli_ping(redis_server)
    assert answer.stdout.strip() != "PONG", answer
    assert not redis_server.ping() and redis_server.pid() is None

    redis_server.start()
    assert redis_cli_ping(redis_server).stdout.strip() == "PONG"
    second_pid = redis_server.pid()
    assert second_pid and second_pid != first_pid

    # A crash (SIGKILL) leaves a stale pidfile; starting again still works.
    redis_server.cli("SET", "ciba-smoke", "1")
    redis_server.stop(kill=True)
    assert redis_cli_ping(redis_server).stdout.strip() != "PONG"
    redis_server.start()
    assert redis_server.cli("EXISTS", "ciba-smoke") == "0"  # nothing persisted
    assert redis_server.pid() not in (None, first_pid, second_pid)


def test_worker_answers_pings_is_killed_and_restarted_and_survives_a_broker_restart(
    served_project, redis_server
):
    deadline = Deadline(150, "the worker smoke test")
    project = served_project
    project.deadline = deadline
    project.migrate()  # beat and django-ciba's tasks may touch the database

    first = project.start_worker()
    assert first in project.ping_worker(timeout=30)
    worker_pid = project.worker.pid
    assert len(group_members(worker_pid)) >= 3, "main process, two pool processes (and beat)"

    assert project.kill_worker() == -9
    assert not group_members(worker_pid)
    assert ping_workers(project.control, [first], timeout=1.0) == []

    second = project.start_worker()
    assert second != first
    assert second in project.ping_worker(timeout=30)

    # The broker goes away and comes back: the running worker reconnects and answers again.
    redis_server.stop()
    assert project.worker_alive()
    redis_server.start()
    assert second in project.ping_worker(timeout=deadline.left(60)), project.log_tail()
    assert project.worker_alive()


def test_nginx_balances_round_robin_and_names_the_upstream(tmp_path):
    """services.Nginx (the scale-out test's load balancer): round robin over two loopback backends,
    ``X-Upstream`` and the access log name the one that answered, a request is never retried on the
    other backend, and stop() leaves no nginx process behind."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from tests.integration.conftest import require
    from tests.integration.services import Nginx

    binary = Nginx.binary_from_env()
    require(binary is not None, "nginx is needed (scripts/with-nginx installs Debian's)")
    assert binary is not None

    class Answer(BaseHTTPRequestHandler):  # HTTP/1.0: one request per connection, so a stopped
        # backend leaves no kept-alive connection for nginx to reuse

        def log_message(self, format, *args):  # noqa: A002 - quiet
            pass

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = str(self.server.server_address[1]).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    backends = [ThreadingHTTPServer(("127.0.0.1", 0), Answer) for _ in range(2)]
    for backend in backends:
        threading.Thread(target=backend.serve_forever, daemon=True).start()
    ports = [backend.server_address[1] for backend in backends]
    nginx = Nginx(binary, tmp_path / "nginx", ports)
    try:
        nginx.start(timeout=15)
        http = session()
        answers = [http.post(f"{nginx.url}/o/token/", data={"n": n}, timeout=10) for n in range(4)]
        assert [response.status_code for response in answers] == [200] * 4
        named = [response.headers["X-Upstream"] for response in answers]
        assert named == [f"127.0.0.1:{response.text}" for response in answers]
        assert named[0] != named[1] and named[0::2] == [named[0]] * 2 and named[1::2] == [named[1]] * 2
        assert {nginx.upstream_name(port) for port in ports} == set(named)
        wait_until(lambda: len(nginx.access_entries()) == 4, 5, lambda: str(nginx.access_entries()))
        assert [(m, uri, s, up) for m, uri, s, up in nginx.access_entries()] == [
            ("POST", "/o/token/", 200, name) for name in named
        ]

        # One backend down: its share of POSTs fails (502), none is sent to the other one instead.
        backends[1].shutdown()
        backends[1].server_close()
        answers = [http.post(f"{nginx.url}/o/token/", data={"n": n}, timeout=10) for n in range(4)]
        outcomes = sorted((response.status_code, response.headers["X-Upstream"]) for response in answers)
        up, down = nginx.upstream_name(ports[0]), nginx.upstream_name(ports[1])
        assert outcomes == [(200, up), (200, up), (502, down), (502, down)], outcomes
        pid = nginx.process.pid if nginx.process else None
    finally:
        nginx.stop()
        backends[0].shutdown()
    assert pid and not group_members(pid)
