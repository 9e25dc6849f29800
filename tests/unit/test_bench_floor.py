"""The benchmark's bare-Django floor (benchmarks/floor.py): its two views answer as the library's
endpoints do for the scenarios measured, and the table puts each django-ciba row next to its floor."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from django.urls import path

from benchmarks import floor
from benchmarks.report import merge_sections, render
from django_ciba.core.identifiers import hash_auth_req_id
from django_ciba.models import AuthenticationRequest, Delivery, RequestEvent
from django_ciba.testing import FORM, basic_auth

from .test_bench_configs import _part, _row


urlpatterns = [
    path("floor/token", floor.pending_poll),
    path("floor/bc-authorize", floor.bc_authorize),
]
pytestmark = [pytest.mark.django_db, pytest.mark.urls(__name__)]


def _post(client, url, data, auth):
    return client.post(url, urlencode(data), content_type=FORM, HTTP_AUTHORIZATION=auth)


def test_floor_bc_authorize_writes_the_request_its_event_and_a_finished_outbox_row(client, user, poll_client):
    app, secret = poll_client
    auth = basic_auth(app.client_id, secret)
    answer = _post(client, "/floor/bc-authorize", {"scope": "openid", "login_hint": user.username}, auth)
    assert answer.status_code == 200
    body = answer.json()
    assert set(body) == {"auth_req_id", "expires_in", "interval"}
    request = AuthenticationRequest.objects.get(auth_req_id_hash=hash_auth_req_id(body["auth_req_id"]))
    assert (request.user, request.client, request.status) == (user, app, AuthenticationRequest.Status.PENDING)
    assert list(RequestEvent.objects.filter(auth_request=request).values_list("event", flat=True)) == [
        "created"
    ]
    # Written as delivered: the library's worker and sweep never pick a floor row up.
    assert list(Delivery.objects.filter(auth_request=request).values_list("status", flat=True)) == [
        Delivery.Status.DELIVERED
    ]

    assert _post(client, "/floor/bc-authorize", {"scope": "openid", "login_hint": "nobody"}, auth).json() == {
        "error": "unknown_user_id"
    }
    assert _post(
        client, "/floor/bc-authorize", {"scope": "profile", "login_hint": user.username}, auth
    ).json() == {"error": "invalid_scope"}
    wrong = basic_auth(app.client_id, secret[:-1] + ("x" if secret[-1] != "x" else "y"))
    refused = _post(client, "/floor/bc-authorize", {"scope": "openid", "login_hint": user.username}, wrong)
    assert (refused.status_code, refused.json()) == (401, {"error": "invalid_client"})


def test_floor_pending_poll_answers_pending_then_slow_down(client, user, poll_client):
    app, secret = poll_client
    auth = basic_auth(app.client_id, secret)
    started = _post(
        client, "/floor/bc-authorize", {"scope": "openid", "login_hint": user.username}, auth
    ).json()
    poll = {"grant_type": floor.CIBA_GRANT, "auth_req_id": started["auth_req_id"]}

    first = _post(client, "/floor/token", poll, auth)
    assert (first.status_code, first.json()) == (400, {"error": "authorization_pending"})
    assert _post(client, "/floor/token", poll, auth).json() == {"error": "slow_down"}
    unknown = _post(client, "/floor/token", {**poll, "auth_req_id": "x" * 43}, auth)
    assert unknown.json() == {"error": "invalid_grant"}


def test_each_library_row_is_compared_with_its_floor_and_the_reference_ratio_stays_the_library_s():
    part = _part("production", "gthread", 1.0, reference=True)
    part["requests"][2:2] = [_row("floor: pending poll (bare Django)", 165, None, floor_of="pending_poll")]
    part["requests"].append(_row("floor: bc-authorize (bare Django)", 240, None, floor_of="bc_authorize"))
    data = merge_sections([part])
    rows = {row["label"]: row for row in data["sections"][0]["requests"]}

    assert rows["pending poll (10,000 rows)"]["x_floor"] == pytest.approx(2.0)  # 330 / 165
    assert rows["bc-authorize"]["x_floor"] == pytest.approx(0.25)  # 60 / 240
    assert rows["floor: bc-authorize (bare Django)"]["x_reference"] == pytest.approx(0.08)  # 240 / 3000
    assert data["sections"][0]["reference_ratios"]["bc_authorize"]["rps"] == pytest.approx(0.02)  # 60 / 3000
    assert "x_floor" not in rows["client_credentials (baseline)"]

    data["meta"].update(elapsed_s=10, started="now")
    table = render(data)
    assert "× floor" in table
    line = next(text for text in table.splitlines() if text.startswith("bc-authorize "))
    assert line.rstrip().endswith("0.25x")
