"""Push mode: token callbacks (PUSH-01..06), error callbacks (PERR-01..04) and their ID tokens.

Outbound HTTP is stubbed (``django_ciba.core.outbound.post_json``). The tests run with real commits
(``transaction=True``) so the outbox is dispatched after commit, as in production; Celery is eager.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta

import jwt
import pytest
from django.conf import settings
from django.utils import timezone
from oauth2_provider.models import AccessToken, IDToken, RefreshToken

from django_ciba import signals
from django_ciba.approval import decisions
from django_ciba.bc_authorize import service as backchannel
from django_ciba.core import outbound
from django_ciba.core.sealing import unseal
from django_ciba.delivery import maintenance
from django_ciba.delivery import worker as delivery
from django_ciba.models import AuthenticationRequest, Delivery
from django_ciba.testing import create_ciba_client, poll
from django_ciba.tokens.grant import CibaGrant
from tests.unit import auth_requests
from tests.unit.auth_requests import NOTIFICATION_TOKEN


pytestmark = pytest.mark.django_db(transaction=True)

Status = AuthenticationRequest.Status
Kind = Delivery.Kind
AUTH_REQ_ID_CLAIM = "urn:openid:params:jwt:claim:auth_req_id"
RT_HASH_CLAIM = "urn:openid:params:jwt:claim:rt_hash"
ISSUER = settings.OAUTH2_PROVIDER["OIDC_ISS_ENDPOINT"]
ENDPOINT = "https://rp.example.com/cb"
SIGNAL_KWARGS = {"signal", "sender", "auth_request_pk", "client_id", "user_pk", "delivery_mode", "kind"}


# --------------------------------------------------------------------------------------------
# helpers and fixtures


@dataclass
class Call:
    url: str
    body: bytes
    headers: dict[str, str]

    @property
    def json(self) -> dict:
        return json.loads(self.body)


class FakePost:
    """Stands in for ``outbound.post_json``: records each call, answers from a queue (default 204)."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.answers: list[outbound.OutboundResponse | Exception] = []

    def __call__(self, url: str, body: bytes, *, headers=None) -> outbound.OutboundResponse:
        assert isinstance(body, bytes)
        self.calls.append(Call(url, body, dict(headers or {})))
        answer = self.answers.pop(0) if self.answers else outbound.OutboundResponse(status=204)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def answer(self, *answers: int | Exception, headers: dict | None = None) -> None:
        for answer in answers:
            if isinstance(answer, int):
                answer = outbound.OutboundResponse(status=answer, headers=headers or {})
            self.answers.append(answer)


@pytest.fixture
def post(monkeypatch):
    fake = FakePost()
    monkeypatch.setattr("django_ciba.core.outbound.post_json", fake)
    return fake


@pytest.fixture
def push_client(db):
    return create_ciba_client("Push RP", mode="push", notification_endpoint=ENDPOINT)


class SignalLog:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict]] = []

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    def of(self, name: str) -> list[dict]:
        return [kwargs for signal_name, kwargs in self.calls if signal_name == name]


ALL_SIGNALS = {name: value for name, value in vars(signals).items() if isinstance(value, signals.Signal)}


@pytest.fixture
def signal_log():
    log = SignalLog()
    receivers = {}
    for name, signal in ALL_SIGNALS.items():

        def receiver(name=name, **kwargs):
            log.calls.append((name, kwargs))

        receivers[name] = receiver
        signal.connect(receiver, weak=False, dispatch_uid=f"test-push-{name}")
    yield log
    for name, signal in ALL_SIGNALS.items():
        signal.disconnect(dispatch_uid=f"test-push-{name}")


def start_acknowledged(http, app, secret, scope="openid"):
    """bc-authorize for alice; the answer is sent (acknowledged) before this returns."""
    auth_req_id, auth_request = auth_requests.start(http, app, secret, scope=scope)
    auth_request.refresh_from_db()
    assert auth_request.acknowledged_at is not None
    return auth_req_id, auth_request


def push_delivery(auth_request, kind=Kind.PUSH_TOKENS) -> Delivery:
    return Delivery.objects.get(auth_request=auth_request, kind=kind)


