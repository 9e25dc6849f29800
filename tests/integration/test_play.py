"""The interactive demo: ``manage.py ciba_play`` and ``scripts/serve-production-like``.

(a) ``ciba_play`` as a newcomer runs it (a subprocess on a fresh SQLite file, a free port, tasks
    in-process, no broker), driven in headless Chromium with two tabs: the client console starts a
    ping, a poll and a push request; the approval pages (signed in as the demo user) approve the
    ping and the push and deny the poll; the console then shows the verified ID token claims of the
    approved ones and ``access_denied`` for the denied one, and no full token anywhere.
(b) ``scripts/serve-production-like`` as a subprocess. It always starts PostgreSQL and Redis of its
    own (scripts/with-postgres and with-redis, nested; the suite's DATABASE_URL and
    CELERY_BROKER_URL are ignored), so this test shares nothing with the rest of the suite. One push
    flow through the console's JSON endpoint and the device REST API; the tokens arrive through the
    Celery worker; then SIGINT (Ctrl-C) to its process group must leave no process behind (every
    descendant carries a marker in its environment) and free its ports.

Run with ``scripts/run-integration -k play`` (Chromium, PostgreSQL and Redis as for the suite).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import requests

from tests.integration.conftest import require
from tests.integration.services import LOOPBACK, ROOT, free_port, port_is_open, spawn, tail, wait_until
from tests.integration.test_browser import TIMEOUT_MS, browser, new_page, screenshots  # noqa: F401 - fixtures


pytestmark = pytest.mark.integration

PASSWORD = "play-" + secrets.token_urlsafe(8)
JWT = re.compile(r"eyJ[\w-]{8,}\.[\w-]{8,}\.[\w-]{8,}")
MESSAGES = {"ping": "Ping from the console", "poll": "Poll from the console", "push": "Push from the console"}
CLIENT_NAMES = {mode: f"Demo {mode} client" for mode in MESSAGES}
DROPPED = (
    "DATABASE_URL",
    "CELERY_BROKER_URL",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "DJANGO_SETTINGS_MODULE",
    "CIBA_EXAMPLE_ISSUER",
    "CIBA_EXAMPLE_REDIS_URL",
    "CIBA_EXAMPLE_SETTINGS",
)


def environment(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in DROPPED}
    no_proxy = ",".join(filter(None, [os.environ.get("NO_PROXY", ""), LOOPBACK, "localhost"]))
    env.update(PYTHONUNBUFFERED="1", NO_PROXY=no_proxy, no_proxy=no_proxy, **extra)
    return env


def http() -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    return session


def wait_for_line(process: subprocess.Popen, log: Path, pattern: str, timeout: float) -> str:
    def found() -> str | None:
        if process.poll() is not None:
            pytest.fail(f"{process.args!r} exited with {process.returncode}:\n{tail(log, 60)}", pytrace=False)
        match = re.search(pattern, log.read_text(errors="replace"))
        return match.group(0) if match else None

    return wait_until(found, timeout, lambda: f"{pattern!r} not printed:\n{tail(log, 60)}", 0.2)


def interrupt(process: subprocess.Popen, timeout: float) -> int:
    """Ctrl-C: SIGINT to the process group; its exit status."""
    os.killpg(process.pid, signal.SIGINT)
    return process.wait(timeout)


# --- (a) the interactive command in a browser ------------------------------------------------------
@pytest.fixture
def play(tmp_path):
    """``manage.py ciba_play --port PORT`` on a fresh SQLite database, until "Ready."."""
    port = free_port()
    log = tmp_path / "ciba_play.log"
    env = environment(
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        CIBA_EXAMPLE_KEY_FILE=str(tmp_path / "oidc-key.pem"),
        DJANGO_SETTINGS_MODULE="example_project.settings",
    )
    args = [sys.executable, "manage.py", "ciba_play", "--port", str(port), "--password", PASSWORD]
    process = spawn(args, log=log, env=env)
    try:
        wait_for_line(process, log, r"(?m)^Ready\.$", 120)
        yield f"http://{LOOPBACK}:{port}", log
        assert interrupt(process, 20) == 0, tail(log)
        assert "Stopping." in log.read_text()
        assert not port_is_open(port)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def start_on_console(page, mode: str) -> None:
    from playwright.sync_api import expect

    page.get_by_label("Mode").select_option(mode)
    page.get_by_label("Binding message").fill(MESSAGES[mode])
    page.get_by_role("button", name="Start", exact=True).click()
    card = page.locator("article.console-request", has_text=MESSAGES[mode])
    expect(card).to_have_attribute("data-status", "pending")
    expect(card).to_contain_text("auth_req_id")


def answer_on_device(page, base: str, mode: str, button: str) -> None:
    from playwright.sync_api import expect

    page.goto(f"{base}/o/ciba/requests/")
    card = page.get_by_role("listitem").filter(has_text=MESSAGES[mode])
    expect(card).to_have_count(1)
    card.get_by_role("link", name=f"Review request from {CLIENT_NAMES[mode]}").click()
    expect(page.locator("#binding-message")).to_have_text(MESSAGES[mode])
    page.get_by_role("button", name=button, exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(
        "Request approved" if button == "Approve" else "Request denied"
    )


def test_play_both_sides_in_two_tabs(play, browser, screenshots):  # noqa: F811 - fixtures
    from playwright.sync_api import expect

    base, log = play
    started = time.monotonic()
    console_tab = browser.new_context(viewport={"width": 1100, "height": 900}, locale="en-US")
    console_tab.set_default_timeout(TIMEOUT_MS)
    console = console_tab.new_page()
    console.goto(f"{base}/console/")
    expect(console.get_by_role("heading", name="Client console", level=1)).to_be_visible()
    expect(console.get_by_label("Login hint")).to_have_value("demo")
    for mode in ("ping", "poll", "push"):
        start_on_console(console, mode)
    screenshots(console, "play-console-pending")

    device = new_page(browser)
    device.goto(f"{base}/o/ciba/requests/")
    device.get_by_label("Username").fill("demo")
    device.get_by_label("Password").fill(PASSWORD)
    device.get_by_role("button", name="Sign in", exact=True).click()
    expect(device.get_by_role("heading", name="Pending sign-in requests", level=1)).to_be_visible()
    screenshots(device, "play-device-list")
    answer_on_device(device, base, "ping", "Approve")
    answer_on_device(device, base, "poll", "Deny")
    answer_on_device(device, base, "push", "Approve")

    cards = {mode: console.locator("article.console-request", has_text=MESSAGES[mode]) for mode in MESSAGES}
    for mode in ("ping", "push"):
        expect(cards[mode]).to_have_attribute("data-status", "approved", timeout=30_000)
        claims = json.loads(cards[mode].locator("[data-role=claims]").inner_text())
        assert claims["iss"] == f"{base}/o" and claims["sub"] and claims["at_hash"], claims
        assert claims["urn:openid:params:jwt:claim:auth_req_id"].endswith("…"), claims
    expect(cards["ping"]).to_contain_text("ping received (bearer token ok)")
    expect(cards["ping"]).to_contain_text("token endpoint answered 200")
    expect(cards["push"]).to_contain_text("tokens pushed (bearer token ok)")
    expect(cards["poll"]).to_have_attribute("data-status", "denied", timeout=30_000)
    expect(cards["poll"].locator("[data-role=status]")).to_have_text("denied: access_denied")
    screenshots(console, "play-console-done")

    # The console never shows a full token or auth_req_id; its JSON has no private field.
    assert not JWT.search(console.content())
    states = http().get(f"{base}/console/api/requests/", timeout=15).json()["requests"]
    assert {s["mode"]: s["status"] for s in states} == {
        "ping": "approved",
        "poll": "denied",
        "push": "approved",
    }
    for st in states:
        assert st["auth_req_id"].endswith("…") and not any(key.startswith("_") for key in st), st
        assert not JWT.search(json.dumps(st)), st
    output = log.read_text()
    assert output.count("answered 204") == 2, output
    assert PASSWORD in output and not JWT.search(output)
    console.context.close()
    device.context.close()
    print(f"\n(a) two-tab flow: {time.monotonic() - started:.1f} s")


# --- (b) the production-like stack from one command ------------------------------------------------
def processes_with(marker: str) -> list[int]:
    """Live processes whose environment carries ``marker`` (everything the script started)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker.encode() in (entry / "environ").read_bytes():
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
                if state != "Z":
                    found.append(int(entry.name))
        except OSError:
            continue
    return found


