"""The approval pages in a real browser: headless Chromium driven by Playwright
against example_project served by runserver on PostgreSQL.

A poll client starts a request over HTTP with a binding message; the user signs in through the login
page, finds the request in their list, opens it and approves, denies, or says "I did not request
this"; the client's poll then gets tokens or ``access_denied``. Screenshots of the pages are written to
``$CIBA_SCREENSHOT_DIR`` (default ``tests/integration/screenshots/``) and their paths printed.

Run with: ``scripts/with-chromium scripts/with-postgres scripts/with-redis .venv/bin/pytest
tests/integration/test_browser.py`` (``scripts/with-chromium`` installs Debian's chromium when it is
missing and exports ``CIBA_CHROMIUM``). Without Chromium or Playwright these tests are skipped, and
fail in CI (``CI=true``).
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import jwt
import pytest
import requests

from django_ciba.core.constants import CIBA_GRANT_TYPE
from tests.integration.conftest import require
from tests.integration.services import ROOT, ServedProject


pytestmark = pytest.mark.integration

SCOPE = "openid profile email"
CLIENT_NAME = "Example Bank"
BINDING_MESSAGE = "Transfer 42.00 EUR to Example Shop – code 7QX2"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-proxy-server",  # everything is on loopback
]
TIMEOUT_MS = 20_000
SESSION = requests.Session()
SESSION.trust_env = False  # no proxies for loopback


def chromium_path() -> str:
    candidate = (
        os.environ.get("CIBA_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    )
    return candidate if candidate and os.access(candidate, os.X_OK) else ""


@pytest.fixture
def browser():
    """Headless Debian Chromium under Playwright; skipped (failed in CI) when either is missing."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    require(
        sync_playwright is not None, "The browser tests need the playwright package (pip install -e .[test])"
    )
    path = chromium_path()
    require(bool(path), "The browser tests need Chromium (scripts/with-chromium installs Debian's chromium)")
    playwright = sync_playwright().start()
    try:
        browser = playwright.chromium.launch(
            executable_path=path, headless=True, args=CHROMIUM_ARGS, timeout=60_000
        )
        try:
            yield browser
        finally:
            browser.close()
    finally:
        playwright.stop()


@pytest.fixture
def screenshots(capsys):
    """``shot(page, name)``: a full-page PNG in the screenshot directory; its path is printed."""
    directory = Path(os.environ.get("CIBA_SCREENSHOT_DIR") or ROOT / "tests" / "integration" / "screenshots")
    directory.mkdir(parents=True, exist_ok=True)

    def shot(page, name: str) -> Path:
        path = directory / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        assert path.stat().st_size > 0
        with capsys.disabled():
            print(f"\nscreenshot: {path}")
        return path

    return shot


@dataclass
class OP:
    project: ServedProject
    username: str
    password: str
    client: dict

    @property
    def base_url(self) -> str:
        return self.project.base_url


@pytest.fixture
def op(served_project):
    """The served OP (no worker needed: the request row exists at once), user ``ada`` with a password
    and a poll client ``Example Bank``."""
    project = served_project
    project.migrate()
    password = secrets.token_urlsafe(16)
    project.create_user("ada", "ada@example.com", password)
    client = project.create_client("--name", CLIENT_NAME, "--mode", "poll", "--scope", SCOPE)
    project.start_web()
    return OP(project=project, username="ada", password=password, client=client)


def bc_authorize(
    op: OP, binding_message: str = BINDING_MESSAGE, client: dict | None = None, **params: str
) -> str:
    client = client or op.client
    response = SESSION.post(
        f"{op.project.issuer}/bc-authorize",
        data={"scope": SCOPE, "login_hint": op.username, "binding_message": binding_message, **params},
        auth=(client["client_id"], client["client_secret"]),
        timeout=15,
    )
    assert response.status_code == 200, response.text
    return response.json()["auth_req_id"]


def poll(op: OP, auth_req_id: str, client: dict | None = None) -> requests.Response:
    client = client or op.client
    return SESSION.post(
        f"{op.project.issuer}/token/",
        data={"grant_type": CIBA_GRANT_TYPE, "auth_req_id": auth_req_id},
        auth=(client["client_id"], client["client_secret"]),
        timeout=15,
    )


def approval_url(op: OP) -> str:
    """The link a device notification carries for the newest request (CIBA["APPROVAL_URL"])."""
    return op.project.shell(
        "from django_ciba.models import AuthenticationRequest; "
        "from django_ciba.delivery.worker import build_notification; "
        "print(build_notification(AuthenticationRequest.objects.latest('pk')).approval_url)"
    )