def make_due(row: Delivery) -> None:
    Delivery.objects.filter(pk=row.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))


def left_half_hash(value: str) -> str:
    digest = hashlib.sha256(value.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[:16]).decode("ascii").rstrip("=")


def verify_id_token(http, id_token: str, audience: str) -> dict:
    """Verify signature (kid from the OP's JWKS), iss, aud, exp and iat with PyJWT."""
    header = jwt.get_unverified_header(id_token)
    response = http.get("/o/.well-known/jwks.json")
    assert response.status_code == 200, response.content
    keys = {key["kid"]: key for key in response.json()["keys"]}
    assert header.get("kid") in keys
    return jwt.decode(
        id_token,
        key=jwt.PyJWK(keys[header["kid"]]).key,
        algorithms=[header["alg"]],
        audience=audience,
        issuer=ISSUER,
        options={"require": ["iss", "sub", "aud", "exp", "iat"]},
    )


def token_rows() -> tuple[int, int, int]:
    return AccessToken.objects.count(), RefreshToken.objects.count(), IDToken.objects.count()


def userinfo(http, access_token: str):
    return http.get("/o/userinfo/", HTTP_AUTHORIZATION=f"Bearer {access_token}")


# --------------------------------------------------------------------------------------------
# PUSH-01 / PUSH-02: the token callback


@pytest.mark.parametrize("scope", ["openid", "openid offline_access"])
def test_push01_02_approval_pushes_one_bearer_post_with_the_token_response(
    client, user, push_client, post, scope
):
    app, secret = push_client
    auth_req_id, auth_request = start_acknowledged(client, app, secret, scope=scope)
    assert post.calls == []  # nothing before the decision
    decisions.approve(auth_request, user=user)

    assert len(post.calls) == 1
    call = post.calls[0]
    assert call.url == ENDPOINT
    assert call.headers == {"Authorization": f"Bearer {NOTIFICATION_TOKEN}"}
    body = call.json
    assert body["auth_req_id"] == auth_req_id
    assert body["access_token"] and isinstance(body["access_token"], str)
    assert body["token_type"] == "Bearer"
    assert isinstance(body["expires_in"], int) and body["expires_in"] > 0
    assert body["id_token"].count(".") == 2
    if "offline_access" in scope:
        assert body["refresh_token"] and body["refresh_token"] != body["access_token"]
    else:
        assert "refresh_token" not in body


def test_push01_callback_waits_for_the_bc_authorize_answer(client, user, push_client, post):
    # PUSH-01 ordering: no push reaches the client before it was told its auth_req_id.
    app, secret = push_client
    auth_req_id, auth_request = start_acknowledged(client, app, secret)
    AuthenticationRequest.objects.filter(pk=auth_request.pk).update(acknowledged_at=None)
    decisions.approve(auth_request, user=user)
    row = push_delivery(auth_request)
    assert post.calls == []
    assert row.status == Delivery.Status.PENDING and row.attempts == 0
    assert row.next_attempt_at > timezone.now()

    backchannel.acknowledge(auth_request)  # the answer has now been written out
    assert len(post.calls) == 1
    assert post.calls[0].json["auth_req_id"] == auth_req_id
    row.refresh_from_db()
    assert row.status == Delivery.Status.DELIVERED


# --------------------------------------------------------------------------------------------
# PUSH-03 / PUSH-04 / PUSH-05: the pushed ID token


@pytest.mark.parametrize("scope", ["openid", "openid offline_access"])
def test_push03_04_05_pushed_id_token_claims(client, user, push_client, post, scope):
    app, secret = push_client
    auth_req_id, auth_request = start_acknowledged(client, app, secret, scope=scope)
    decisions.approve(auth_request, user=user)
    body = post.calls[0].json

    claims = verify_id_token(client, body["id_token"], app.client_id)
    assert claims["iss"] == ISSUER
    assert claims["aud"] in (app.client_id, [app.client_id])
    assert claims["sub"] == str(user.pk)
    assert claims[AUTH_REQ_ID_CLAIM] == auth_req_id  # PUSH-03
    assert claims["at_hash"] == left_half_hash(body["access_token"])  # PUSH-04
    if "offline_access" in scope:  # PUSH-05
        assert claims[RT_HASH_CLAIM] == left_half_hash(body["refresh_token"])
    else:
        assert RT_HASH_CLAIM not in claims


