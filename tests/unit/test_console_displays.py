"""What the operator console shows in its cells (SEC-10 for secrets; the browser test
tests/integration/test_admin_browser.py checks the widths at 1280 px).

Finished requests have no time left ("—", never "None"); the history names clients and users in a
constant number of queries; finished deliveries have no next attempt; long errors are cut with the
whole text as a tooltip; an empty JWK set is an empty box, not ``null``; and the CIBA registration
says which grants the client gets, whatever DOT's single grant type field says.
"""

from __future__ import annotations

import html as html_lib
import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django.utils.html import escape
from oauth2_provider.models import get_application_model

from django_ciba import audit
from django_ciba.admin.clients import grant_types_note
from django_ciba.admin.displays import truncated
from django_ciba.core.constants import CIBA_GRANT_TYPE
from django_ciba.models import AuthenticationRequest, CibaClient, Delivery
from django_ciba.testing import create_auth_request, create_ciba_client


pytestmark = pytest.mark.django_db

ADMIN = "/admin/django_ciba"
REQUESTS = f"{ADMIN}/authenticationrequest/"
DELIVERIES = f"{ADMIN}/delivery/"
Status = AuthenticationRequest.Status
LONG_ERROR = "Outbound POST to https://rp.example.com/callback/endpoint failed: connection reset by peer"


@pytest.fixture
def operator(db):
    return get_user_model().objects.create_superuser("root", "root@example.com", "pw")


@pytest.fixture
def console(client, operator):
    client.force_login(operator)
    return client


def page(console, url: str) -> str:
    response = console.get(url)
    assert response.status_code == 200
    return response.content.decode()


def readonly_value(html: str, field: str) -> str:
    """The text of a read-only field on a change page."""
    match = re.search(rf'field-{field}">.*?<div class="readonly">(.*?)</div>', html, re.S)
    assert match, field
    return match.group(1).strip()


def cells(html: str, field: str) -> list[str]:
    return [cell.strip() for cell in re.findall(rf'<td class="field-{field}[^"]*">(.*?)</td>', html, re.S)]


# --------------------------------------------------------------------------------------------
# requests: time left, expiry


@pytest.mark.parametrize("status", [Status.DENIED, Status.EXPIRED, Status.CONSUMED, Status.FAILED])
def test_a_finished_request_shows_a_dash_for_its_time_left(console, user, poll_client, status):
    app, _ = poll_client
    finished = create_auth_request(app, user, status=status)
    assert readonly_value(page(console, f"{REQUESTS}{finished.pk}/change/"), "time_left") == "—"
    assert cells(page(console, REQUESTS), "time_left") == ["—"]


def test_a_running_request_shows_its_time_left_and_expiry(console, user, poll_client):
    app, _ = poll_client
    live = create_auth_request(app, user, expires_at=timezone.now() + timedelta(seconds=130))
    html = page(console, REQUESTS)
    assert re.fullmatch(r"2 min \d\d s", cells(html, "time_left")[0])
    local = timezone.localtime(live.expires_at)
    expires = cells(html, "expires")[0]
    assert f"{local:%Y-%m-%d}<br>{local:%H:%M:%S}" in expires
    assert f'title="{local:%Y-%m-%d %H:%M:%S %Z}"' in expires  # the zone, in the tooltip
    readonly = readonly_value(page(console, f"{REQUESTS}{live.pk}/change/"), "time_left")
    assert re.fullmatch(r"2 min \d\d s", readonly)


def test_the_request_list_leaves_creation_to_the_filters_and_the_page(console, user, poll_client):
    # Creation stays sortable through the date hierarchy and on each request's page.
    app, _ = poll_client
    auth_request = create_auth_request(app, user)
    html = page(console, REQUESTS)
    headers = re.findall(r'<th scope="col" class="([^"]*column-[^"]*)"', html)
    columns = [re.search(r"column-(\w+)", header).group(1) for header in headers]
    assert columns == ["id", "client", "user", "status", "mode", "expires", "time_left"]
    assert "django_ciba/admin.css" in html  # the console's stylesheet
    assert "Created:" in page(console, f"{REQUESTS}{auth_request.pk}/change/")


# --------------------------------------------------------------------------------------------
# history: named actors, constant queries


def add_events(auth_request, actors, count):
    for number in range(count):
        audit.record(auth_request, "created" if number == 0 else "device_notified", actor=actors[number % 3])


