"""A client cancels its own request: ``POST /o/bc-authorize/cancel`` (lifecycle.cancel).

The client authenticates exactly as at bc-authorize (client_secret_basic, client_secret_post,
private_key_jwt, mTLS); an unknown auth_req_id and another client's get the same answer.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest
from django.contrib.auth import get_user_model
from oauth2_provider.models import AccessToken

from django_ciba import signals
from django_ciba.approval import decisions
from django_ciba.core.identifiers import hash_auth_req_id, new_auth_req_id
from django_ciba.models import AuthenticationRequest, AuthMethod, Delivery, RequestEvent
from django_ciba.testing import (
    FORM,
    basic_auth,
    client_assertion,
    create_auth_request,
    create_ciba_client,
    make_client_key,
    poll,
)
from tests.unit.auth_requests import start
from tests.unit.tls_certificates import make_certificate, mtls_settings, proxy_meta


pytestmark = pytest.mark.django_db

Status = AuthenticationRequest.Status
URL = "/o/bc-authorize/cancel"
ENDPOINT = "https://rp.example.com/cb"
KEY, JWK = make_client_key("PS256", kid="cancel-key")


def cancel(http: Any, app: Any, secret: str | None, auth_req_id: str | None, **extra: Any) -> Any:
    form = {"note": "no auth_req_id"} if auth_req_id is None else {"auth_req_id": auth_req_id}
    headers = {"HTTP_AUTHORIZATION": basic_auth(app.client_id, secret)} if secret else {}
    return http.post(URL, data=urlencode(form), content_type=FORM, **headers, **extra)


def assert_cancelled(response: Any) -> None:
    assert response.status_code == 200, response.content
    assert response.json() == {"status": "cancelled"}
    assert response["Cache-Control"] == "no-store"


def assert_error(response: Any, error: str, status: int = 400) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert body["error"] == error
    return body


def row(auth_request) -> AuthenticationRequest:
    return AuthenticationRequest.objects.get(pk=auth_request.pk)


@pytest.fixture
def cancelled_signals():
    calls: list[dict] = []

    def receiver(**kwargs):
        calls.append(kwargs)

    signals.auth_request_cancelled.connect(receiver, weak=False, dispatch_uid="test-cancel")
    yield calls
    signals.auth_request_cancelled.disconnect(dispatch_uid="test-cancel")


def test_the_client_cancels_its_pending_request(client, poll_client, user, cancelled_signals):
    app, secret = poll_client
    auth_req_id, auth_request = start(client, app, secret)
    device = Delivery.objects.get(auth_request=auth_request, kind=Delivery.Kind.DEVICE)

    assert_cancelled(cancel(client, app, secret, auth_req_id))

    done = row(auth_request)
    assert done.status == Status.CANCELLED and done.cancelled_at is not None
    device.refresh_from_db()  # not sent yet (no commit in this test): never sent now
    assert device.status == Delivery.Status.CANCELLED
    assert device.last_error == "The client cancelled the request."
    event = RequestEvent.objects.get(auth_request=auth_request, event="cancelled")
    assert event.actor == f"client:{app.client_id}"
    assert cancelled_signals == []  # sent only once the transaction commits (next test)


def test_the_signal_is_sent_once_committed(
    client, poll_client, user, cancelled_signals, django_capture_on_commit_callbacks
):
    app, secret = poll_client
    auth_req_id, auth_request = start(client, app, secret)
    with django_capture_on_commit_callbacks(execute=True):
        assert_cancelled(cancel(client, app, secret, auth_req_id))
    assert len(cancelled_signals) == 1
    call = cancelled_signals[0]
    assert call["auth_request_pk"] == auth_request.pk and call["client_id"] == app.client_id
    assert set(call) == {"signal", "sender", "auth_request_pk", "client_id", "user_pk", "delivery_mode"}
    assert auth_req_id not in repr(call)


def test_cancelling_twice_succeeds_twice(client, poll_client, user):
    app, secret = poll_client
    auth_req_id, auth_request = start(client, app, secret)
    assert_cancelled(cancel(client, app, secret, auth_req_id))
    first = row(auth_request).cancelled_at
    assert_cancelled(cancel(client, app, secret, auth_req_id))
    assert row(auth_request).cancelled_at == first
    assert RequestEvent.objects.filter(auth_request=auth_request, event="cancelled").count() == 1


def test_another_clients_request_and_an_unknown_one_get_the_same_answer(client, poll_client, user):
    app, secret = poll_client
    auth_req_id, auth_request = start(client, app, secret)
    other, other_secret = create_ciba_client("Other RP")

    theirs = assert_error(cancel(client, other, other_secret, auth_req_id), "invalid_grant")
    unknown = assert_error(cancel(client, other, other_secret, new_auth_req_id()), "invalid_grant")
    assert theirs == unknown
    assert row(auth_request).status == Status.PENDING


@pytest.mark.parametrize(
    "auth_req_id",
    ["x" * 100_000, "\u202e\U0001f600<script>", "' OR 1=1 --", "%00", " "],
    ids=["huge", "unicode", "sql", "percent", "space"],
)
def test_malformed_auth_req_ids_are_invalid_grant_never_a_500(client, poll_client, auth_req_id):
    app, secret = poll_client
    assert_error(cancel(client, app, secret, auth_req_id), "invalid_grant")


def test_missing_auth_req_id_is_invalid_request(client, poll_client):
    app, secret = poll_client
    body = assert_error(cancel(client, app, secret, None), "invalid_request")
    assert "auth_req_id" in body["error_description"]


def test_repeated_auth_req_id_and_wrong_content_type_are_invalid_request(client, poll_client, user):
    app, secret = poll_client
    auth_req_id, _ = start(client, app, secret)
    headers = {"HTTP_AUTHORIZATION": basic_auth(app.client_id, secret)}
    twice = f"auth_req_id={auth_req_id}&auth_req_id={auth_req_id}"
    assert_error(client.post(URL, data=twice, content_type=FORM, **headers), "invalid_request")
    as_json = client.post(URL, data={"auth_req_id": auth_req_id}, content_type="application/json", **headers)
    assert_error(as_json, "invalid_request")
    assert_error(client.get(URL, **headers), "invalid_request", status=405)


def test_an_unauthenticated_or_wrongly_authenticated_client_is_invalid_client(client, poll_client, user):
    app, secret = poll_client
    auth_req_id, auth_request = start(client, app, secret)
    assert_error(cancel(client, app, None, auth_req_id), "invalid_client", status=401)
    assert_error(cancel(client, app, "wrong secret", auth_req_id), "invalid_client", status=401)
    assert row(auth_request).status == Status.PENDING


def test_client_secret_post(client, user):
    app, secret = create_ciba_client("Post RP", auth_method=AuthMethod.CLIENT_SECRET_POST)
    auth_request = create_auth_request(
        app, user, auth_req_id_hash=hash_auth_req_id(auth_req_id := new_auth_req_id())
    )
    form = {"client_id": app.client_id, "client_secret": secret, "auth_req_id": auth_req_id}
    assert_cancelled(client.post(URL, data=urlencode(form), content_type=FORM))
    assert row(auth_request).status == Status.CANCELLED


@pytest.mark.parametrize("audience", ["http://testserver/o", "http://testserver/o/bc-authorize/cancel"])
def test_private_key_jwt(client, user, audience):
    app, _ = create_ciba_client("Signing RP", auth_method=AuthMethod.PRIVATE_KEY_JWT, jwks={"keys": [JWK]})
    auth_request = create_auth_request(
        app, user, auth_req_id_hash=hash_auth_req_id(auth_req_id := new_auth_req_id())
    )
    form = {"auth_req_id": auth_req_id, **client_assertion(app, KEY, audience=audience, kid="cancel-key")}
    assert_cancelled(client.post(URL, data=urlencode(form), content_type=FORM))
    assert row(auth_request).status == Status.CANCELLED
    # The same assertion again is a replay: refused.
    assert_error(client.post(URL, data=urlencode(form), content_type=FORM), "invalid_client", status=401)


def test_self_signed_tls_client_auth(client, user):
    key, jwk = make_client_key("ES256", kid="tls-cancel")
    der, _ = make_certificate(key, subject=[])
    app, _ = create_ciba_client(
        "Self-signed RP", auth_method=AuthMethod.SELF_SIGNED_TLS_CLIENT_AUTH, jwks={"keys": [jwk]}
    )
    auth_request = create_auth_request(
        app, user, auth_req_id_hash=hash_auth_req_id(auth_req_id := new_auth_req_id())
    )
    form = {"client_id": app.client_id, "auth_req_id": auth_req_id}
    with mtls_settings():
        assert_error(client.post(URL, data=urlencode(form), content_type=FORM), "invalid_client", status=401)
        response = client.post(URL, data=urlencode(form), content_type=FORM, **proxy_meta(der))
    assert_cancelled(response)
    assert row(auth_request).status == Status.CANCELLED


# --------------------------------------------------------------------------------------------
# after a decision


def test_an_approved_request_whose_tokens_were_not_issued_is_cancelled(client, poll_client, user):
    app, secret = poll_client
    auth_req_id, auth_request = start(client, app, secret)
    decisions.approve(auth_request, user=user)
    assert_cancelled(cancel(client, app, secret, auth_req_id))
    assert row(auth_request).status == Status.CANCELLED
    # The token endpoint then refuses it, and says why.
    body = assert_error(poll(client, app, secret, auth_req_id), "invalid_grant")
    assert body["error_description"] == "The client cancelled the request."
    assert not AccessToken.objects.exists()


def test_the_token_endpoint_refuses_a_cancelled_pending_request(client, poll_client, user):
    app, secret = poll_client
    auth_req_id, auth_request = start(client, app, secret)
    assert_error(poll(client, app, secret, auth_req_id), "authorization_pending")
    assert_cancelled(cancel(client, app, secret, auth_req_id))
    body = assert_error(poll(client, app, secret, auth_req_id), "invalid_grant")
    assert body["error_description"] == "The client cancelled the request."
    # The user can no longer approve it.
    with pytest.raises(decisions.RequestNotPending):
        decisions.approve(row(auth_request), user=user)


def test_after_the_tokens_were_issued_it_cannot_be_cancelled(client, poll_client, user):
    app, secret = poll_client
    auth_req_id, auth_request = start(client, app, secret)
    decisions.approve(auth_request, user=user)
    assert poll(client, app, secret, auth_req_id).status_code == 200
    body = assert_error(cancel(client, app, secret, auth_req_id), "invalid_grant")
    assert body["error_description"] == "Tokens were issued already for the request."
    assert row(auth_request).status == Status.CONSUMED


@pytest.mark.parametrize(
    ("status", "description"),
    [
        (Status.DENIED, "The request was denied already."),
        (Status.EXPIRED, "The request has expired."),
        (Status.FAILED, "The request has failed already."),
    ],
)
def test_a_finished_request_cannot_be_cancelled(client, poll_client, user, status, description):
    app, secret = poll_client
    auth_req_id = new_auth_req_id()
    auth_request = create_auth_request(
        app, user, auth_req_id_hash=hash_auth_req_id(auth_req_id), status=status
    )
    body = assert_error(cancel(client, app, secret, auth_req_id), "invalid_grant")
    assert body["error_description"] == description
    assert row(auth_request).status == status


def test_a_pending_request_past_its_expiry_is_expired_not_cancelled(client, poll_client, user):
    app, secret = poll_client
    auth_req_id = new_auth_req_id()
    auth_request = create_auth_request(
        app, user, auth_req_id_hash=hash_auth_req_id(auth_req_id), expires_in=-1
    )
    body = assert_error(cancel(client, app, secret, auth_req_id), "invalid_grant")
    assert body["error_description"] == "The request has expired."
    assert row(auth_request).status == Status.PENDING  # the expiry task expires it


def test_a_ping_clients_approved_request_loses_its_ping(client, user):
    app, secret = create_ciba_client("Ping RP", mode="ping", notification_endpoint=ENDPOINT)
    auth_req_id, auth_request = start(client, app, secret)
    decisions.approve(auth_request, user=user)
    ping = Delivery.objects.get(auth_request=auth_request, kind=Delivery.Kind.PING)
    assert ping.status == Delivery.Status.PENDING
    assert_cancelled(cancel(client, app, secret, auth_req_id))
    ping.refresh_from_db()
    assert ping.status == Delivery.Status.CANCELLED
    assert not Delivery.objects.filter(auth_request=auth_request, status=Delivery.Status.PENDING).exists()


def test_a_push_clients_approved_request_gets_no_tokens_pushed(client, user):
    app, secret = create_ciba_client("Push RP", mode="push", notification_endpoint=ENDPOINT)
    auth_req_id, auth_request = start(client, app, secret)
    decisions.approve(auth_request, user=user)
    push = Delivery.objects.get(auth_request=auth_request, kind=Delivery.Kind.PUSH_TOKENS)
    assert_cancelled(cancel(client, app, secret, auth_req_id))
    push.refresh_from_db()
    assert push.status == Delivery.Status.CANCELLED and push.payload_sealed == ""
    assert not Delivery.objects.filter(auth_request=auth_request, kind=Delivery.Kind.PUSH_ERROR).exists()


# --------------------------------------------------------------------------------------------
# the user's side, discovery


def test_the_user_no_longer_sees_it_and_its_page_says_cancelled(client, poll_client, user):
    app, secret = poll_client
    auth_req_id, auth_request = start(client, app, secret)
    assert_cancelled(cancel(client, app, secret, auth_req_id))
    client.force_login(user)
    listing = client.get("/o/ciba/device/requests/")
    assert listing.status_code == 200 and auth_request.pk not in [item["id"] for item in listing.json()]
    assert client.get("/o/ciba/requests/").content.count(b"Teller terminal") == 0
    result = client.get(f"/o/ciba/requests/{auth_request.pk}/result/")
    assert result.status_code == 200
    assert b"Request cancelled" in result.content and b"cancelled this request" in result.content
    page = client.get(f"/o/ciba/requests/{auth_request.pk}/", follow=True)
    assert b"Request cancelled" in page.content


def test_discovery_publishes_the_endpoint(client):
    metadata = client.get("/o/.well-known/openid-configuration").json()
    assert metadata["backchannel_authentication_cancel_endpoint"] == "http://testserver/o/bc-authorize/cancel"


def test_the_admin_shows_the_cancelled_status(admin_client, poll_client, user):
    app, _ = poll_client
    auth_request = create_auth_request(app, user, status=Status.CANCELLED)
    page = admin_client.get(f"/admin/django_ciba/authenticationrequest/{auth_request.pk}/change/")
    assert page.status_code == 200 and b"Cancelled by the client" in page.content
    assert get_user_model().objects.filter(pk=user.pk).exists()


def test_a_cancelled_request_is_purged_after_the_retention(client, poll_client, user):
    from datetime import timedelta

    from django.utils import timezone

    from django_ciba.delivery import maintenance

    app, secret = poll_client
    auth_req_id, auth_request = start(client, app, secret)
    assert_cancelled(cancel(client, app, secret, auth_req_id))
    later = timezone.now() + timedelta(seconds=3601)
    assert maintenance.purge_finished(now=later - timedelta(seconds=2), retention=3600) == 0
    assert maintenance.purge_finished(now=later, retention=3600) == 1
    assert not AuthenticationRequest.objects.filter(pk=auth_request.pk).exists()


def test_with_the_hot_path_cache_a_cancelled_request_is_not_answered_pending(
    client, poll_client, user, ciba_settings
):
    from django.core.cache import cache

    from django_ciba.core import hot_path

    ciba_settings.set(HOT_PATH_CACHE=True)
    app, secret = poll_client
    auth_req_id, auth_request = start(client, app, secret)
    key = hot_path.pending_key(auth_request.auth_req_id_hash)
    assert hot_path.entry_from(cache.get(key)) is not None  # polls are answered from the cache
    assert_error(poll(client, app, secret, auth_req_id), "authorization_pending")
    assert_cancelled(cancel(client, app, secret, auth_req_id))
    assert hot_path.entry_from(cache.get(key)) is None  # the entry left with the transition
    body = assert_error(poll(client, app, secret, auth_req_id), "invalid_grant")
    assert body["error_description"] == "The client cancelled the request."