def new_page(browser, **options):
    context = browser.new_context(
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        locale="en-US",
        is_mobile=True,
        has_touch=True,
        **options,
    )
    context.set_default_timeout(TIMEOUT_MS)
    return context.new_page()


def sign_in(page, op: OP, shot=None) -> None:
    """On the login page: fill in the labelled fields and submit."""
    from playwright.sync_api import expect

    expect(page).to_have_url(re.compile(r"/o/ciba/login/\?next="))
    expect(page.get_by_role("heading", name="Sign in", level=1)).to_be_visible()
    page.get_by_label("Username").fill(op.username)
    page.get_by_label("Password").fill(op.password)
    if shot is not None:
        shot(page, "login")
    page.get_by_role("button", name="Sign in", exact=True).click()


def open_from_list(page, op: OP, shot=None):
    """Sign in through the list page, find the request by its binding message and open it."""
    from playwright.sync_api import expect

    page.goto(f"{op.base_url}/o/ciba/requests/")
    sign_in(page, op, shot)
    expect(page).to_have_url(f"{op.base_url}/o/ciba/requests/")
    expect(page.get_by_role("heading", name="Pending sign-in requests", level=1)).to_be_visible()
    card = page.get_by_role("listitem").filter(has_text=BINDING_MESSAGE)
    expect(card).to_have_count(1)
    expect(card.get_by_role("heading", name=CLIENT_NAME)).to_be_visible()
    expect(card).to_contain_text("Sign you in")  # the scopes, in plain language
    expect(card).to_contain_text(re.compile(r"Expires in \d+ minutes"))
    if shot is not None:
        shot(page, "list")
    card.get_by_role("link", name=f"Review request from {CLIENT_NAME}").click()
    expect(page).to_have_url(re.compile(r"/o/ciba/requests/\d+/$"))
    return card


def check_detail_page(page) -> None:
    from playwright.sync_api import expect

    expect(page.get_by_role("heading", level=1)).to_contain_text(CLIENT_NAME)
    message = page.locator("#binding-message")
    expect(message).to_have_text(BINDING_MESSAGE)
    expect(message).to_be_visible()
    # Consent is opt-in: the optional scopes start unticked.
    expect(page.get_by_role("checkbox", name="See your name")).not_to_be_checked()
    expect(page.get_by_role("checkbox", name="See your e-mail address")).not_to_be_checked()
    # Trust cues: this service (the host, CIBA["SERVICE_NAME"] being unset) and the request's age.
    expect(page.locator(".service")).to_contain_text(f"{CLIENT_NAME} asks to use your 127.0.0.1")
    expect(page.locator(".requested")).to_contain_text("Requested less than a minute ago")
    for name in ("Approve", "Deny", "I did not request this"):
        expect(page.get_by_role("button", name=name, exact=True)).to_be_visible()
    # The binding message is the most prominent text on the page.
    sizes = page.evaluate(
        """() => [...document.querySelectorAll('main *')]
            .filter(e => e.childElementCount === 0 && e.textContent.trim())
            .map(e => [e.id, parseFloat(getComputedStyle(e).fontSize)])"""
    )
    largest = max(size for _, size in sizes)
    assert dict(sizes)["binding-message"] == largest, sizes