def test_push03_id_token_for_another_audience_fails_verification(client, user, push_client, post):
    app, secret = push_client
    _, auth_request = start_acknowledged(client, app, secret)
    decisions.approve(auth_request, user=user)
    with pytest.raises(jwt.InvalidAudienceError):
        verify_id_token(client, post.calls[0].json["id_token"], "another-client")


# --------------------------------------------------------------------------------------------
# The pushed tokens are real; the push client never uses the token endpoint


def test_pushed_access_token_is_stored_linked_and_usable(client, user, push_client, post, signal_log):
    app, secret = push_client
    _, auth_request = start_acknowledged(client, app, secret, scope="openid offline_access")
    decisions.approve(auth_request, user=user)
    body = post.calls[0].json

    auth_request.refresh_from_db()
    assert auth_request.status == Status.CONSUMED
    assert auth_request.tokens_issued_at is not None
    checksum = hashlib.sha256(body["access_token"].encode()).hexdigest()
    access_token = AccessToken.objects.get(token_checksum=checksum)
    assert auth_request.access_token == access_token
    assert access_token.application == app and access_token.user == user
    assert access_token.id_token is not None
    assert RefreshToken.objects.get(access_token=access_token).user == user
    response = userinfo(client, body["access_token"])
    assert response.status_code == 200, response.content
    assert response.json()["sub"] == str(user.pk)
    assert len(signal_log.of("tokens_issued")) == 1

    # A delivered push keeps no sealed token response.
    row = push_delivery(auth_request)
    assert row.status == Delivery.Status.DELIVERED
    assert row.payload_sealed == ""
    assert (row.attempts, row.last_status_code, row.last_error) == (1, 204, "")
    assert row.finished_at is not None
    assert signal_log.of("delivered") and signal_log.of("delivered")[0]["kind"] == Kind.PUSH_TOKENS


def test_tok05_push_client_is_refused_at_the_token_endpoint(client, user, push_client, post):
    app, secret = push_client
    auth_req_id, auth_request = start_acknowledged(client, app, secret)
    decisions.approve(auth_request, user=user)
    assert token_rows() == (1, 0, 1)
    response = poll(client, app, secret, auth_req_id)
    assert response.status_code in (400, 401)
    assert response.json()["error"] == "unauthorized_client"
    assert token_rows() == (1, 0, 1)  # nothing minted twice


def test_no_tokens_are_pushed_for_a_user_deactivated_after_approval(client, user, push_client, post):
    # Parity with the token endpoint (TOK-10 path for inactive users): no tokens for an inactive user.
    app, secret = push_client
    _, auth_request = start_acknowledged(client, app, secret)
    AuthenticationRequest.objects.filter(pk=auth_request.pk).update(acknowledged_at=None)
    decisions.approve(auth_request, user=user)  # the push waits for the answer to be sent
    user.is_active = False
    user.save(update_fields=["is_active"])
    backchannel.acknowledge(auth_request)
    assert not any("access_token" in call.json for call in post.calls)
    assert token_rows() == (0, 0, 0)
    # The client learns it as a denial (PERR-02), as a poll would (access_denied).
    assert [call.json["error"] for call in post.calls] == ["access_denied"]
    auth_request.refresh_from_db()
    assert auth_request.status == AuthenticationRequest.Status.DENIED


# --------------------------------------------------------------------------------------------
# Retries resend the very same payload; PUSH-06 success


