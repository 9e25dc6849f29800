"""The operator console at an ordinary desktop width, in a real browser: headless Chromium driven by
Playwright against example_project served by runserver on PostgreSQL, with a Celery worker on Redis
delivering the device notifications and trying a ping callback that an HTTPS receiver drops.

A superuser signs in to the admin at 1280x800 and opens the request list (pending, approved,
denied, finished requests) and the outbox. The columns an operator needs most ("Expires at", "Time
left", "Last error", ...) must be on screen without horizontal scrolling. Screenshots are written
to ``$CIBA_SCREENSHOT_DIR`` (default ``tests/integration/screenshots/``), as in test_browser.py.
"""

from __future__ import annotations

import json
import re
import secrets
import time

import pytest

from tests.integration import test_browser as pages
from tests.integration.receiver import Reply


pytestmark = pytest.mark.integration

browser = pages.browser  # the same Chromium fixture as the approval pages' tests
screenshots = pages.screenshots

WIDTH, HEIGHT = 1280, 800
SCOPE = pages.SCOPE
# Quick retries, so the dropped ping has been tried (and has a last error) within seconds.
FAST = {"RETRY_BASE_DELAY": 1, "RETRY_MAX_DELAY": 30, "OUTBOUND_CONNECT_TIMEOUT": 2}
FAST |= {"OUTBOUND_READ_TIMEOUT": 3, "DELIVERY_LEASE": 6}


def wait_for(project, code: str, timeout: float = 40) -> None:
    """Until ``code`` (printing True or False) prints True in the project's shell."""
    end = time.monotonic() + timeout
    while project.shell(code) != "True":
        if time.monotonic() > end:
            pytest.fail(f"never true: {code}\n{project.log_tail()}", pytrace=False)
        time.sleep(0.5)


@pytest.fixture
def console(served_project, callback_receiver):
    """The served OP with a worker, a superuser ``root``, requests in every state and a ping that is
    never answered: ``(project, root's password, the receiver's origin)``."""
    project = served_project
    project.env["CIBA_EXAMPLE_SETTINGS"] = json.dumps(FAST)
    project.env["CIBA_EXAMPLE_SWEEP_SECONDS"] = "1"
    project.migrate()
    password = secrets.token_urlsafe(16)
    project.shell(
        "from django.contrib.auth import get_user_model; "
        f"print(get_user_model().objects.create_superuser('root', 'root@example.com', {password!r}).pk)"
    )
    project.create_user("ada", "ada@example.com", secrets.token_urlsafe(16))
    poller = project.create_client(
        "--name", "Example Bank Online Banking", "--mode", "poll", "--scope", SCOPE
    )
    callback_receiver.script("/cb", Reply(drop=True))  # the ping never gets an answer
    pinger = project.create_client(
        *("--name", "Example Shop Payments", "--mode", "ping", "--scope", SCOPE),
        *("--notification-endpoint", callback_receiver.url("/cb")),
    )
    project.start_web()
    project.start_worker()
    op = pages.OP(project=project, username="ada", password="", client=poller)

    finished = pages.bc_authorize(op, binding_message="Pay 10.00 EUR")
    denied = pages.bc_authorize(op, binding_message="Pay 20.00 EUR")
    pages.bc_authorize(op, binding_message="Pay 30.00 EUR")  # left pending
    pinged = pages.bc_authorize(
        op, binding_message="Pay 40.00 EUR", client=pinger, client_notification_token="t" * 32
    )
    assert "approved" in project.manage("ciba_approve", finished)
    assert pages.poll(op, finished).status_code == 200  # tokens issued: the request is finished
    assert "denied" in project.manage("ciba_deny", denied)
    assert "approved" in project.manage("ciba_approve", pinged)  # the ping is sent now
    # Every device notification delivered; the ping tried and waiting for its retry.
    wait_for(
        project,
        "from django_ciba.models import Delivery as D; "
        "print(not D.objects.filter(kind='device').exclude(status='delivered').exists() "
        "and D.objects.filter(kind='ping', attempts__gte=1).exclude(last_error='').exists())",
    )
    return project, password, callback_receiver.base_url