def discovery_answers(issuer: str) -> bool:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"{issuer}/.well-known/openid-configuration", timeout=2) as response:
            return json.load(response).get("issuer") == issuer
    except (OSError, ValueError):
        return False


def test_production_like_push_through_the_celery_worker(tmp_path):
    # The script starts PostgreSQL and Redis of its own, from the binaries the suite's run uses.
    require(
        bool(os.environ.get("CIBA_TEST_PG_BIN") and os.environ.get("CIBA_TEST_REDIS_SERVER")),
        "The production-like test needs PostgreSQL and Redis binaries (run it under scripts/run-integration)",
    )
    started = time.monotonic()
    port = free_port()
    base, issuer = f"http://{LOOPBACK}:{port}", f"http://{LOOPBACK}:{port}/o"
    marker = f"CIBA_PLAY_TEST_MARKER={secrets.token_hex(8)}"
    log = tmp_path / "serve-production-like.log"
    env = environment(**dict([marker.split("=", 1)]))
    script = [str(ROOT / "scripts" / "serve-production-like"), "--port", str(port), "--password", PASSWORD]
    process = spawn(script, log=log, env=env)
    try:
        wait_for_line(process, log, r"(?m)^Serving\. Ctrl-C stops everything\.$", 75)
        assert discovery_answers(issuer)
        output = log.read_text()
        worker_log = Path(re.search(r"Logs: \S+ (\S+/worker\.log)", output).group(1))
        receiver_port = int(re.search(r"Callback receiver\s+https://127\.0\.0\.1:(\d+)/cb/", output).group(1))
        push_client = re.search(r"push client\s+(\S+)", output).group(1)

        client = http()
        client.get(f"{base}/console/", timeout=15).raise_for_status()
        csrf = {"X-CSRFToken": client.cookies["csrftoken"]}
        message = "Push through gunicorn and Celery"
        answer = client.post(
            f"{base}/console/api/requests/",
            data={"mode": "push", "binding_message": message},
            headers=csrf,
            timeout=30,
        )
        assert answer.status_code == 201, answer.text
        request_id = answer.json()["id"]
        assert answer.json()["status"] == "pending", answer.json()

        user = http()
        user.get(f"{base}/o/ciba/login/", timeout=15)
        signed_in = user.post(
            f"{base}/o/ciba/login/",
            data={"username": "demo", "password": PASSWORD, "csrfmiddlewaretoken": user.cookies["csrftoken"]},
            timeout=30,
        )
        assert signed_in.url.endswith("/o/ciba/requests/"), signed_in.url
        pending = user.get(f"{base}/o/ciba/device/requests/", timeout=15).json()
        (entry,) = [item for item in pending if item["binding_message"] == message]
        approved = user.post(
            f"{base}/o/ciba/device/requests/{entry['id']}/approve/",
            json={},
            headers={"X-CSRFToken": user.cookies["csrftoken"]},
            timeout=30,
        )
        assert approved.status_code == 200, approved.text

        def done():
            states = client.get(f"{base}/console/api/requests/", timeout=15).json()["requests"]
            st = next(s for s in states if s["id"] == request_id)
            return st if st["status"] != "pending" else None

        st = wait_until(done, 30, lambda: tail(log, 40), 0.5)
        assert st["status"] == "approved", st
        assert st["claims"]["aud"] == push_client and st["claims"]["iss"] == issuer, st
        assert any(e["text"] == "tokens pushed (bearer token ok)" for e in st["events"]), st
        assert not JWT.search(json.dumps(st)), st
        deliveries = re.findall(
            r"Task django_ciba\.deliver\[[\w-]+\] succeeded in [\d.]+s: 'delivered'", worker_log.read_text()
        )
        assert deliveries, tail(worker_log, 40)  # the push went out from the Celery worker
        assert f"POST /cb/push for request #{request_id}: answered 204" in log.read_text()
        assert processes_with(marker), "the marker is not in the services' environment"

        stopping = time.monotonic()
        interrupt(process, 30)
        print(f"\n(b) stopped {time.monotonic() - stopping:.1f} s after SIGINT")
        wait_until(lambda: not processes_with(marker), 10, lambda: f"left behind: {processes_with(marker)}")
        assert not port_is_open(port) and not port_is_open(receiver_port)
        assert not worker_log.parent.exists(), "the script's temporary directory is left behind"
        output = log.read_text()
        # (the script SIGKILLs a process still running 4 s after SIGTERM: allowed, logged)
        assert "Killed" not in output and "Traceback" not in output, tail(log)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
        for pid in processes_with(marker):  # only what this test started (its marker)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    print(f"(b) production-like push flow: {time.monotonic() - started:.1f} s")