@pytest.mark.parametrize("failure", [500, 503, 429, outbound.TransportError("connect timeout")], ids=str)
def test_retry_resends_the_identical_payload_without_minting_again(
    client, user, push_client, post, signal_log, failure, ciba_settings
):
    # The first retry waits 5-10 s, beyond the 1 s a worker may start early (delivery.EARLY_START):
    # with the default 2 s base, a 1.0x s draw made the "not due yet" step below flaky.
    ciba_settings.set(RETRY_BASE_DELAY=10)
    app, secret = push_client
    _, auth_request = start_acknowledged(client, app, secret, scope="openid offline_access")
    post.answer(failure)
    decisions.approve(auth_request, user=user)

    assert len(post.calls) == 1
    row = push_delivery(auth_request)
    assert row.status == Delivery.Status.PENDING and row.attempts == 1
    assert row.next_attempt_at > timezone.now()
    assert row.payload_sealed  # kept for the retry
    assert token_rows() == (1, 1, 1)
    auth_request.refresh_from_db()
    assert auth_request.status == Status.CONSUMED

    assert delivery.deliver(row.pk) == "skipped"  # not due yet
    assert len(post.calls) == 1
    make_due(row)
    assert delivery.deliver(row.pk) == "delivered"

    assert len(post.calls) == 2
    first, second = post.calls
    assert second.body == first.body  # byte-identical
    assert second.headers == first.headers and second.url == first.url
    assert token_rows() == (1, 1, 1)
    assert len(signal_log.of("tokens_issued")) == 1
    row.refresh_from_db()
    assert row.status == Delivery.Status.DELIVERED and row.attempts == 2
    assert row.payload_sealed == ""


def test_429_retry_after_is_honoured(client, user, push_client, post):
    app, secret = push_client
    _, auth_request = start_acknowledged(client, app, secret)
    post.answer(429, headers={"Retry-After": "120"})
    before = timezone.now()
    decisions.approve(auth_request, user=user)
    row = push_delivery(auth_request)
    assert row.status == Delivery.Status.PENDING
    assert row.next_attempt_at >= before + timedelta(seconds=120)
    assert row.last_status_code == 429


@pytest.mark.parametrize("status", [200, 202, 204])
def test_push06_any_2xx_is_success_whatever_the_body(client, user, push_client, post, status):
    app, secret = push_client
    _, auth_request = start_acknowledged(client, app, secret)
    post.answer(status, headers={"Content-Type": "text/html", "Content-Length": "42"})
    decisions.approve(auth_request, user=user)
    assert len(post.calls) == 1
    row = push_delivery(auth_request)
    assert row.status == Delivery.Status.DELIVERED and row.last_status_code == status
    auth_request.refresh_from_db()
    assert auth_request.status == Status.CONSUMED
    assert token_rows() == (1, 0, 1)


# --------------------------------------------------------------------------------------------
# Final failure: the tokens are taken back


def assert_push_abandoned(http, auth_request, body, signal_log) -> None:
    auth_request.refresh_from_db()
    assert auth_request.status == Status.FAILED
    row = push_delivery(auth_request)
    assert row.status == Delivery.Status.FAILED and row.finished_at is not None
    assert row.payload_sealed == ""
    assert not AccessToken.objects.exists()
    assert not IDToken.objects.exists()
    refresh_tokens = list(RefreshToken.objects.all())
    assert refresh_tokens and all(token.revoked is not None for token in refresh_tokens)
    assert auth_request.access_token_id is None
    assert userinfo(http, body["access_token"]).status_code == 401
    failed = signal_log.of("delivery_failed")
    assert [kwargs["kind"] for kwargs in failed] == [Kind.PUSH_TOKENS]
    assert [kwargs["auth_request_pk"] for kwargs in signal_log.of("auth_request_failed")] == [auth_request.pk]
    assert not signal_log.of("delivered")


@pytest.mark.parametrize("status", [401, 400, 302, 307])
def test_final_failure_revokes_the_pushed_tokens(client, user, push_client, post, signal_log, status):
    # PUSH-06: redirects are not followed; a 4xx is not retried. The tokens never arrived.
    app, secret = push_client
    _, auth_request = start_acknowledged(client, app, secret, scope="openid offline_access")
    post.answer(status, headers={"Location": "https://elsewhere.example.com/"})
    decisions.approve(auth_request, user=user)
    assert len(post.calls) == 1
    assert push_delivery(auth_request).last_status_code == status
    assert_push_abandoned(client, auth_request, post.calls[0].json, signal_log)


