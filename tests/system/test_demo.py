"""``manage.py ciba_demo`` (the README's ``make demo``): poll, ping and push end to end, and an agent's
payment approval with authorization_details, a partial approval and a verified approval receipt.

Each run is a subprocess on the example project's settings with a fresh SQLite file, its own
signing key and a free port, with tasks in-process (no broker), as a newcomer runs it. A small
driver runs the command exactly as ``manage.py`` does (``run_from_argv``: a CommandError becomes
exit status 1) and, independently of the demo's own output, records every secret value that went
over the wire (client secrets, client_notification_tokens, auth_req_ids, tokens) and every
callback the demo's receiver got, so the tests can check that none of them was printed in full.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest


ROOT = Path(__file__).resolve().parents[2]

DRIVER = r"""
import base64, json, sys
from pathlib import Path
from urllib.parse import parse_qs, unquote

import django

django.setup()

import requests

from example_project.demo.receiver import CallbackReceiver
from example_project.management.commands.ciba_demo import Command

record_file, refuse, argv = sys.argv[1], sys.argv[2], sys.argv[3:]
SECRET_FIELDS = (
    "client_secret", "client_notification_token", "auth_req_id", "access_token", "refresh_token", "id_token"
)
seen = {"secrets": [], "callbacks": []}


def collect(mapping):
    for key in SECRET_FIELDS:
        value = mapping.get(key)
        if isinstance(value, str) and value:
            seen["secrets"].append(value)


original_send = requests.Session.send


def send(self, request, **kwargs):
    authorization = request.headers.get("Authorization", "")
    if authorization.startswith("Basic "):
        seen["secrets"].append(unquote(base64.b64decode(authorization[6:]).decode().split(":", 1)[1]))
    if request.body:
        body = request.body.decode() if isinstance(request.body, bytes) else request.body
        collect({key: values[-1] for key, values in parse_qs(body).items()})
    response = original_send(self, request, **kwargs)
    try:
        data = response.json()
    except ValueError:
        data = None
    if isinstance(data, dict):
        collect(data)
    return response


original_record = CallbackReceiver.record


def record(self, path, headers, body):
    callback = original_record(self, path, headers, body)
    seen["callbacks"].append({"path": path, "status": callback.status, "bearer_ok": callback.bearer_ok})
    seen["secrets"].append(headers.get("authorization", "").partition(" ")[2])
    collect(json.loads(body))
    return callback


requests.Session.send = send
CallbackReceiver.record = record
if refuse:  # the client's receiver turns this path's callbacks away
    CallbackReceiver.answer = lambda self, path, bearer_ok: 401 if path == refuse else 204
try:
    Command().run_from_argv(["manage.py", "ciba_demo", *argv])
    code = 0
except SystemExit as exc:
    code = exc.code
finally:
    Path(record_file).write_text(json.dumps(seen))
sys.exit(code)
"""

SUMMARY_LINE = re.compile(r"^(poll|ping|push|agent)\s+(ok|FAILED)\s+(\d+\.\d)\s+(.*)$", re.MULTILINE)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def demo_env(tmp_path_factory):
    """The example project's environment on a fresh, migrated SQLite database."""
    directory = tmp_path_factory.mktemp("demo")
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("CELERY_BROKER_URL", "CIBA_EXAMPLE_SETTINGS", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
    }
    env.update(
        DJANGO_SETTINGS_MODULE="example_project.settings",
        DATABASE_URL=f"sqlite:///{directory / 'db.sqlite3'}",
        CIBA_EXAMPLE_KEY_FILE=str(directory / "oidc.pem"),
        PYTHONPATH=str(ROOT),
    )
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
        cwd=ROOT,
        env=env,
        check=True,
        timeout=120,
    )
    return directory, env