def history_of(html: str) -> str:
    return html[html.index('id="events-group"') : html.index('id="deliveries-group"')]


def test_the_history_names_the_client_and_the_people(console, operator, user, poll_client):
    app, _ = poll_client
    auth_request = create_auth_request(app, user)
    actors = [audit.client_actor(app), audit.user_actor(user), audit.operator_actor(operator)]
    add_events(auth_request, actors, 3)
    audit.record(auth_request, "expired", actor="system")
    audit.record(auth_request, "approved", actor="policy:trusted-terminal")
    audit.record(auth_request, "denied", actor="user:999999")  # a user deleted since
    audit.record(auth_request, "denied", actor="user:not-a-number")
    audit.record(auth_request, "tokens_issued", actor="client:no-such-client")
    history = history_of(page(console, f"{REQUESTS}{auth_request.pk}/change/"))
    whos = [html_lib.unescape(cell) for cell in re.findall(r'field-who">\s*<p>(.*?)</p>', history, re.S)]
    assert whos == [
        f"Teller terminal (client:{app.client_id})",
        f"alice (user:{user.pk})",
        f"root (operator:{operator.pk})",
        "system",
        "policy:trusted-terminal",
        "user:999999",
        "user:not-a-number",
        "client:no-such-client",
    ]


def test_the_history_costs_the_same_queries_for_three_events_or_thirty(console, operator, user, poll_client):
    app, _ = poll_client
    actors = [audit.client_actor(app), audit.user_actor(user), audit.operator_actor(operator)]
    other_client, _ = create_ciba_client("Second RP")
    counts = []
    for number in (3, 30):
        auth_request = create_auth_request(app, user)
        add_events(auth_request, [*actors[:2], audit.client_actor(other_client)], number)
        audit.record(auth_request, "denied", actor=audit.operator_actor(operator))
        with CaptureQueriesContext(connection) as queries:
            html = page(console, f"{REQUESTS}{auth_request.pk}/change/")
        assert f"Second RP (client:{other_client.client_id})" in history_of(html)
        counts.append(len(queries))
    assert counts[0] == counts[1], counts


# --------------------------------------------------------------------------------------------
# deliveries: next attempt, last error


def make_delivery(auth_request, **fields):
    return Delivery.objects.create(auth_request=auth_request, kind=Delivery.Kind.DEVICE, **fields)


def test_a_finished_delivery_has_no_next_attempt(console, user, poll_client):
    app, _ = poll_client
    auth_request = create_auth_request(app, user)
    due = timezone.now() + timedelta(minutes=5)
    pending = make_delivery(auth_request, next_attempt_at=due, attempts=1, last_error="HTTP 503")
    for status in (Delivery.Status.DELIVERED, Delivery.Status.FAILED, Delivery.Status.CANCELLED):
        make_delivery(auth_request, status=status, attempts=1, next_attempt_at=due)
    local = f"{timezone.localtime(due):%H:%M:%S}"
    listed = cells(page(console, DELIVERIES), "next_attempt")  # newest first
    assert listed[:3] == ["—", "—", "—"] and local in listed[3]
    inline = cells(page(console, f"{REQUESTS}{auth_request.pk}/change/"), "next_attempt")
    assert inline[1:] == ["<p>—</p>"] * 3 and local in inline[0]
    assert local in readonly_value(page(console, f"{DELIVERIES}{pending.pk}/change/"), "next_attempt")
    finished = Delivery.objects.exclude(pk=pending.pk).first()
    assert readonly_value(page(console, f"{DELIVERIES}{finished.pk}/change/"), "next_attempt") == "—"


def test_the_outbox_cuts_a_long_last_error_and_keeps_it_in_a_tooltip(console, user, poll_client):
    app, _ = poll_client
    auth_request = create_auth_request(app, user)
    make_delivery(auth_request, attempts=2, last_error=LONG_ERROR)
    make_delivery(auth_request, attempts=1, last_error="HTTP 503")
    make_delivery(auth_request, status=Delivery.Status.DELIVERED, attempts=1)
    html = page(console, DELIVERIES)
    delivered, short, long = cells(html, "last_error_short")
    assert (delivered, short) == ("—", "HTTP 503")
    assert f'title="{LONG_ERROR}"' in long
    visible = re.sub(r"<[^>]+>", "", long)
    assert visible.endswith("…") and len(visible) <= 40 and LONG_ERROR.startswith(visible[:-1])
    assert re.findall(r'<td class="field-kind_short">(.*?)</td>', html) == ["Device"] * 3
    assert re.findall(r'<td class="field-request_number">(.*?)</td>', html) == [f"#{auth_request.pk}"] * 3