def test_retries_past_the_deadline_revoke_the_pushed_tokens(client, user, push_client, post, signal_log):
    app, secret = push_client
    _, auth_request = start_acknowledged(client, app, secret, scope="openid offline_access")
    post.answer(500, 500)
    decisions.approve(auth_request, user=user)
    row = push_delivery(auth_request)
    assert row.status == Delivery.Status.PENDING
    assert not signal_log.of("delivery_failed")

    # The request's lifetime and the minimum retry window are over.
    past = timezone.now() - timedelta(hours=1)
    AuthenticationRequest.objects.filter(pk=auth_request.pk).update(expires_at=past)
    Delivery.objects.filter(pk=row.pk).update(created_at=past)
    make_due(row)
    assert delivery.deliver(row.pk) == "failed"
    assert len(post.calls) == 2
    assert post.calls[1].body == post.calls[0].body
    assert_push_abandoned(client, auth_request, post.calls[0].json, signal_log)


# --------------------------------------------------------------------------------------------
# PERR-01..04: error callbacks


def assert_error_push(call: Call, error: str, auth_req_id: str) -> None:
    assert call.url == ENDPOINT
    assert call.headers == {"Authorization": f"Bearer {NOTIFICATION_TOKEN}"}
    body = call.json
    assert set(body) == {"error", "error_description", "auth_req_id"}
    assert body["error"] == error
    assert body["auth_req_id"] == auth_req_id
    assert isinstance(body["error_description"], str) and body["error_description"]


def test_perr01_02_denial_pushes_access_denied(client, user, push_client, post):
    app, secret = push_client
    auth_req_id, auth_request = start_acknowledged(client, app, secret)
    decisions.deny(auth_request, user=user)
    assert len(post.calls) == 1
    assert_error_push(post.calls[0], "access_denied", auth_req_id)
    row = push_delivery(auth_request, Kind.PUSH_ERROR)
    assert row.status == Delivery.Status.DELIVERED and row.error == "access_denied"
    assert not Delivery.objects.filter(kind=Kind.PUSH_TOKENS).exists()
    assert token_rows() == (0, 0, 0)