def sign_in_to_admin(browser, project, password: str):
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": WIDTH, "height": HEIGHT}, locale="en-US")
    context.set_default_timeout(pages.TIMEOUT_MS)
    page = context.new_page()
    page.goto(f"{project.base_url}/admin/login/?next=/admin/")
    page.get_by_label("Username").fill("root")
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{project.base_url}/admin/")
    return page


def column_right_edges(page, names: list[str]) -> dict[str, float]:
    """The right edge (x + width, CSS pixels) of each named column's header cell."""
    edges = {}
    for name in names:
        header = page.get_by_role("columnheader", name=re.compile(rf"^\s*{re.escape(name)}\s*$", re.I))
        box = header.first.bounding_box()
        assert box is not None, f"no header cell {name!r}"
        edges[name] = box["x"] + box["width"]
    return edges


def horizontal_overflow(page) -> int:
    """How far the page, or the list's own scrolling box, scrolls sideways (0: not at all)."""
    return page.evaluate(
        """() => Math.max(
            document.scrollingElement.scrollWidth - document.scrollingElement.clientWidth,
            ...[...document.querySelectorAll('#changelist-form .results, .inline-group fieldset')]
                .map(box => box.scrollWidth - box.clientWidth))"""
    )


def visible_right_edge(page) -> float:
    """The right edge of what the list shows: the viewport, or its scrolling box when narrower."""
    box = page.locator("#changelist-form .results").bounding_box()
    assert box is not None
    return min(WIDTH, box["x"] + box["width"])


def test_request_list_and_outbox_fit_1280_pixels(console, browser, screenshots):
    """The request list shows expiry and time left, the outbox the last error, at 1280 px wide:
    no horizontal scrolling, every header cell within the viewport."""
    from playwright.sync_api import expect

    project, password, receiver = console
    page = sign_in_to_admin(browser, project, password)

    page.goto(f"{project.base_url}/admin/django_ciba/authenticationrequest/")
    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(4)
    screenshots(page, "admin-requests-1280")
    columns = ["Client", "User", "Status", "Expires at", "Time left"]
    edges = column_right_edges(page, columns)
    assert all(edge <= visible_right_edge(page) for edge in edges.values()), edges
    assert horizontal_overflow(page) <= 0
    # Finished requests show no "None" for their time left.
    table = page.locator("#result_list")
    expect(table).not_to_contain_text("None")
    time_left = page.locator("#result_list td.field-time_left")
    texts = time_left.all_inner_texts()
    assert sum(bool(re.fullmatch(r"\d+ min \d\d s", text.strip())) for text in texts) == 2, texts

    page.goto(f"{project.base_url}/admin/django_ciba/delivery/")
    expect(page.locator("#result_list tbody tr")).to_have_count(5)  # 4 device notifications, 1 ping
    screenshots(page, "admin-outbox-1280")
    columns = ["Request", "Kind", "Status", "Attempts", "Next attempt", "Last error"]
    edges = column_right_edges(page, columns)
    assert all(edge <= visible_right_edge(page) for edge in edges.values()), edges
    assert horizontal_overflow(page) <= 0
    # The ping's error is cut to fit; the whole of it is the cell's tooltip.
    last_errors = page.locator("#result_list td.field-last_error_short")
    expect(last_errors.filter(has_text=re.compile(r"\w"))).to_have_count(1)
    error = last_errors.locator("span[title]")
    expect(error).to_have_attribute("title", re.compile(rf"^Outbound POST to {re.escape(receiver)} failed"))
    assert error.inner_text().endswith("…") and len(error.inner_text()) <= 40
    # Delivered notifications have no next attempt.
    delivered = page.locator("#result_list tbody tr").filter(has_text="Delivered")
    expect(delivered).to_have_count(4)
    for text in delivered.locator("td.field-next_attempt").all_inner_texts():
        assert text.strip() == "—", text

    # The request page: history with the client's name, deliveries within the width too.
    page.goto(f"{project.base_url}/admin/django_ciba/authenticationrequest/")
    page.locator("#result_list tbody tr").filter(has_text="Tokens issued").get_by_role("link").first.click()
    expect(page.locator("#events-group")).to_contain_text("Example Bank Online Banking (client:")
    expect(page.locator("div.field-time_left")).not_to_contain_text("None")
    screenshots(page, "admin-request-1280")
    assert horizontal_overflow(page) <= 0
    page.context.close()
