"""The token endpoint with the CIBA grant (TOK-01..TOK-13), and the tokens it issues inside DOT."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace
from urllib.parse import urlencode

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from oauth2_provider.generators import generate_client_secret
from oauth2_provider.models import AccessToken, RefreshToken, get_application_model

from django_ciba import lifecycle, signals
from django_ciba.approval import decisions
from django_ciba.core.constants import CIBA_GRANT_TYPE
from django_ciba.models import AuthenticationRequest, CibaClient
from django_ciba.testing import FORM, basic_auth, bc_authorize, create_ciba_client, poll
from django_ciba.tokens import polling
from tests.unit.auth_requests import start


TOKEN_URL = "/o/token/"
HTTPS_ENDPOINT = "https://rp.example.com/cb"


# --------------------------------------------------------------------------------------------
# helpers


def post_token(http, data, authorization=None, **extra):
    headers = {"HTTP_AUTHORIZATION": authorization} if authorization else {}
    body = data if isinstance(data, str) else urlencode(data)
    return http.post(TOKEN_URL, data=body, content_type=FORM, **headers, **extra)


def assert_error(response, error, status=400):
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["error"] == error


@pytest.fixture
def app_secret(poll_client):
    return poll_client


def approve(auth_request, user, **kwargs):
    return decisions.approve(auth_request, user=user, **kwargs)


def create_plain_application(name="No CIBA", client_type=None):
    Application = get_application_model()
    secret = generate_client_secret()
    app = Application.objects.create(
        name=name,
        client_type=client_type or Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_CLIENT_CREDENTIALS,
        client_secret=secret,
        algorithm="RS256",
    )
    return app, secret


# --------------------------------------------------------------------------------------------
# TOK-01: auth_req_id is required; TOK-02: client authentication


def grant(auth_req_id=None, **fields):
    """A CIBA grant body (without auth_req_id when it is None)."""
    body = {"grant_type": CIBA_GRANT_TYPE, **fields}
    return body if auth_req_id is None else {**body, "auth_req_id": auth_req_id}


# Each row builds (body, Authorization header or None) from the poll client (app, secret) and the
# auth_req_id of a pending request of that client; then the error and the status.
REFUSED_TOKEN_REQUESTS = [
    pytest.param(
        lambda app, secret, rid: (grant(), basic_auth(app.client_id, secret)),
        "invalid_request",
        400,
        id="TOK-01-missing-auth-req-id",
    ),
    pytest.param(
        lambda app, secret, rid: (grant(""), basic_auth(app.client_id, secret)),
        "invalid_request",
        400,
        id="TOK-01-empty-auth-req-id",
    ),
    pytest.param(
        lambda app, secret, rid: (grant(rid), basic_auth(app.client_id, "not-the-secret")),
        "invalid_client",
        401,
        id="TOK-02-wrong-secret",
    ),
    pytest.param(
        lambda app, secret, rid: (grant(rid), None),
        "invalid_client",
        401,
        id="TOK-02-no-client-authentication",
    ),
    # TOK-02: naming the client without a secret is no authentication for a confidential client.
    pytest.param(
        lambda app, secret, rid: (grant(rid, client_id=app.client_id), None),
        "invalid_client",
        401,
        id="TOK-02-client-id-only-in-body",
    ),
    pytest.param(
        lambda app, secret, rid: (grant(rid), basic_auth("no-such-client", secret)),
        "invalid_client",
        401,
        id="TOK-02-unknown-client-id",
    ),
    # TOK-02 / REG-07: a client_secret_basic client must not authenticate with client_secret_post.
    pytest.param(
        lambda app, secret, rid: (grant(rid, client_id=app.client_id, client_secret=secret), None),
        "invalid_client",
        401,
        id="TOK-02-REG-07-unregistered-auth-method",
    ),
]


@pytest.mark.django_db
@pytest.mark.parametrize("attempt, error, status", REFUSED_TOKEN_REQUESTS)
def test_refused_token_request(client, user, app_secret, attempt, error, status):
    app, secret = app_secret
    auth_req_id, _ = start(client, app, secret)
    body, authorization = attempt(app, secret, auth_req_id)
    assert_error(post_token(client, body, authorization), error, status)


@pytest.mark.django_db
def test_client_secret_post_client_authenticates_in_body(client, user):
    # TOK-02: the registered method (client_secret_post) works at the token endpoint.
    app, secret = create_ciba_client("Post client", auth_method="client_secret_post")
    response = client.post(
        "/o/bc-authorize",
        data=urlencode(
            {"scope": "openid", "login_hint": "alice", "client_id": app.client_id, "client_secret": secret}
        ),
        content_type=FORM,
    )
    assert response.status_code == 200, response.content
    body = {
        "grant_type": CIBA_GRANT_TYPE,
        "auth_req_id": response.json()["auth_req_id"],
        "client_id": app.client_id,
        "client_secret": secret,
    }
    assert_error(post_token(client, body), "authorization_pending")
    # ... and basic auth is refused for it (REG-07).
    basic = {"grant_type": CIBA_GRANT_TYPE, "auth_req_id": body["auth_req_id"]}
    assert_error(post_token(client, basic, basic_auth(app.client_id, secret)), "invalid_client", 401)


@pytest.mark.django_db
def test_public_client_is_refused(client, user):
    # TOK-02: CIBA requires a confidential client, even one holding a secret.
    Application = get_application_model()
    app, secret = create_plain_application("Public", Application.CLIENT_PUBLIC)
    CibaClient.objects.create(application=app)
    response = post_token(
        client, {"grant_type": CIBA_GRANT_TYPE, "auth_req_id": "x" * 43}, basic_auth(app.client_id, secret)
    )
    assert_error(response, "invalid_client", 401)


@pytest.mark.django_db
@pytest.mark.parametrize("registered_method", ["client_secret_basic", "client_secret_post", ""])
def test_basic_and_post_credentials_together_are_refused(client, user, app_secret, registered_method):
    # TOK-02 (RFC 6749 §2.3): one authentication method per request, also when any method is accepted.
    app, secret = app_secret
    auth_req_id, _ = start(client, app, secret)
    data = {
        "grant_type": CIBA_GRANT_TYPE,
        "auth_req_id": auth_req_id,
        "client_id": app.client_id,
        "client_secret": secret,
    }
    CibaClient.objects.filter(application=app).update(token_endpoint_auth_method=registered_method)
    response = post_token(client, data, basic_auth(app.client_id, secret))
    assert_error(response, "invalid_client", 401)


@pytest.mark.django_db
def test_any_method_registration_accepts_basic_or_post(client, user, app_secret):
    # TOK-02: an empty token_endpoint_auth_method accepts each of DOT's methods on its own.
    app, secret = app_secret
    auth_req_id, _ = start(client, app, secret)
    CibaClient.objects.filter(application=app).update(token_endpoint_auth_method="")
    assert_error(poll(client, app, secret, auth_req_id), "authorization_pending")
    data = {
        "grant_type": CIBA_GRANT_TYPE,
        "auth_req_id": auth_req_id,
        "client_id": app.client_id,
        "client_secret": secret,
    }
    assert_error(post_token(client, data), "slow_down")


# --------------------------------------------------------------------------------------------
# TOK-03: the auth_req_id must exist and belong to the authenticated client


@pytest.mark.django_db
def test_unknown_auth_req_id_is_invalid_grant(client, user, app_secret):
    # TOK-03
    app, secret = app_secret
    start(client, app, secret)
    assert_error(poll(client, app, secret, "this-auth-req-id-does-not-exist"), "invalid_grant")


@pytest.mark.django_db
def test_another_clients_auth_req_id_is_invalid_grant(client, user, app_secret):
    # TOK-03 / SEC-02: the id is bound to the client that obtained it.
    app, secret = app_secret
    other, other_secret = create_ciba_client("Other client")
    auth_req_id, auth_request = start(client, app, secret)
    assert_error(poll(client, other, other_secret, auth_req_id), "invalid_grant")
    # Still invalid_grant once approved, and no token is minted for the other client.
    approve(auth_request, user)
    assert_error(poll(client, other, other_secret, auth_req_id), "invalid_grant")
    assert not AccessToken.objects.filter(application=other).exists()
    # The other client's polls did not count against the owner: its first poll succeeds.
    response = poll(client, app, secret, auth_req_id)
    assert response.status_code == 200, response.content


# --------------------------------------------------------------------------------------------
# TOK-04 / TOK-05: grant eligibility


@pytest.mark.django_db
def test_application_without_ciba_client_is_unauthorized_client(client, user):
    # TOK-04
    app, secret = create_plain_application()
    response = post_token(
        client, {"grant_type": CIBA_GRANT_TYPE, "auth_req_id": "x" * 43}, basic_auth(app.client_id, secret)
    )
    assert_error(response, "unauthorized_client")


@pytest.mark.django_db
def test_disabled_ciba_client_is_unauthorized_client(client, user, app_secret):
    # TOK-04: a disabled registration no longer allows the grant, even for a live request.
    app, secret = app_secret
    auth_req_id, auth_request = start(client, app, secret)
    approve(auth_request, user)
    CibaClient.objects.filter(application=app).update(enabled=False)
    assert_error(poll(client, app, secret, auth_req_id), "unauthorized_client")
    auth_request.refresh_from_db()
    assert auth_request.status == AuthenticationRequest.Status.APPROVED


@pytest.mark.django_db
def test_push_client_is_unauthorized_client(client, user):
    # TOK-05: push clients receive tokens by callback and never poll.
    app, secret = create_ciba_client("Push", mode="push", notification_endpoint=HTTPS_ENDPOINT)
    auth_req_id, auth_request = start(client, app, secret, client_notification_token="n" * 40)
    assert_error(poll(client, app, secret, auth_req_id), "unauthorized_client")
    approve(auth_request, user)
    assert_error(poll(client, app, secret, auth_req_id), "unauthorized_client")
    assert not AccessToken.objects.exists()


# --------------------------------------------------------------------------------------------
# TOK-06: pending


@pytest.mark.django_db
def test_pending_request_is_authorization_pending(client, user, app_secret):
    # TOK-06
    app, secret = app_secret
    auth_req_id, _ = start(client, app, secret)
    response = poll(client, app, secret, auth_req_id)
    assert_error(response, "authorization_pending")
    assert response["Cache-Control"] == "no-store"


@pytest.mark.django_db
def test_pending_poll_query_budget(client, user, app_secret, django_assert_num_queries):
    # TOK-06: a pending poll is cheap: the client joined with its CIBA registration, then
    # the request (with its user): exactly 2 queries, no writes (next test).
    app, secret = app_secret
    auth_req_id, _ = start(client, app, secret)
    with django_assert_num_queries(2):
        response = poll(client, app, secret, auth_req_id)
    assert_error(response, "authorization_pending")


@pytest.mark.django_db
def test_pending_poll_reads_narrow_rows(client, user, app_secret):
    # The pending poll's request lookup joins nothing and reads only what a poll decision
    # needs (the whole row and the user are loaded once the request is known to be approved).
    app, secret = app_secret
    auth_req_id, _ = start(client, app, secret)
    with CaptureQueriesContext(connection) as queries:
        assert_error(poll(client, app, secret, auth_req_id), "authorization_pending")
    [lookup] = [q["sql"] for q in queries.captured_queries if "django_ciba_authenticationrequest" in q["sql"]]
    assert "JOIN" not in lookup.upper()
    assert "binding_message" not in lookup and "auth_user" not in lookup


@pytest.mark.django_db
def test_bc_authorize_query_budget(client, user, app_secret, django_assert_max_num_queries):
    # bc-authorize loads the client (with its CIBA registration) and the hinted user, then
    # stores the request, its device notification and its audit row in one transaction
    # (2 savepoint statements). The abuse controls add one query (the user's pending
    # requests and reports against the client) and one for the pre-authorization policy. The
    # superseding of this client's oldest waiting requests for the user (SEC-07) adds one lookup
    # inside the transaction.
    app, secret = app_secret
    with django_assert_max_num_queries(10):
        response = bc_authorize(client, app, secret, scope="openid", login_hint="alice")
    assert response.status_code == 200


@pytest.mark.django_db
def test_an_unknown_client_id_is_still_refused(client, user, app_secret):
    # The joined client lookup falls back to DOT's own for unknown ids (TOK-02).
    app, secret = app_secret
    auth_req_id, _ = start(client, app, secret)
    response = client.post(
        "/o/token/",
        data=f"grant_type={CIBA_GRANT_TYPE}&auth_req_id={auth_req_id}",
        content_type="application/x-www-form-urlencoded",
        HTTP_AUTHORIZATION=basic_auth("no-such-client", secret),
    )
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"


@pytest.mark.django_db
def test_pending_and_slow_down_polls_write_nothing_to_the_database(client, user, app_secret):
    # TOK-06 / TOK-07: polling bookkeeping lives in the cache; no INSERT/UPDATE/DELETE per poll.
    app, secret = app_secret
    auth_req_id, auth_request = start(client, app, secret)
    with CaptureQueriesContext(connection) as queries:
        assert_error(poll(client, app, secret, auth_req_id), "authorization_pending")
        assert_error(poll(client, app, secret, auth_req_id), "slow_down")
    assert len(queries.captured_queries) > 0
    writes = [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE"))
    ]
    assert writes == []
    before = auth_request.updated_at
    auth_request.refresh_from_db()
    assert auth_request.updated_at == before


# --------------------------------------------------------------------------------------------
# TOK-07: slow_down and the growing interval


@pytest.mark.django_db
def test_polling_faster_than_interval_is_slow_down(client, user, app_secret, poll_clock):
    # TOK-07
    app, secret = app_secret
    auth_req_id, auth_request = start(client, app, secret)
    assert auth_request.interval == 5
    assert_error(poll(client, app, secret, auth_req_id), "authorization_pending")
    poll_clock.advance(1)
    assert_error(poll(client, app, secret, auth_req_id), "slow_down")


@pytest.mark.django_db
def test_slow_down_grows_the_interval_by_the_increment(client, user, app_secret, poll_clock):
    # TOK-07: each slow_down adds SLOW_DOWN_INCREMENT (5 by default) to this request's interval.
    app, secret = app_secret
    auth_req_id, auth_request = start(client, app, secret)
    assert polling.current_interval(auth_request) == 5
    poll(client, app, secret, auth_req_id)
    poll_clock.advance(1)
    assert_error(poll(client, app, secret, auth_req_id), "slow_down")
    assert polling.current_interval(auth_request) == 10
    # The database row is untouched; only the cache holds the larger interval.
    auth_request.refresh_from_db()
    assert auth_request.interval == 5


@pytest.mark.django_db
def test_slow_down_increment_setting_is_used(client, user, app_secret, poll_clock, ciba_settings):
    # TOK-07: SLOW_DOWN_INCREMENT is configurable.
    ciba_settings.set(SLOW_DOWN_INCREMENT=7)
    app, secret = app_secret
    auth_req_id, auth_request = start(client, app, secret)
    poll(client, app, secret, auth_req_id)
    poll_clock.advance(1)
    assert_error(poll(client, app, secret, auth_req_id), "slow_down")
    assert polling.current_interval(auth_request) == 12


@pytest.mark.django_db
def test_grown_interval_is_enforced(client, user, app_secret, poll_clock):
    # TOK-07: after slow_down the larger interval applies; waiting only the old interval is too fast.
    app, secret = app_secret
    auth_req_id, auth_request = start(client, app, secret)
    assert_error(poll(client, app, secret, auth_req_id), "authorization_pending")  # t=0
    poll_clock.advance(1)
    assert_error(poll(client, app, secret, auth_req_id), "slow_down")  # t=1, interval 5 -> 10
    poll_clock.advance(5)
    # t=6: after the old interval (5) but before the new one (10) -> still slow_down.
    assert_error(poll(client, app, secret, auth_req_id), "slow_down")
    assert polling.current_interval(auth_request) == 15


@pytest.mark.django_db
def test_poll_after_grown_interval_is_pending_again(client, user, app_secret, poll_clock):
    # TOK-07: a client that adds the increment after slow_down recovers.
    app, secret = app_secret
    auth_req_id, auth_request = start(client, app, secret)
    assert_error(poll(client, app, secret, auth_req_id), "authorization_pending")  # t=0
    poll_clock.advance(1)
    assert_error(poll(client, app, secret, auth_req_id), "slow_down")  # t=1, interval -> 10
    poll_clock.advance(10)
    assert_error(poll(client, app, secret, auth_req_id), "authorization_pending")  # t=11
    # It keeps working at the new cadence, and the interval does not grow any further.
    for _ in range(3):
        poll_clock.advance(10)
        assert_error(poll(client, app, secret, auth_req_id), "authorization_pending")
    assert polling.current_interval(auth_request) == 10


@pytest.mark.django_db
def test_repeated_slow_downs_recover_when_client_follows_the_spec(client, user, app_secret, poll_clock):
    # TOK-07: the client adds 5 s after each slow_down, measured from its own last request.
    app, secret = app_secret
    auth_req_id, _ = start(client, app, secret)
    assert_error(poll(client, app, secret, auth_req_id), "authorization_pending")  # t=0
    poll_clock.advance(1)
    assert_error(poll(client, app, secret, auth_req_id), "slow_down")  # t=1; client: 10
    poll_clock.advance(5)
    assert_error(poll(client, app, secret, auth_req_id), "slow_down")  # t=6 (too early); client: 15
    poll_clock.advance(15)
    assert_error(poll(client, app, secret, auth_req_id), "authorization_pending")  # t=21


@pytest.mark.django_db
def test_fixed_cadence_poller_at_the_interval_is_never_slowed_down(client, user, app_secret, poll_clock):
    # TOK-07: a compliant client polling exactly every `interval` seconds is never stuck.
    app, secret = app_secret
    auth_req_id, auth_request = start(client, app, secret)
    for _ in range(12):
        assert_error(poll(client, app, secret, auth_req_id), "authorization_pending")
        poll_clock.advance(auth_request.interval)
    assert polling.current_interval(auth_request) == 5


@pytest.mark.django_db
def test_fixed_cadence_poller_with_small_jitter_is_tolerated(client, user, app_secret, poll_clock):
    # TOK-07: polls within SLOW_DOWN_TOLERANCE (1 s) of the interval count as compliant (network jitter).
    app, secret = app_secret
    auth_req_id, auth_request = start(client, app, secret)
    for step in (4.5, 5.2, 4.2, 5.0, 4.8):
        assert_error(poll(client, app, secret, auth_req_id), "authorization_pending")
        poll_clock.advance(step)
    assert_error(poll(client, app, secret, auth_req_id), "authorization_pending")
    assert polling.current_interval(auth_request) == 5


@pytest.mark.django_db
def test_approved_request_is_issued_even_right_after_a_poll(client, user, app_secret, poll_clock):
    # TOK-07 applies to pending requests only: once approved, the next poll gets the tokens.
    app, secret = app_secret
    auth_req_id, auth_request = start(client, app, secret)
    assert_error(poll(client, app, secret, auth_req_id), "authorization_pending")
    approve(auth_request, user)
    response = poll(client, app, secret, auth_req_id)
    assert response.status_code == 200, response.content


@pytest.mark.django_db
def test_slow_down_state_is_per_request(client, user, app_secret, poll_clock):
    # TOK-07: one request's slow_down does not affect another request of the same client.
    app, secret = app_secret
    first, _ = start(client, app, secret)
    second, _ = start(client, app, secret)
    poll(client, app, secret, first)
    assert_error(poll(client, app, secret, first), "slow_down")
    assert_error(poll(client, app, secret, second), "authorization_pending")


# --------------------------------------------------------------------------------------------
# TOK-09 / TOK-10: expired and denied


@pytest.mark.django_db
def test_expired_pending_request_is_expired_token(client, user, app_secret):
    # TOK-09
    app, secret = app_secret
    auth_req_id, auth_request = start(client, app, secret)
    AuthenticationRequest.objects.filter(pk=auth_request.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert_error(poll(client, app, secret, auth_req_id), "expired_token")


@pytest.mark.django_db
def test_expiry_is_checked_at_poll_time(client, user, app_secret, poll_clock):
    # TOK-09: the poll's own poll_clock decides; no cleanup job is needed.
    app, secret = app_secret
    auth_req_id, auth_request = start(client, app, secret, requested_expiry="30")
    assert_error(poll(client, app, secret, auth_req_id), "authorization_pending")
    poll_clock.current = auth_request.expires_at
    assert_error(poll(client, app, secret, auth_req_id), "expired_token")


@pytest.mark.django_db
def test_approved_but_expired_request_is_expired_token(client, user, app_secret):
    # TOK-09: approval does not extend the lifetime; no tokens after expiry.
    app, secret = app_secret
    auth_req_id, auth_request = start(client, app, secret)
    approve(auth_request, user)
    AuthenticationRequest.objects.filter(pk=auth_request.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert_error(poll(client, app, secret, auth_req_id), "expired_token")
    assert not AccessToken.objects.exists()


@pytest.mark.django_db
def test_operator_expired_request_is_expired_token(client, user, app_secret):
    # TOK-09 / AD-03: an expiry recorded by an operator is reported as expired_token.
    app, secret = app_secret
    auth_req_id, auth_request = start(client, app, secret)
    decisions.expire(auth_request)
    assert_error(poll(client, app, secret, auth_req_id), "expired_token")


@pytest.mark.django_db
def test_denied_request_is_access_denied(client, user, app_secret):
    # TOK-10
    app, secret = app_secret
    auth_req_id, auth_request = start(client, app, secret)
    decisions.deny(auth_request, user=user)
    response = poll(client, app, secret, auth_req_id)
    assert_error(response, "access_denied")
    # Still access_denied on the next poll (the outcome is recorded, AD-03).
    assert_error(poll(client, app, secret, auth_req_id), "access_denied")


@pytest.mark.django_db
def test_approved_for_deactivated_user_is_access_denied(client, user, app_secret):
    # TOK-10: no tokens for a user deactivated between approval and redemption.
    app, secret = app_secret
    auth_req_id, auth_request = start(client, app, secret)
    approve(auth_request, user)
    get_user_model().objects.filter(pk=user.pk).update(is_active=False)
    assert_error(poll(client, app, secret, auth_req_id), "access_denied")
    assert not AccessToken.objects.exists()


# --------------------------------------------------------------------------------------------
# TOK-11: the successful token response


@pytest.mark.django_db
def test_success_response_body_and_headers(client, user, app_secret):
    # TOK-11
    app, secret = app_secret
    auth_req_id, auth_request = start(client, app, secret, scope="openid profile")
    approve(auth_request, user)
    response = poll(client, app, secret, auth_req_id)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("application/json")
    assert "no-store" in response["Cache-Control"]
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert isinstance(body["expires_in"], int) and body["expires_in"] > 0
    assert body["access_token"] and body["id_token"].count(".") == 2
    assert set(body["scope"].split()) == {"openid", "profile"}
    assert "refresh_token" not in body  # no offline_access requested
    token = AccessToken.objects.get()
    assert token.user == user and token.application == app
    assert set(token.scope.split()) == {"openid", "profile"}
    auth_request.refresh_from_db()
    assert auth_request.status == AuthenticationRequest.Status.CONSUMED
    assert auth_request.tokens_issued_at is not None


@pytest.mark.django_db
def test_refresh_token_issued_when_offline_access_granted(client, user, app_secret):
    # TOK-11: REFRESH_TOKEN_SCOPE (offline_access by default) controls the refresh token.
    app, secret = app_secret
    auth_req_id, auth_request = start(client, app, secret, scope="openid offline_access")
    approve(auth_request, user)
    body = poll(client, app, secret, auth_req_id).json()
    assert body["refresh_token"]
    assert RefreshToken.objects.filter(application=app, user=user).count() == 1


@pytest.mark.django_db
def test_no_refresh_token_when_user_removed_offline_access(client, user, app_secret):
    # TOK-11 / AD-01: requested but not granted -> no refresh token.
    app, secret = app_secret
    auth_req_id, auth_request = start(client, app, secret, scope="openid offline_access")
    approve(auth_request, user, scopes=["openid"])
    body = poll(client, app, secret, auth_req_id).json()
    assert "refresh_token" not in body
    assert body["scope"] == "openid"
    assert not RefreshToken.objects.exists()


@pytest.mark.django_db
def test_refresh_token_always_issued_when_setting_is_none(client, user, app_secret, ciba_settings):
    # TOK-11: REFRESH_TOKEN_SCOPE=None issues a refresh token every time.
    ciba_settings.set(REFRESH_TOKEN_SCOPE=None)
    app, secret = app_secret
    auth_req_id, auth_request = start(client, app, secret, scope="openid")
    approve(auth_request, user)
    assert poll(client, app, secret, auth_req_id).json()["refresh_token"]


@pytest.mark.django_db
def test_refresh_token_scope_setting_names_the_scope(client, user, app_secret, ciba_settings):
    # TOK-11: another scope can gate refresh tokens.
    ciba_settings.set(REFRESH_TOKEN_SCOPE="payments")
    app, secret = app_secret
    auth_req_id, auth_request = start(client, app, secret, scope="openid offline_access")
    approve(auth_request, user)
    assert "refresh_token" not in poll(client, app, secret, auth_req_id).json()
    auth_req_id, auth_request = start(client, app, secret, scope="openid payments")
    approve(auth_request, user)
    assert poll(client, app, secret, auth_req_id).json()["refresh_token"]


@pytest.mark.django_db
def test_success_query_budget(client, user, app_secret, django_assert_max_num_queries):
    # TOK-11: issuing tokens stays within a bounded number of queries (measured: 19 with a refresh token,
    # savepoints included; 9 of them are DOT's ID token, access and refresh token rows, one reloads
    # the whole request once it is known to be approved, which keeps the pending poll's query narrow,
    # one writes the audit row, and two keep the approval's acr / amr / auth_time for the
    # refresh-token family (IDT-08)).
    app, secret = app_secret
    auth_req_id, auth_request = start(client, app, secret, scope="openid offline_access")
    approve(auth_request, user)
    with django_assert_max_num_queries(19):
        response = poll(client, app, secret, auth_req_id)
    assert response.status_code == 200, response.content


@pytest.mark.django_db
def test_tokens_issued_signal_sent_once_without_secrets(
    client, user, app_secret, django_capture_on_commit_callbacks
):
    # TOK-11 / SEC-10: integrators learn that tokens were issued, with the documented public kwargs only.
    app, secret = app_secret
    auth_req_id, auth_request = start(client, app, secret, scope="openid offline_access")
    approve(auth_request, user)
    calls = []

    def receiver(**kwargs):
        calls.append(kwargs)

    signals.tokens_issued.connect(receiver)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            body = poll(client, app, secret, auth_req_id).json()
            assert_error(poll(client, app, secret, auth_req_id), "invalid_grant")  # no second signal
    finally:
        signals.tokens_issued.disconnect(receiver)
    assert len(calls) == 1
    assert set(calls[0]) == {"signal", "sender", "auth_request_pk", "client_id", "user_pk", "delivery_mode"}
    assert calls[0]["auth_request_pk"] == auth_request.pk
    assert calls[0]["client_id"] == app.client_id
    assert calls[0]["user_pk"] == user.pk
    for value in (auth_req_id, body["access_token"], body["refresh_token"], body["id_token"]):
        assert value not in repr(calls[0])


# --------------------------------------------------------------------------------------------
# TOK-12: single use; repeated parameters


@pytest.mark.django_db
def test_second_redemption_is_invalid_grant(client, user, app_secret):
    # TOK-12 / SEC-02
    app, secret = app_secret
    auth_req_id, auth_request = start(client, app, secret, scope="openid offline_access")
    approve(auth_request, user)
    assert poll(client, app, secret, auth_req_id).status_code == 200
    assert_error(poll(client, app, secret, auth_req_id), "invalid_grant")
    assert AccessToken.objects.count() == 1
    assert RefreshToken.objects.count() == 1


@pytest.mark.django_db
def test_lost_claim_race_is_invalid_grant_and_mints_nothing(client, user, app_secret, monkeypatch):
    # TOK-12: if another poll spent the request between validation and the claim, nothing is minted.
    app, secret = app_secret
    auth_req_id, auth_request = start(client, app, secret)
    approve(auth_request, user)
    from django_ciba.validators import CibaValidatorMixin

    original = CibaValidatorMixin.validate_ciba_auth_req_id

    def validate_then_spend(self, client_, auth_req_id_, request):
        status = original(self, client_, auth_req_id_, request)
        lifecycle.issue_tokens(auth_request, now=timezone.now())
        return status

    monkeypatch.setattr(CibaValidatorMixin, "validate_ciba_auth_req_id", validate_then_spend)
    assert_error(poll(client, app, secret, auth_req_id), "invalid_grant")
    assert not AccessToken.objects.exists()


@pytest.mark.django_db
def test_repeated_auth_req_id_parameter_is_invalid_request(client, user, app_secret):
    # TOK-12 / RFC 6749 §3.2: a parameter must not be repeated.
    app, secret = app_secret
    auth_req_id, auth_request = start(client, app, secret)
    approve(auth_request, user)
    body = urlencode([("grant_type", CIBA_GRANT_TYPE), ("auth_req_id", auth_req_id), ("auth_req_id", "x")])
    response = post_token(client, body, basic_auth(app.client_id, secret))
    assert_error(response, "invalid_request")
    # The same id twice is also a repetition, and it spends nothing.
    body = urlencode(
        [("grant_type", CIBA_GRANT_TYPE), ("auth_req_id", auth_req_id), ("auth_req_id", auth_req_id)]
    )
    assert_error(post_token(client, body, basic_auth(app.client_id, secret)), "invalid_request")
    assert poll(client, app, secret, auth_req_id).status_code == 200


# --------------------------------------------------------------------------------------------
# TOK-13: ping clients may poll


@pytest.mark.django_db
def test_ping_client_can_poll(client, user):
    # TOK-13: pending, slow_down and success, like a poll client.
    app, secret = create_ciba_client("Ping", mode="ping", notification_endpoint=HTTPS_ENDPOINT)
    auth_req_id, auth_request = start(client, app, secret, client_notification_token="t" * 40)
    assert_error(poll(client, app, secret, auth_req_id), "authorization_pending")
    assert_error(poll(client, app, secret, auth_req_id), "slow_down")
    approve(auth_request, user)
    response = poll(client, app, secret, auth_req_id)
    assert response.status_code == 200, response.content
    assert response.json()["id_token"]


@pytest.mark.django_db
def test_ping_client_denied_is_access_denied(client, user):
    # TOK-13 / TOK-10
    app, secret = create_ciba_client("Ping", mode="ping", notification_endpoint=HTTPS_ENDPOINT)
    auth_req_id, auth_request = start(client, app, secret, client_notification_token="t" * 40)
    decisions.deny(auth_request, user=user)
    assert_error(poll(client, app, secret, auth_req_id), "access_denied")


# --------------------------------------------------------------------------------------------
# The issued tokens inside DOT (IDT-08): introspection, revocation, userinfo, refresh


@pytest.fixture
def issued(client, user, app_secret):
    app, secret = app_secret
    auth_req_id, auth_request = start(client, app, secret, scope="openid profile offline_access")
    approve(auth_request, user)
    response = poll(client, app, secret, auth_req_id)
    assert response.status_code == 200, response.content
    return SimpleNamespace(app=app, secret=secret, body=response.json())


def introspect(http, issued, token):
    return http.post(
        "/o/introspect/",
        data=urlencode({"token": token}),
        content_type=FORM,
        HTTP_AUTHORIZATION=basic_auth(issued.app.client_id, issued.secret),
    )


@pytest.mark.django_db
def test_access_token_introspects_as_active(client, user, issued):
    # TOK-11: the CIBA access token is a regular DOT token (RFC 7662 introspection).
    response = introspect(client, issued, issued.body["access_token"])
    assert response.status_code == 200, response.content
    data = response.json()
    assert data["active"] is True
    assert data["client_id"] == issued.app.client_id
    assert data["username"] == user.get_username()
    assert set(data["scope"].split()) == {"openid", "profile", "offline_access"}


@pytest.mark.django_db
def test_revoked_access_token_is_inactive_and_refused_by_userinfo(client, user, issued):
    # TOK-11: revocation (RFC 7009) works on CIBA tokens.
    response = client.post(
        "/o/revoke_token/",
        data=urlencode({"token": issued.body["access_token"], "token_type_hint": "access_token"}),
        content_type=FORM,
        HTTP_AUTHORIZATION=basic_auth(issued.app.client_id, issued.secret),
    )
    assert response.status_code == 200, response.content
    assert introspect(client, issued, issued.body["access_token"]).json()["active"] is False
    userinfo = client.get("/o/userinfo/", HTTP_AUTHORIZATION=f"Bearer {issued.body['access_token']}")
    assert userinfo.status_code == 401


@pytest.mark.django_db
def test_userinfo_accepts_the_access_token(client, user, issued):
    # TOK-11 / IDT-01: userinfo answers for the approving user.
    response = client.get("/o/userinfo/", HTTP_AUTHORIZATION=f"Bearer {issued.body['access_token']}")
    assert response.status_code == 200, response.content
    assert response.json()["sub"] == str(user.pk)


@pytest.mark.django_db
def test_refresh_grant_returns_new_tokens_and_id_token(client, user, issued):
    # IDT-08: the CIBA refresh token works with DOT's refresh grant and yields a new ID token.
    response = post_token(
        client,
        {"grant_type": "refresh_token", "refresh_token": issued.body["refresh_token"]},
        basic_auth(issued.app.client_id, issued.secret),
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["access_token"] != issued.body["access_token"]
    assert body["id_token"] and body["id_token"] != issued.body["id_token"]
    assert body["refresh_token"]


@pytest.mark.django_db
def test_refresh_token_of_another_client_is_invalid_grant(client, user, issued):
    # IDT-07: the refresh token is bound to the client it was issued to.
    other, other_secret = create_ciba_client("Other")
    response = post_token(
        client,
        {"grant_type": "refresh_token", "refresh_token": issued.body["refresh_token"]},
        basic_auth(other.client_id, other_secret),
    )
    assert_error(response, "invalid_grant")


@pytest.mark.django_db
def test_ciba_only_client_is_refused_client_credentials(client, user):
    # TOK-04 / dot-integration §6.3: ciba_only refuses client_credentials ...
    app, secret = create_ciba_client("CIBA only", ciba_only=True)
    response = post_token(client, {"grant_type": "client_credentials"}, basic_auth(app.client_id, secret))
    assert_error(response, "unauthorized_client")
    assert not AccessToken.objects.exists()


@pytest.mark.django_db
def test_ciba_only_client_may_refresh(client, user):
    # ... but still allows refresh_token (IDT-08).
    app, secret = create_ciba_client("CIBA only", ciba_only=True)
    auth_req_id, auth_request = start(client, app, secret, scope="openid offline_access")
    approve(auth_request, user)
    refresh_token = poll(client, app, secret, auth_req_id).json()["refresh_token"]
    response = post_token(
        client,
        {"grant_type": "refresh_token", "refresh_token": refresh_token},
        basic_auth(app.client_id, secret),
    )
    assert response.status_code == 200, response.content
    assert response.json()["id_token"]


@pytest.mark.django_db
def test_non_ciba_only_client_keeps_client_credentials(client, user, app_secret):
    # TOK-04 counterpart: without ciba_only the client's DOT grant is unaffected.
    app, secret = app_secret
    response = post_token(client, {"grant_type": "client_credentials"}, basic_auth(app.client_id, secret))
    assert response.status_code == 200, response.content
    assert response.json()["access_token"]
