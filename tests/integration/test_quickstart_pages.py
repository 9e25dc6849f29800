"""docs/quickstart.rst followed in a fresh ``startproject``, with the user answering on the approval
pages in headless Chromium (AD-01, AD-02): the address the page gives (``.. quickstart: pages``),
the shipped sign-in page that address leads to without any setting beyond the quickstart's, the
trust cues, the opt-in "Stay signed in", and the client's poll.

The project is built by the fixtures of tests/system/test_quickstart.py (steps 1 to 7, exactly as
the page says); the browser is test_browser.py's (Debian Chromium under Playwright; skipped
without them, failed in CI). Screenshots go to ``$CIBA_SCREENSHOT_DIR`` (default
``tests/integration/screenshots/``).
"""

from __future__ import annotations

import re
import time

import jwt
import pytest

from tests.integration.test_browser import browser, new_page, screenshots  # noqa: F401 - fixtures
from tests.system.test_quickstart import (  # noqa: F401 - fixtures
    json_answer,
    project,
    runserver,
    snippets,
)


pytestmark = pytest.mark.integration


def password_of_alice(code: dict[str, str]) -> str:
    """The password the quickstart's ``user`` step gives alice."""
    return re.search(r"DJANGO_SUPERUSER_PASSWORD=(\S+)", code["user"]).group(1)


def test_the_quickstart_user_approves_on_the_pages(project, browser, screenshots, tmp_path):  # noqa: F811
    from playwright.sync_api import expect

    code, env, root = project.code, dict(project.env), project.root
    with runserver(project, tmp_path / "runserver.log") as issuer:
        pages = code["pages"].strip()
        page = new_page(browser)

        # First request: alice ticks "Stay signed in"; the client gets a refresh token.
        ack = json_answer(code["bc-authorize"], root, env)
        env["AUTH_REQ_ID"] = ack["auth_req_id"]
        page.goto(pages)
        expect(page).to_have_url(f"{issuer}/ciba/login/?next=/o/ciba/requests/")
        expect(page.get_by_role("heading", name="Sign in", level=1)).to_be_visible()
        expect(page.locator(".brand__service")).to_have_text(project.address)  # the service's name
        page.get_by_label("Username").fill("alice")
        page.get_by_label("Password").fill(password_of_alice(code))
        screenshots(page, "quickstart-login")
        signed_in = time.time()
        page.get_by_role("button", name="Sign in", exact=True).click()

        expect(page).to_have_url(pages)
        card = page.get_by_role("listitem").filter(has_text="Teller 12")
        expect(card).to_have_count(1)
        expect(card).to_contain_text(re.compile(r"Requested (less than a minute|1 minute) ago"))
        screenshots(page, "quickstart-list")
        card.get_by_role("link", name="Review request from Teller 12").click()

        expect(page.locator("#binding-message")).to_have_text("Teller 12")
        expect(page.locator(".service")).to_contain_text(f"Teller 12 asks to use your {project.address}")
        expect(page.get_by_text("Sign you in")).to_be_visible()  # openid: always included
        stay = page.get_by_role("checkbox", name="Stay signed in")
        expect(stay).not_to_be_checked()  # consent is opt-in
        screenshots(page, "quickstart-request")
        stay.check()
        page.get_by_role("button", name="Approve", exact=True).click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Request approved")
        screenshots(page, "quickstart-approved")

        time.sleep(ack["interval"])
        tokens = json_answer(code["poll"], root, env)
        assert tokens["scope"].split() == ["openid", "offline_access"], tokens
        assert "refresh_token" in tokens
        claims = jwt.decode(tokens["id_token"], options={"verify_signature": False})
        # IDT-04: approved by alice signed in on the shipped page, so auth_time is her sign-in.
        assert claims["amr"] == ["pwd"], claims
        assert signed_in - 5 <= claims["auth_time"] <= signed_in + 5, claims

        # Second request: nothing ticked, so only openid is granted and no refresh token issued.
        ack = json_answer(code["bc-authorize"], root, env)
        env["AUTH_REQ_ID"] = ack["auth_req_id"]
        page.goto(pages)
        page.get_by_role("listitem").filter(has_text="Teller 12").get_by_role("link").click()
        expect(page.get_by_role("checkbox", name="Stay signed in")).not_to_be_checked()
        page.get_by_role("button", name="Approve", exact=True).click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Request approved")
        time.sleep(ack["interval"])
        tokens = json_answer(code["poll"], root, env)
        assert tokens["scope"].split() == ["openid"], tokens
        assert "refresh_token" not in tokens
        page.context.close()