def test_perr03_timeout_pushes_expired_token(client, user, push_client, post, signal_log):
    app, secret = push_client
    auth_req_id, auth_request = start_acknowledged(client, app, secret)
    AuthenticationRequest.objects.filter(pk=auth_request.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert maintenance.expire_overdue() == 1
    auth_request.refresh_from_db()
    assert auth_request.status == Status.EXPIRED
    assert len(post.calls) == 1
    assert_error_push(post.calls[0], "expired_token", auth_req_id)
    assert push_delivery(auth_request, Kind.PUSH_ERROR).status == Delivery.Status.DELIVERED
    assert len(signal_log.of("auth_request_expired")) == 1
    assert maintenance.expire_overdue() == 0  # once only
    assert len(post.calls) == 1


def test_perr03_approved_but_unsent_push_that_times_out_pushes_expired_token(client, user, push_client, post):
    # The tokens were never minted (the push waited for the answer); expiry reports expired_token.
    app, secret = push_client
    auth_req_id, auth_request = start_acknowledged(client, app, secret)
    AuthenticationRequest.objects.filter(pk=auth_request.pk).update(acknowledged_at=None)
    decisions.approve(auth_request, user=user)
    assert post.calls == []
    AuthenticationRequest.objects.filter(pk=auth_request.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert maintenance.expire_overdue() == 1
    assert post.calls == []  # the error push waits for the answer too

    backchannel.acknowledge(auth_request)
    assert [call.json.get("error") for call in post.calls] == ["expired_token"]
    assert_error_push(post.calls[0], "expired_token", auth_req_id)
    # The held-back token push is cancelled rather than minting for an expired request.
    tokens_row = push_delivery(auth_request)
    assert tokens_row.status == Delivery.Status.CANCELLED
    assert token_rows() == (0, 0, 0)
    auth_request.refresh_from_db()
    assert auth_request.status == Status.EXPIRED


def test_operator_expiry_pushes_expired_token(client, user, push_client, post):
    app, secret = push_client
    auth_req_id, auth_request = start_acknowledged(client, app, secret)
    decisions.expire(auth_request)
    assert len(post.calls) == 1
    assert_error_push(post.calls[0], "expired_token", auth_req_id)


def test_perr04_minting_failure_fails_the_request_and_pushes_transaction_failed(
    client, user, push_client, post, signal_log, monkeypatch
):
    original = CibaGrant.mint_tokens

    def mint_then_break(self, request, token_handler):
        original(self, request, token_handler)  # the rows are written, then rolled back
        raise RuntimeError("database went away")

    monkeypatch.setattr(CibaGrant, "mint_tokens", mint_then_break)
    app, secret = push_client
    auth_req_id, auth_request = start_acknowledged(client, app, secret, scope="openid offline_access")
    decisions.approve(auth_request, user=user)

    auth_request.refresh_from_db()
    assert auth_request.status == Status.FAILED
    assert auth_request.access_token_id is None
    assert token_rows() == (0, 0, 0)
    tokens_row = push_delivery(auth_request)
    assert tokens_row.status == Delivery.Status.FAILED and tokens_row.payload_sealed == ""
    assert len(post.calls) == 1
    assert_error_push(post.calls[0], "transaction_failed", auth_req_id)
    error_row = push_delivery(auth_request, Kind.PUSH_ERROR)
    assert error_row.status == Delivery.Status.DELIVERED and error_row.error == "transaction_failed"
    assert len(signal_log.of("auth_request_failed")) == 1
    assert not signal_log.of("tokens_issued")


# --------------------------------------------------------------------------------------------
# Secrets: sealed at rest, never in signals


def test_sealed_payload_never_holds_tokens_in_clear(client, user, push_client, post):
    app, secret = push_client
    auth_req_id, auth_request = start_acknowledged(client, app, secret, scope="openid offline_access")
    post.answer(503)
    decisions.approve(auth_request, user=user)
    body = post.calls[0].json
    row = push_delivery(auth_request)
    sealed = row.payload_sealed
    assert sealed
    for value in (body["access_token"], body["refresh_token"], body["id_token"], auth_req_id):
        assert value not in sealed
    assert json.loads(unseal(sealed)) == body  # what is retried is exactly what was sent
    auth_request.refresh_from_db()
    assert auth_req_id not in auth_request.auth_req_id_sealed
    assert NOTIFICATION_TOKEN not in auth_request.client_notification_token_sealed
    assert auth_request.get_auth_req_id() == auth_req_id
    assert auth_request.get_client_notification_token() == NOTIFICATION_TOKEN


def test_signals_carry_no_secrets(client, user, push_client, post, signal_log, monkeypatch):
    app, secret = push_client
    secrets = [NOTIFICATION_TOKEN, secret]
    # Approved and pushed after one retry, then a denied request, then a failed push.
    auth_req_id, auth_request = start_acknowledged(client, app, secret, scope="openid offline_access")
    secrets.append(auth_req_id)
    post.answer(500)
    decisions.approve(auth_request, user=user)
    make_due(push_delivery(auth_request))
    delivery.deliver(push_delivery(auth_request).pk)
    auth_req_id, auth_request = start_acknowledged(client, app, secret)
    secrets.append(auth_req_id)
    decisions.deny(auth_request, user=user)
    auth_req_id, auth_request = start_acknowledged(client, app, secret, scope="openid offline_access")
    secrets.append(auth_req_id)
    post.answer(401)
    decisions.approve(auth_request, user=user)
    for call in post.calls:
        body = call.json
        secrets += [body[key] for key in ("access_token", "refresh_token", "id_token") if key in body]

    names = set(signal_log.names())
    assert {
        "auth_request_created",
        "device_notified",
        "auth_request_approved",
        "auth_request_denied",
        "tokens_issued",
        "delivered",
        "delivery_failed",
        "auth_request_failed",
    } <= names
    for name, kwargs in signal_log.calls:
        assert set(kwargs) <= SIGNAL_KWARGS, name
        dumped = repr({key: value for key, value in kwargs.items() if key != "signal"})
        for value in secrets:
            assert value not in dumped, name