def run_demo(demo_env, *args: str, refuse: str = ""):
    directory, env = demo_env
    driver, record = directory / "driver.py", directory / "record.json"
    driver.write_text(DRIVER)
    env = {**env, "CIBA_EXAMPLE_ISSUER": f"http://127.0.0.1:{_free_port()}/o"}
    done = subprocess.run(
        [sys.executable, str(driver), str(record), refuse, "--no-color", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    seen = json.loads(record.read_text())
    summary = {mode: (result, detail) for mode, result, _, detail in SUMMARY_LINE.findall(done.stdout)}
    return done, seen, summary


def assert_no_secret_printed(done, seen):
    secrets = {value for value in seen["secrets"] if value}
    assert secrets, "the driver recorded no secret: the check would be empty"
    printed = done.stdout + done.stderr
    leaked = sorted(value[:6] + "…" for value in secrets if value in printed)
    assert not leaked, f"secrets printed in full: {leaked}"


def test_demo_runs_poll_ping_push_and_the_agent_and_exits_0(demo_env):
    done, seen, summary = run_demo(demo_env)

    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    assert summary == {
        "poll": ("ok", "ID token verified"),
        "ping": ("ok", "ID token verified"),
        "push": ("ok", "ID token verified"),
        "agent": ("ok", "receipt verified"),
    }
    assert "All 4 mode(s) completed." in done.stdout
    # Poll mode shows a pending poll before the approval; every flow verified its ID token.
    poll_part = done.stdout.split("=== Poll mode ===")[1].split("=== Ping mode ===")[0]
    assert poll_part.index('"error": "authorization_pending"') < poll_part.index("the user approves")
    assert done.stdout.count("urn:openid:params:jwt:claim:auth_req_id: matches the auth_req_id") == 4
    push_part = done.stdout.split("=== Push mode ===")[1].split("=== Agent mode ===")[0]
    assert "at_hash: matches the access_token" in push_part
    # The device notifications, as the console backend prints them.
    assert done.stdout.count("| CIBA authentication request #") == 4
    # The agent: the approval rendered per locale, a partial approval, the receipt verified offline.
    agent_part = done.stdout.split("=== Agent mode ===")[1].split("=== Summary ===")[0]
    rendered_en = agent_part.split("the approval shows (en):")[1].split("the approval shows (de):")[0]
    rendered_de = agent_part.split("the approval shows (de):")[1]
    assert "1,234.56" in rendered_en and "Müller GmbH" in rendered_en
    assert "1.234,56" in rendered_de
    assert "exactly the two approved details, not the insurance" in agent_part
    assert "verified claims:" in agent_part
    assert '"approved_by": "user"' in agent_part
    assert "The receipt does not verify (signature)" in agent_part  # the tampered copy
    # The receiver got exactly one ping and one push, with the right bearer token, and took them.
    assert sorted(seen["callbacks"], key=lambda c: c["path"]) == [
        {"path": "/cb/ping", "status": 204, "bearer_ok": True},
        {"path": "/cb/push", "status": 204, "bearer_ok": True},
    ]
    assert "ping delivered after 1 attempt(s)" in done.stdout
    assert "push_tokens delivered after 1 attempt(s)" in done.stdout
    # 3 client secrets, 2 notification tokens, 3 auth_req_ids, 3 token responses (3 tokens each).
    assert len(set(seen["secrets"])) >= 3 + 2 + 3 + 9
    assert_no_secret_printed(done, seen)

    # Running it again works: the clients exist and get new secrets and this run's callback URL.
    again, seen_again, summary_again = run_demo(demo_env, "--mode", "ping")
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert summary_again == {"ping": ("ok", "ID token verified")}
    assert "ping client (new secret)" in again.stdout
    assert [c["path"] for c in seen_again["callbacks"]] == ["/cb/ping"]
    assert_no_secret_printed(again, seen_again)


def test_a_failing_mode_makes_the_exit_status_non_zero(demo_env):
    done, seen, summary = run_demo(demo_env, "--mode", "push", refuse="/cb/push")

    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    assert summary["push"][0] == "FAILED"
    assert re.fullmatch(
        r"the client's receiver refused the push callback \(HTTP 401\) "
        r"\(OP: request #\d+ failed, pushed tokens revoked\)",
        summary["push"][1],
    ), summary["push"][1]
    assert "1 of 1 mode(s) failed: push." in done.stderr
    assert seen["callbacks"] == [{"path": "/cb/push", "status": 401, "bearer_ok": True}]
    # A 401 is final: the OP gave the push up at once.
    assert "push_tokens failed after 1 attempt(s)" in done.stdout
    assert_no_secret_printed(done, seen)
