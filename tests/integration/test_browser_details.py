"""Authorization details (RFC 9396) in a real browser: the user approves part of a payment request.

A poll client asks, through the served bc-authorize endpoint, for two payments and a hostile third
one (markup in the creditor's name) of a type that allows a subset; the user signs in on the
approval page, sees each payment rendered (amounts formatted, markup shown as text), unticks one and
approves; the client's poll then receives exactly the approved details. Run with
``scripts/run-integration -k browser_details``.
"""

from __future__ import annotations

import json
import re
import secrets

import pytest

from django_ciba.core import details_rendering
from django_ciba.core.authorization_schemas import PAYMENT as PAYMENT_SCHEMA
from tests.integration.test_browser import (  # noqa: F401  (browser and screenshots are fixtures)
    OP,
    SCOPE,
    bc_authorize,
    browser,
    new_page,
    poll,
    screenshots,
    sign_in,
)


pytestmark = pytest.mark.integration

BINDING = "Pay Müller, Bäckerei and Evil – code 8KD4"
SCRIPT = "<script>document.title='pwned'</script>"


def payment(amount: str, creditor: str, iban: str) -> dict:
    return {
        "type": "payment_initiation",
        "instructedAmount": {"currency": "EUR", "amount": amount},
        "creditorName": creditor,
        "creditorAccount": {"iban": iban},
    }


MUELLER = payment("1234.56", "Müller GmbH", "DE02100100109307118603")
BAECKEREI = payment("9.00", "Bäckerei Schmidt", "DE02300209000106531065")
EVIL = payment("5000.00", f"Evil {SCRIPT}", "DE89370400440532013000")
TYPES = {
    "payment_initiation": {
        "SCHEMA": PAYMENT_SCHEMA,
        "SUBSET": True,
        "TEMPLATE": details_rendering.PAYMENT_HTML,
        "TEXT_TEMPLATE": details_rendering.PAYMENT_TEXT,
    }
}


@pytest.fixture
def op(served_project):
    project = served_project
    project.env["CIBA_EXAMPLE_SETTINGS"] = json.dumps({"AUTHORIZATION_DETAILS": {"TYPES": TYPES}})
    project.migrate()
    password = secrets.token_urlsafe(16)
    project.create_user("ada", "ada@example.com", password)
    client = project.create_client("--name", "Agent Pay", "--mode", "poll", "--scope", SCOPE)
    project.start_web()
    return OP(project=project, username="ada", password=password, client=client)


def test_browser_details_approve_a_subset_of_payments(op, browser, screenshots):  # noqa: F811
    from playwright.sync_api import expect

    auth_req_id = bc_authorize(
        op, binding_message=BINDING, authorization_details=json.dumps([MUELLER, BAECKEREI, EVIL])
    )
    page = new_page(browser)
    titles = []
    page.on("dialog", lambda dialog: (titles.append(dialog.message), dialog.dismiss()))
    page.goto(f"{op.base_url}/o/ciba/requests/")
    sign_in(page, op)
    page.get_by_role("link", name="Review request from Agent Pay").click()
    expect(page).to_have_url(re.compile(r"/o/ciba/requests/\d+/$"))

    items = page.locator(".details__item")
    expect(items).to_have_count(3)
    expect(items.nth(0)).to_contain_text("1,234.56 EUR")  # the browser asks for en-US
    expect(items.nth(0)).to_contain_text("Müller GmbH")
    expect(items.nth(1)).to_contain_text("9.00 EUR")
    expect(items.nth(1)).to_contain_text("Bäckerei Schmidt")
    expect(items.nth(2)).to_contain_text(SCRIPT)  # shown as text, never run
    assert page.title() != "pwned" and not titles
    for position in range(3):
        expect(page.locator(f"#detail-{position}")).to_be_checked()
    screenshots(page, "details-approval")

    page.locator("#detail-1").uncheck()
    page.locator("#detail-2").uncheck()
    page.get_by_role("button", name="Approve", exact=True).click()
    expect(page).to_have_url(re.compile(r"/o/ciba/requests/\d+/result/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Request approved")

    response = poll(op, auth_req_id)
    assert response.status_code == 200, response.text
    assert response.json()["authorization_details"] == [MUELLER]
    page.context.close()
