"""The authentication-device DRF API under ``/o/ciba/device/requests/`` (AD-01..AD-03, SEC-10)."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from django_ciba.models import AuthenticationRequest
from tests.unit.approvals import make_request


LIST_URL = "/o/ciba/device/requests/"
NOTIFICATION_TOKEN = "ping-notification-token-0123456789abcdef"
Status = AuthenticationRequest.Status


def detail_url(pk):
    return f"{LIST_URL}{pk}/"


def approve_url(pk):
    return f"{LIST_URL}{pk}/approve/"


def deny_url(pk):
    return f"{LIST_URL}{pk}/deny/"


def assert_json_error(response, status, error=None):
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert isinstance(body.get("error"), str) and body["error"]
    if error is not None:
        assert body["error"] == error
    return body


# --------------------------------------------------------------------------------------------
# authentication


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("method", "url"),
    [("get", LIST_URL), ("get", "detail"), ("post", "approve"), ("post", "deny")],
)
def test_anonymous_is_refused(client, pending, method, url):
    # AD-01: only the signed-in end user reaches the device API.
    target = {"detail": detail_url, "approve": approve_url, "deny": deny_url}.get(url, lambda pk: url)
    response = getattr(client, method)(target(pending.pk))
    assert response.status_code in (401, 403)
    assert_json_error(response, response.status_code)
    pending.refresh_from_db()
    assert pending.status == Status.PENDING


# --------------------------------------------------------------------------------------------
# listing and reading


@pytest.mark.django_db
def test_list_shows_own_pending_requests_with_fields(alice, app, user, other_user):
    # AD-01 / AD-02: what the device shows: client, scopes, binding message, time left.
    app.name = "Teller terminal"
    app.save()
    mine = make_request(app, user, scope="openid payments", binding_message="Pay 10 EUR? 4711")
    make_request(app, other_user)
    make_request(app, user, status=Status.DENIED)
    make_request(app, user, expires_in=-5)
    response = alice.get(LIST_URL)
    assert response.status_code == 200, response.content
    data = response.json()
    assert [item["id"] for item in data] == [mine.pk]
    item = data[0]
    assert item["client_name"] == "Teller terminal"
    assert item["scopes"] == ["openid", "payments"]
    assert item["binding_message"] == "Pay 10 EUR? 4711"
    assert item["status"] == "pending"
    assert isinstance(item["expires_in"], int) and 290 <= item["expires_in"] <= 300


@pytest.mark.django_db
def test_client_name_falls_back_to_client_id(alice, app, user):
    # AD-01: the user always sees which client asks.
    app.name = ""
    app.save()
    make_request(app, user)
    assert alice.get(LIST_URL).json()[0]["client_name"] == app.client_id


@pytest.mark.django_db
def test_detail_of_own_request(alice, pending):
    # AD-01
    response = alice.get(detail_url(pending.pk))
    assert response.status_code == 200, response.content
    data = response.json()
    assert data["id"] == pending.pk
    assert data["binding_message"] == "Code 4711"
    assert data["scopes"] == ["openid", "profile"]


@pytest.mark.django_db
def test_other_users_request_is_404(client, pending, other_user):
    # AD-01: another user's request does not exist for you (no enumeration).
    client.force_login(other_user)
    assert client.get(LIST_URL).json() == []
    assert_json_error(client.get(detail_url(pending.pk)), 404, "not_found")
    assert_json_error(client.post(approve_url(pending.pk), {"scope": "openid"}), 404, "not_found")
    assert_json_error(client.post(deny_url(pending.pk)), 404, "not_found")
    pending.refresh_from_db()
    assert pending.status == Status.PENDING


@pytest.mark.django_db
def test_unknown_pk_is_404_json(alice, pending):
    # AD-01
    assert_json_error(alice.get(detail_url(pending.pk + 999)), 404, "not_found")


# --------------------------------------------------------------------------------------------
# approve / deny


@pytest.mark.django_db
def test_approve_with_scope_subset(alice, pending):
    # AD-01 / AD-03: approve, granting only openid.
    response = alice.post(approve_url(pending.pk), {"scope": "openid"}, content_type="application/json")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "approved"
    pending.refresh_from_db()
    assert pending.status == Status.APPROVED
    assert pending.granted_scopes == ["openid"]


@pytest.mark.django_db
def test_approve_without_body_grants_everything(alice, pending):
    # AD-01
    response = alice.post(approve_url(pending.pk))
    assert response.status_code == 200, response.content
    pending.refresh_from_db()
    assert pending.granted_scopes == ["openid", "profile"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ({"scope": "openid profile", "acr": "urn:django-ciba:acr:mfa"}, None),
        ({"amr": ["pwd", "hwk", "mfa"]}, "application/json"),
        ({"acr": "urn:django-ciba:acr:mfa", "amr": ["hwk"]}, "application/json"),
        ({"auth_time": 1}, "application/json"),
        ({"acr": ""}, None),
    ],
)
def test_approve_with_acr_amr_or_auth_time_is_refused(alice, pending, body, content_type):
    # IDT-04 / AD-04: the browser does not choose its assurance; the caller learns it (400).
    kwargs = {"content_type": content_type} if content_type else {}
    answer = assert_json_error(alice.post(approve_url(pending.pk), body, **kwargs), 400, "invalid")
    assert "derives acr, amr and auth_time" in answer["error_description"]
    pending.refresh_from_db()
    assert pending.status == Status.PENDING
    assert (pending.acr, pending.amr) == ("", [])


# (JSON body or its raw text, the error code when the row pins one)
REFUSED_APPROVALS = [
    # AD-01: consent cannot widen the request.
    pytest.param({"scope": "openid payments"}, "invalid_scope", id="AD-01-unrequested-scope"),
    pytest.param({"scope": "profile"}, "invalid_scope", id="AD-01-without-openid"),
    # AD-01: invalid input is answered with the JSON error shape.
    pytest.param('{"scope": ', None, id="AD-01-malformed-json"),
    pytest.param({"scope": ["openid"]}, None, id="AD-01-scope-not-a-string"),
    pytest.param({"scope": ""}, None, id="AD-01-empty-scope"),
]


@pytest.mark.django_db
@pytest.mark.parametrize("body, error", REFUSED_APPROVALS)
def test_refused_approval_is_400_json_and_changes_nothing(alice, pending, body, error):
    answer = assert_json_error(
        alice.post(approve_url(pending.pk), body, content_type="application/json"), 400, error
    )
    assert answer["error_description"]
    pending.refresh_from_db()
    assert pending.status == Status.PENDING


@pytest.mark.django_db
def test_deny(alice, pending):
    # AD-03
    response = alice.post(deny_url(pending.pk))
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "denied"
    pending.refresh_from_db()
    assert pending.status == Status.DENIED


@pytest.mark.django_db
def test_decided_request_is_409_json(alice, pending):
    # AD-03: a decision is final.
    assert alice.post(deny_url(pending.pk)).status_code == 200
    assert_json_error(alice.post(approve_url(pending.pk)), 409, "not_pending")
    assert_json_error(alice.post(deny_url(pending.pk)), 409, "not_pending")
    pending.refresh_from_db()
    assert pending.status == Status.DENIED


@pytest.mark.django_db
def test_expired_request_is_409_json(alice, app, user):
    # AD-03 / TOK-09
    expired = make_request(app, user, expires_in=-1)
    assert_json_error(alice.post(approve_url(expired.pk)), 409, "expired")
    expired.refresh_from_db()
    assert expired.status == Status.PENDING


@pytest.mark.django_db
def test_get_on_approve_is_405_json(alice, pending):
    # AD-01: state changes only by POST.
    assert_json_error(alice.get(approve_url(pending.pk)), 405)
    pending.refresh_from_db()
    assert pending.status == Status.PENDING


# --------------------------------------------------------------------------------------------
# CSRF


@pytest.mark.django_db
def test_csrf_enforced_for_session_post(user, pending):
    # AD-01: a session-authenticated POST without a CSRF token is refused.
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user)
    assert_json_error(browser.post(approve_url(pending.pk)), 403)
    assert_json_error(browser.post(deny_url(pending.pk)), 403)
    pending.refresh_from_db()
    assert pending.status == Status.PENDING


@pytest.mark.django_db
def test_csrf_token_allows_session_post(user, pending):
    # AD-01: with the CSRF cookie and header the same POST succeeds.
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user)
    token = "a" * 32
    browser.cookies["csrftoken"] = token
    response = browser.post(approve_url(pending.pk), {"scope": "openid"}, HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 200, response.content
    pending.refresh_from_db()
    assert pending.status == Status.APPROVED


@pytest.mark.django_db
def test_csrf_does_not_block_reads(user, pending):
    # AD-01: GET needs no CSRF token.
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user)
    assert browser.get(LIST_URL).status_code == 200


# --------------------------------------------------------------------------------------------
# SEC-10: no secrets


@pytest.mark.django_db
def test_no_secrets_in_any_response(client, user):
    # SEC-10: neither the auth_req_id, its hash nor the client_notification_token leave the server.
    from django_ciba.testing import create_ciba_client, start_request

    ping, secret = create_ciba_client("Ping", mode="ping", notification_endpoint="https://rp.example.com/cb")
    auth_req_id, auth_request = start_request(
        client,
        ping,
        secret,
        scope="openid",
        login_hint="alice",
        client_notification_token=NOTIFICATION_TOKEN,
        binding_message="A1B2",
    )
    assert auth_request.get_client_notification_token() == NOTIFICATION_TOKEN
    client.force_login(user)
    responses = [
        client.get(LIST_URL),
        client.get(detail_url(auth_request.pk)),
        client.post(approve_url(auth_request.pk), {"scope": "openid"}, content_type="application/json"),
        client.post(deny_url(auth_request.pk)),  # 409 error body
    ]
    for response in responses:
        text = response.content.decode()
        for secret_value in (auth_req_id, auth_request.auth_req_id_hash, NOTIFICATION_TOKEN):
            assert secret_value not in text
        body = json.loads(text)
        items = body if isinstance(body, list) else [body]
        for item in items:
            assert not {"client_notification_token", "auth_req_id_hash", "auth_req_id"} & set(item)