def test_sign_in_approve_and_the_poll_gets_tokens(op, browser, screenshots):
    from playwright.sync_api import expect

    auth_req_id = bc_authorize(op)
    page = new_page(browser)
    open_from_list(page, op, shot=screenshots)
    check_detail_page(page)
    page.get_by_role("checkbox", name="See your name").check()
    page.get_by_role("checkbox", name="See your e-mail address").check()
    screenshots(page, "approval")
    page.get_by_role("button", name="Approve", exact=True).click()
    expect(page).to_have_url(re.compile(r"/o/ciba/requests/\d+/result/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Request approved")
    screenshots(page, "result-approved")

    response = poll(op, auth_req_id)
    assert response.status_code == 200, response.text
    tokens = response.json()
    assert {"access_token", "id_token", "token_type"} <= set(tokens)
    assert set(tokens["scope"].split()) == set(SCOPE.split())

    # The list is empty now; the request page tells a second visitor it was already answered.
    page.goto(f"{op.base_url}/o/ciba/requests/")
    expect(page.get_by_text("No sign-in requests are waiting for you.")).to_be_visible()
    page.goto(approval_url(op))
    expect(page.get_by_role("status")).to_contain_text("already been answered")
    expect(page.get_by_role("heading", level=1)).to_have_text("Request approved")
    page.context.close()


def test_deny(op, browser, screenshots):
    from playwright.sync_api import expect

    auth_req_id = bc_authorize(op)
    page = new_page(browser, color_scheme="dark")
    open_from_list(page, op)
    check_detail_page(page)
    screenshots(page, "approval-dark")
    page.get_by_role("button", name="Deny", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Request denied")
    screenshots(page, "result-denied")

    response = poll(op, auth_req_id)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "access_denied"
    assert (
        op.project.shell("from django_ciba.models import AbuseReport; print(AbuseReport.objects.count())")
        == "0"
    )
    page.context.close()


def test_i_did_not_request_this_reports_the_client(op, browser, screenshots):
    from playwright.sync_api import expect

    auth_req_id = bc_authorize(op)
    # As from an e-mail or push notification: the link to the request, then the login page.
    link = approval_url(op)
    assert re.fullmatch(rf"{re.escape(op.project.issuer)}/ciba/requests/\d+/", link), link
    page = new_page(browser)
    page.goto(link)
    sign_in(page, op)
    expect(page).to_have_url(link)
    check_detail_page(page)
    page.get_by_role("button", name="I did not request this", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Request denied and reported")
    screenshots(page, "result-reported")

    reports = op.project.shell_json(
        "import json; from django_ciba.models import AbuseReport; "
        "print(json.dumps(list(AbuseReport.objects.values("
        "'client__client_id', 'user__username', 'binding_message', 'auth_request__status'))))"
    )
    assert reports == [
        {
            "client__client_id": op.client["client_id"],
            "user__username": op.username,
            "binding_message": BINDING_MESSAGE,
            "auth_request__status": "denied",
        }
    ]
    response = poll(op, auth_req_id)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "access_denied"
    page.context.close()


def test_assurance_comes_from_the_sign_in_and_survives_refreshes(op, browser, screenshots):
    """IDT-04 / AD-04 / TOK-11 / IDT-08: a password sign-in cannot approve a request asking for
    MFA (the page says why); an approval's acr and amr come from the sign-in and its auth_time is
    the sign-in, not the click; ID tokens of the refresh grant keep all three across rotations."""
    from playwright.sync_api import expect

    mfa_id = bc_authorize(op, acr_values="urn:django-ciba:acr:mfa")
    page = new_page(browser)
    before_sign_in = int(time.time())
    open_from_list(page, op)
    signed_in = time.time()
    page.get_by_role("button", name="Approve", exact=True).click()
    expect(page.get_by_role("alert")).to_contain_text("needs a stronger sign-in")
    expect(page.get_by_role("button", name="Deny", exact=True)).to_be_visible()
    screenshots(page, "approval-needs-second-factor")
    assert poll(op, mfa_id).json()["error"] == "authorization_pending"

    keeper = op.project.create_client(
        "--name", "Keeper", "--mode", "poll", "--scope", "openid offline_access"
    )
    auth_req_id = bc_authorize(
        op, client=keeper, scope="openid offline_access", acr_values="urn:django-ciba:acr:password"
    )
    time.sleep(2.5)  # the click comes well after the sign-in
    page.goto(approval_url(op))
    page.get_by_role("checkbox", name="Keep access while you are away").check()  # offline_access
    clicked = time.time()
    page.get_by_role("button", name="Approve", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Request approved")
    page.context.close()

    response = poll(op, auth_req_id, client=keeper)
    assert response.status_code == 200, response.text
    tokens = response.json()
    claims = jwt.decode(tokens["id_token"], options={"verify_signature": False})
    assert (claims["acr"], claims["amr"]) == ("urn:django-ciba:acr:password", ["pwd"])
    assert before_sign_in <= claims["auth_time"] <= signed_in + 1
    assert claims["auth_time"] < clicked - 1
    expected = {name: claims[name] for name in ("auth_time", "acr", "amr")}
    seen = {tokens["refresh_token"]}
    for _ in range(2):
        response = SESSION.post(
            f"{op.project.issuer}/token/",
            data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
            auth=(keeper["client_id"], keeper["client_secret"]),
            timeout=15,
        )
        assert response.status_code == 200, response.text
        tokens = response.json()
        assert tokens["refresh_token"] not in seen  # DOT rotates the refresh token
        seen.add(tokens["refresh_token"])
        refreshed = jwt.decode(tokens["id_token"], options={"verify_signature": False})
        assert {name: refreshed.get(name) for name in expected} == expected