def test_truncated():
    assert truncated("") == "—"
    assert truncated("x" * 40) == "x" * 40
    assert truncated("x" * 41) == '<span title="' + "x" * 41 + '">' + "x" * 39 + "…</span>"
    text = '<b>"a"</b>' * 10  # escaped, in the text and in the tooltip
    assert truncated(text) == f'<span title="{escape(text)}">{escape(text[:39])}…</span>'


# --------------------------------------------------------------------------------------------
# CIBA registrations: the JWK set, the grant types


def jwks_box(html: str, name: str) -> str:
    match = re.search(rf'<textarea name="{name}"[^>]*>(.*?)</textarea>', html, re.S)
    assert match, name
    return match.group(1).strip()


def test_an_empty_jwk_set_is_an_empty_box_not_null(console, poll_client):
    app, _ = poll_client
    ciba = CibaClient.objects.get(application=app)
    assert ciba.jwks is None
    html = page(console, f"{ADMIN}/cibaclient/{ciba.pk}/change/")
    assert jwks_box(html, "jwks") == ""
    assert re.search(r'<textarea name="jwks"[^>]*placeholder="none"', html)
    inline = page(console, f"/admin/oauth2_provider/application/{app.pk}/change/")
    assert jwks_box(inline, "ciba-0-jwks") == ""


def test_a_jwk_set_is_shown_as_json(console, poll_client):
    app, _ = poll_client
    ciba = CibaClient.objects.get(application=app)
    ciba.jwks = {"keys": []}
    ciba.save()
    html = page(console, f"{ADMIN}/cibaclient/{ciba.pk}/change/")
    assert html_lib.unescape(jwks_box(html, "jwks")) == '{"keys": []}'


def test_saving_an_empty_jwk_set_keeps_it_empty(console, poll_client):
    app, _ = poll_client
    ciba = CibaClient.objects.get(application=app)
    form = {
        "application": app.pk,
        "enabled": "on",
        "delivery_mode": "poll",
        "token_endpoint_auth_method": "client_secret_basic",
        "subject_type": "public",
        "ciba_only": "on",
        "jwks": "",
    }
    response = console.post(f"{ADMIN}/cibaclient/{ciba.pk}/change/", form)
    assert response.status_code == 302, response.content.decode()[:3000]
    ciba.refresh_from_db()
    assert ciba.jwks is None and ciba.ciba_only


def test_the_grant_types_of_a_ciba_only_client(console, poll_client):
    app, _ = poll_client
    CibaClient.objects.filter(application=app).update(ciba_only=True)
    html = html_lib.unescape(page(console, f"/admin/oauth2_provider/application/{app.pk}/change/"))
    # DOT's own field still says "Client credentials"; the CIBA inline explains it.
    assert re.search(r'name="authorization_grant_type" value="client-credentials"[^>]*checked', html)
    note = readonly_value(html, "grant_types")
    assert note.startswith(f"{CIBA_GRANT_TYPE}, refresh_token. CIBA only: client_credentials is refused")
    assert "not used for CIBA" in note
    ciba_page = html_lib.unescape(page(console, f"{ADMIN}/cibaclient/{app.ciba.pk}/change/"))
    assert readonly_value(ciba_page, "grant_types") == note


def test_the_grant_types_of_other_registrations(poll_client):
    app, _ = poll_client
    ciba = CibaClient.objects.get(application=app)
    ciba.application = app
    ciba.ciba_only = False
    assert grant_types_note(ciba).startswith(f"{CIBA_GRANT_TYPE}, refresh_token, Client credentials. ")
    app.authorization_grant_type = get_application_model().GRANT_AUTHORIZATION_CODE
    ciba.ciba_only = True
    assert grant_types_note(ciba).startswith(f"{CIBA_GRANT_TYPE}, refresh_token, Authorization code. ")
    ciba.delivery_mode = "push"
    assert grant_types_note(ciba).startswith("refresh_token, Authorization code. ")
    assert "never polled" in grant_types_note(ciba)
    ciba.enabled = False
    assert grant_types_note(ciba).startswith("None: the registration is disabled")
    assert "client_credentials is refused" in grant_types_note(None)
    assert "client_credentials is refused" in grant_types_note(CibaClient())
