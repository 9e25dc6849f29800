"""The independent-client check: openid-client (Node.js) runs CIBA poll mode against the example
project, served over real HTTP on loopback with a PostgreSQL database of its own.

The client learns everything from discovery, verifies the ID token's signature against the OP's
JWKS (``enableNonRepudiationChecks``) and polls on its own schedule; the test approves the request
with ``manage.py ciba_approve`` once the client printed its auth_req_id.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from django_ciba.core.constants import AUTH_REQ_ID_CLAIM
from tests.integration.services import Deadline, ScratchDatabase, free_port, tail
from tests.integration.services import stop_group as stop


pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
NODE_DIR = Path(__file__).resolve().parent / "node"
TEST_BUDGET = 60  # seconds for the whole test, npm install excluded
NPM_TIMEOUT = 180
USERNAME = "ciba-node"
SCOPE = "openid profile offline_access"


@pytest.fixture(scope="session")
def node_project(node_tools: dict[str, str]) -> Path:
    """tests/integration/node with its node_modules (``npm ci`` from the lockfile when missing)."""
    if not (NODE_DIR / "node_modules" / "openid-client" / "package.json").exists():
        command = "ci" if (NODE_DIR / "package-lock.json").exists() else "install"
        env = {
            **os.environ,
            "npm_config_omit_lockfile_registry_resolved": "true",
            "npm_config_fund": "false",
            "npm_config_audit": "false",
            "npm_config_update_notifier": "false",
        }
        result = subprocess.run(
            [node_tools["npm"], command, "--no-audit", "--no-fund"],
            cwd=NODE_DIR,
            env=env,
            capture_output=True,
            text=True,
            timeout=NPM_TIMEOUT,
        )
        assert result.returncode == 0, f"npm {command} failed:\n{result.stdout}\n{result.stderr}"
    version = subprocess.run(
        [node_tools["node"], "--version"], capture_output=True, text=True, timeout=10
    ).stdout.strip()
    major = int(version.lstrip("v").split(".")[0] or 0)
    assert major >= 20, f"openid-client v6 needs Node.js 20 or newer, found {version}"
    return NODE_DIR


@pytest.fixture
def served_database_url() -> Iterator[str]:
    """A fresh PostgreSQL database on the test cluster for the served example project."""
    with ScratchDatabase("ciba_node") as database:
        yield database.url


def test_openid_client_completes_ciba_poll_flow(node_tools, node_project, served_database_url, tmp_path):
    tokens = poll_flow(node_tools, node_project, served_database_url, tmp_path)
    assert tokens["id_token_alg"] == "RS256"  # DOT's signature for a client that chose none


@pytest.mark.parametrize("alg", ["ES256", "PS256"])
def test_openid_client_verifies_id_tokens_signed_with_the_registered_alg(
    node_tools, node_project, served_database_url, tmp_path, alg
):
    # IDT-06, FAPI-13: a client registered with id_token_signed_response_alg ES256 / PS256 (the
    # example project's CIBA["ID_TOKEN_SIGNING_KEYS"]); openid-client, configured with that
    # algorithm, verifies the ID token against the OP's jwks_uri.
    tokens = poll_flow(node_tools, node_project, served_database_url, tmp_path, id_token_alg=alg)
    assert tokens["id_token_alg"] == alg
    jwks_uri = f"{tokens['issuer']}/.well-known/jwks.json"
    assert tokens["id_token_kid"] in [
        key["kid"] for key in tokens["jwks"]["keys"] if key.get("alg") == alg
    ], jwks_uri


def poll_flow(node_tools, node_project, served_database_url, tmp_path, *, id_token_alg: str = "") -> dict:
    """Serve the example project, let openid-client run the poll flow, approve; the tokens event
    (plus the OP's JWKS, read while it was served, under ``"jwks"``)."""
    deadline = Deadline(TEST_BUDGET, "the independent-client check")
    port = free_port()
    issuer = f"http://127.0.0.1:{port}/o"
    env = {key: value for key, value in os.environ.items() if key not in ("CELERY_BROKER_URL",)}
    env.update(
        DJANGO_SETTINGS_MODULE="example_project.settings",
        DATABASE_URL=served_database_url,
        CIBA_EXAMPLE_ISSUER=issuer,
        CIBA_EXAMPLE_KEY_FILE=str(tmp_path / "oidc-key.pem"),
        DJANGO_DEBUG="0",
        PYTHONUNBUFFERED="1",
    )

    def manage(*args: str, cap: float = 30) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=deadline.left(cap),
        )
        assert result.returncode == 0, f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
        return result.stdout

    def shell(code: str) -> str:
        """The last line ``manage.py shell -c CODE`` printed (Django 5.2 may print a banner first)."""
        lines = [line for line in manage("shell", "--no-imports", "-c", code).splitlines() if line.strip()]
        assert lines, f"manage.py shell printed nothing for {code!r}"
        return lines[-1].strip()

    manage("migrate", "--noinput", cap=40)
    user_pk = shell(
        "from django.contrib.auth import get_user_model; "
        f"print(get_user_model().objects.create_user({USERNAME!r}, 'node@example.com', 'pw').pk)"
    )
    alg_option = ["--id-token-alg", id_token_alg] if id_token_alg else []
    client = json.loads(
        manage(
            "ciba_create_client", "--name", "node", "--mode", "poll", "--scope", SCOPE, *alg_option
        ).strip()
    )
    client_id, client_secret = client["client_id"], client["client_secret"]

    server_log = tmp_path / "runserver.log"
    server = node = None
    try:
        with server_log.open("w") as log:
            server = subprocess.Popen(
                [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_for_discovery(issuer, server, deadline, server_log)

        node = NodeScript(
            node_tools["node"],
            node_project,
            "ciba-poll.mjs",
            {
                "CIBA_ISSUER": issuer,
                "CIBA_CLIENT_ID": client_id,
                "CIBA_CLIENT_SECRET": client_secret,
                "CIBA_LOGIN_HINT": USERNAME,
                "CIBA_BINDING_MESSAGE": "Node check 42",
                "CIBA_SCOPE": SCOPE,
                "CIBA_TIMEOUT_SECONDS": str(int(deadline.left(40))),
                "CIBA_ID_TOKEN_ALG": id_token_alg,
            },
            deadline,
            lambda: f"server log:\n{tail(server_log)}",
        )
        initiated = node.next_event(20)
        assert initiated["event"] == "initiated"
        auth_req_id = initiated["auth_req_id"]
        assert isinstance(auth_req_id, str) and len(auth_req_id) >= 22
        assert initiated["expires_in"] > 0 and initiated["interval"] >= 1

        # Approve only after the client's first poll was answered "not yet" (authorization_pending),
        # so the client's handling of a pending poll is exercised too.
        wait_for_log(server_log, '"POST /o/token/ HTTP/1.1" 400', deadline.left(15))
        assert "approved" in manage("ciba_approve", auth_req_id)

        tokens = node.next_event(40)
        assert tokens["event"] == "tokens"
        node.finish()
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"{issuer}/.well-known/jwks.json", timeout=5) as response:
            tokens["jwks"] = json.load(response)
    finally:
        if node is not None:
            node.stop()
        stop(server)

    assert_tokens_event(tokens, user_pk=user_pk, client_id=client_id, issuer=issuer, auth_req_id=auth_req_id)

    # The OP's own record: approved for that user, then spent by the one token response.
    record = json.loads(
        shell(
            "import json; from django_ciba.models import AuthenticationRequest as R; "
            f"r = R.objects.by_auth_req_id({auth_req_id!r}).select_related('user').get(); "
            "print(json.dumps({'status': r.status, 'user': r.user.get_username(), "
            "'binding_message': r.binding_message}))"
        )
    )
    assert record == {"status": "consumed", "user": USERNAME, "binding_message": "Node check 42"}
    return tokens


def pump(stream, sink, at_end=None) -> None:
    """Copy a pipe's lines to ``sink``; call ``at_end(None)`` when it closes."""
    for line in stream:
        sink(line)
    if at_end is not None:
        at_end(None)


def assert_tokens_event(tokens: dict, *, user_pk: str, client_id: str, issuer: str, auth_req_id: str) -> None:
    """The ``tokens`` event of a Node check: what openid-client accepted, for the right user."""
    assert tokens["event"] == "tokens"
    claims = tokens["claims"]
    assert claims["sub"] == user_pk
    assert claims["aud"] == client_id or claims["aud"] == [client_id]
    assert claims["iss"] == issuer
    assert claims[AUTH_REQ_ID_CLAIM] == auth_req_id
    # manage.py ciba_approve is an operator's approval: nobody authenticated, so no auth_time,
    # acr or amr is claimed (IDT-04, TOK-11; docs/security.rst, "Assurance").
    assert not {"auth_time", "acr", "amr"} & set(claims), claims
    assert tokens["issuer"] == issuer
    assert tokens["token_type"].lower() == "bearer"
    assert tokens["has_access_token"] and tokens["has_refresh_token"]
    assert set(tokens["scope"].split()) == set(SCOPE.split())


class NodeScript:
    """A Node script in its own session; each line it prints on stdout is one JSON event."""

    def __init__(self, node: str, cwd: Path, script: str, env: dict[str, str], deadline, context) -> None:
        self.deadline = deadline
        self.context = context  # () -> str: what to show when the script fails (e.g. a log tail)
        self.events: list[dict] = []
        self.stderr: list[str] = []
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.process = subprocess.Popen(
            [node, script],
            cwd=cwd,
            env={**os.environ, **env},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        threading.Thread(
            target=pump, args=(self.process.stdout, self.lines.put, self.lines.put), daemon=True
        ).start()
        threading.Thread(target=pump, args=(self.process.stderr, self.stderr.append), daemon=True).start()

    def details(self) -> str:
        return f"\nevents so far: {self.events}\nnode stderr:\n{''.join(self.stderr)}\n{self.context()}"

    def next_event(self, cap: float) -> dict:
        """The next event (failing on an ``error`` event, on silence, or when the budget is spent)."""
        try:
            line = self.lines.get(timeout=self.deadline.left(cap))
        except queue.Empty:
            line = None
        assert line is not None, f"the Node client printed nothing more{self.details()}"
        event = json.loads(line)
        self.events.append(event)
        assert event.get("event") != "error", f"the Node client failed: {event}{self.details()}"
        return event

    def finish(self, cap: float = 10) -> None:
        self.process.wait(timeout=self.deadline.left(cap))
        assert self.process.returncode == 0, self.details()

    def stop(self) -> None:
        stop(self.process)


def wait_for_log(path: Path, text: str, seconds: float) -> None:
    limit = time.monotonic() + seconds
    while text not in path.read_text(errors="replace"):
        if time.monotonic() > limit:
            pytest.fail(f"{text!r} did not appear in the server log:\n{tail(path)}", pytrace=False)
        time.sleep(0.2)


def wait_for_discovery(issuer: str, server: subprocess.Popen, deadline: Deadline, log: Path) -> None:
    """Wait until the served OP answers its discovery document."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    url = f"{issuer}/.well-known/openid-configuration"
    limit = time.monotonic() + deadline.left(20)
    while True:
        assert server.poll() is None, f"runserver exited with {server.returncode}:\n{tail(log)}"
        try:
            with opener.open(url, timeout=2) as response:
                document = json.load(response)
            assert document["issuer"] == issuer, document
            assert document["backchannel_authentication_endpoint"] == f"{issuer}/bc-authorize"
            assert "poll" in document["backchannel_token_delivery_modes_supported"]
            return
        except OSError:
            if time.monotonic() > limit:
                pytest.fail(f"the example project did not answer {url}:\n{tail(log)}", pytrace=False)
            time.sleep(0.2)
