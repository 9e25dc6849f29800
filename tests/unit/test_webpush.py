"""The Web Push backend (stubbed transport), the subscription API, the service worker and the include.

tests/integration/test_webpush.py sends to a push service stand-in over real HTTPS.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import time
from dataclasses import dataclass
from datetime import timedelta
from io import StringIO

import http_ece
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.core.management import call_command
from django.template.loader import render_to_string
from django.test import Client, RequestFactory
from django.urls import reverse
from django.utils import timezone

from django_ciba.backends import (
    DeviceNotification,
    NotificationError,
    PermanentNotificationError,
    get_backend,
    webpush,
)
from django_ciba.backends.webpush import WebPushBackend
from django_ciba.core import outbound
from django_ciba.delivery import worker as delivery
from django_ciba.exceptions import CibaConfigurationError
from django_ciba.models import Delivery, WebPushSubscription
from django_ciba.templatetags.ciba_webpush import ciba_webpush_config
from django_ciba.testing import start_request


PUSH_HOST = "https://push.example.net"
SECRET_PATH = "/wpush/v2/gAAAAAB-capability-token-never-logged"
ENDPOINT = PUSH_HOST + SECRET_PATH
SUBJECT = "mailto:ops@example.com"
APPROVAL_URL = "https://op.example.com/o/ciba/requests/{pk}/"
BACKEND = {"BACKEND": "django_ciba.backends.webpush.WebPushBackend"}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass
class Browser:
    """What a browser keeps for a push subscription: its P-256 key pair and the auth secret."""

    key: ec.EllipticCurvePrivateKey
    auth: bytes

    @classmethod
    def new(cls) -> Browser:
        import os

        return cls(ec.generate_private_key(ec.SECP256R1()), os.urandom(16))

    @property
    def p256dh(self) -> str:
        return b64(
            self.key.public_key().public_bytes(
                serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
            )
        )

    @property
    def auth_text(self) -> str:
        return b64(self.auth)

    def subscribe(self, user, endpoint: str = ENDPOINT, **fields) -> WebPushSubscription:
        return WebPushSubscription.objects.create(
            user=user, endpoint=endpoint, p256dh=self.p256dh, auth=self.auth_text, **fields
        )

    def json(self, endpoint: str = ENDPOINT) -> dict:
        return {"endpoint": endpoint, "keys": {"p256dh": self.p256dh, "auth": self.auth_text}}

    def decrypt(self, body: bytes) -> bytes:
        return http_ece.decrypt(body, private_key=self.key, auth_secret=self.auth, version="aes128gcm")


class FakePushService:
    """Stands in for outbound.post_json: records calls, answers from a script (default 201)."""

    def __init__(self) -> None:
        self.calls: list[dict] = []
        self.replies: dict[str, list[object]] = {}

    def reply(self, endpoint: str, *replies: object) -> None:
        self.replies[endpoint] = list(replies)

    def __call__(self, url: str, body: bytes, *, headers=None):
        self.calls.append({"url": url, "body": body, "headers": dict(headers or {})})
        script = self.replies.get(url) or []
        reply = script.pop(0) if len(script) > 1 else (script[0] if script else 201)
        if isinstance(reply, Exception):
            raise reply
        if isinstance(reply, int):
            return outbound.OutboundResponse(status=reply, headers={})
        return reply


@pytest.fixture(scope="module")
def vapid_keys() -> tuple[str, str]:
    return webpush.generate_vapid_keys()


@pytest.fixture
def webpush_settings(ciba_settings, vapid_keys):
    private, public = vapid_keys
    ciba_settings.set(
        NOTIFICATION_BACKEND=BACKEND,
        WEBPUSH_VAPID_PRIVATE_KEY=private,
        WEBPUSH_VAPID_PUBLIC_KEY=public,
        WEBPUSH_VAPID_SUBJECT=SUBJECT,
        APPROVAL_URL=APPROVAL_URL,
    )
    return ciba_settings


@pytest.fixture
def push_service(monkeypatch):
    fake = FakePushService()
    monkeypatch.setattr(outbound, "post_json", fake)
    return fake


@pytest.fixture
def browser() -> Browser:
    return Browser.new()


def make_notification(user, *, pk=42, binding_message="Teller 7: pay 10 EUR", minutes=5, **fields):
    values = {
        "auth_request_pk": pk,
        "user": user,
        "client_id": "teller-client",
        "client_name": "Teller terminal",
        "binding_message": binding_message,
        "scopes": ("openid",),
        "acr_values": (),
        "expires_at": timezone.now() + timedelta(minutes=minutes),
        "approval_url": APPROVAL_URL.format(pk=pk),
    }
    values.update(fields)
    return DeviceNotification(**values)


def vapid_claims(header: str, public_key: str) -> dict:
    """Check an ``Authorization: vapid t=...,k=...`` header; return the verified JWT claims."""
    match = re.fullmatch(r"vapid t=([A-Za-z0-9_.-]+),k=([A-Za-z0-9_-]+)", header)
    assert match, header
    token, key = match.groups()
    assert key == public_key
    point = base64.urlsafe_b64decode(key + "=" * (-len(key) % 4))
    verifier = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    assert jwt.get_unverified_header(token) == {"typ": "JWT", "alg": "ES256"}
    return jwt.decode(token, verifier, algorithms=["ES256"], options={"verify_aud": False})


# --- keys and VAPID --------------------------------------------------------------------------


def test_generated_keys_are_a_matching_pair(vapid_keys):
    private, public = vapid_keys
    key = webpush.load_private_key(private)
    assert webpush.public_key_text(key) == public
    assert len(webpush.parse_public_key(public)) == 65
    assert len(webpush.b64url_decode(private)) == 32


def test_private_key_forms(vapid_keys):
    key = webpush.load_private_key(vapid_keys[0])
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    der = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    for form in (pem, b64(der), vapid_keys[0] + "=", f"  {vapid_keys[0]}\n"):
        assert webpush.private_key_text(webpush.load_private_key(form)) == vapid_keys[0]


@pytest.mark.parametrize("value", ["", "not base64 !", "AAAA", b64(b"\x01" * 31)])
def test_invalid_private_keys_are_refused_without_echo(value):
    with pytest.raises(ValueError) as caught:
        webpush.load_private_key(value)
    assert not value.strip() or value not in str(caught.value)


def test_other_curves_are_refused():
    key = ec.generate_private_key(ec.SECP384R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    with pytest.raises(ValueError, match="P-256"):
        webpush.load_private_key(pem)


def test_public_key_and_auth_secret_validation(browser):
    assert webpush.parse_public_key(browser.p256dh)
    assert webpush.parse_public_key(browser.p256dh + "=") == webpush.parse_public_key(browser.p256dh)
    assert webpush.parse_auth_secret(browser.auth_text) == browser.auth
    not_on_curve = b64(b"\x04" + b"\x01" * 64)
    compressed = b64(
        browser.key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint
        )
    )
    for bad in (not_on_curve, compressed, browser.auth_text, "", "a+b/", None, 42):
        with pytest.raises(ValueError):
            webpush.parse_public_key(bad)
    for bad in (b64(b"x" * 15), b64(b"x" * 32), "", "!!", None):
        with pytest.raises(ValueError):
            webpush.parse_auth_secret(bad)


@pytest.mark.parametrize(
    "endpoint, origin",
    [
        ("https://push.example.net/a/b?c=d", "https://push.example.net"),
        ("https://Push.Example.NET:443/x", "https://push.example.net"),
        ("https://push.example.net:8443/x", "https://push.example.net:8443"),
        ("https://[2001:db8::1]:8443/x", "https://[2001:db8::1]:8443"),
    ],
)
def test_vapid_audience_is_the_push_service_origin(endpoint, origin, webpush_settings, vapid_keys):
    config = webpush.vapid_config()
    now = time.time()
    claims = vapid_claims(webpush.vapid_authorization(endpoint, config, now=now), vapid_keys[1])
    assert claims["aud"] == origin
    assert claims["sub"] == SUBJECT
    assert now + 11 * 3600 < claims["exp"] <= now + 12 * 3600


def test_vapid_config_reprs_hide_the_private_key(webpush_settings, vapid_keys):
    assert vapid_keys[0] not in repr(webpush.vapid_config())


# --- system checks and options ---------------------------------------------------------------


def test_check_passes_with_complete_settings(webpush_settings):
    assert get_backend().check() == []


@pytest.mark.parametrize(
    "overrides, fragment, check_id",
    [
        ({"WEBPUSH_VAPID_PRIVATE_KEY": None}, "vapid_private_key", "E032"),
        ({"WEBPUSH_VAPID_PUBLIC_KEY": None, "WEBPUSH_VAPID_SUBJECT": ""}, "vapid_subject", "E032"),
        ({"WEBPUSH_VAPID_PRIVATE_KEY": "garbage!"}, "is invalid", "E192"),
        ({"WEBPUSH_VAPID_PUBLIC_KEY": "AAAA"}, "is invalid", "E193"),
        ({"WEBPUSH_VAPID_PUBLIC_KEY": webpush.generate_vapid_keys()[1]}, "is not the public key", "E194"),
        ({"WEBPUSH_VAPID_SUBJECT": "ops@example.com"}, "mailto: or https:", "E195"),
        ({"WEBPUSH_VAPID_SUBJECT": "http://example.com"}, "mailto: or https:", "E195"),
    ],
)
def test_check_reports_bad_vapid_settings(webpush_settings, vapid_keys, overrides, fragment, check_id):
    # One ID per problem (the settings here use the old flat names, which still work).
    webpush_settings.set(**overrides)
    [message] = get_backend().check()
    assert message.id == f"django_ciba.{check_id}" and message.is_serious()
    assert fragment in message.msg
    assert vapid_keys[0] not in message.msg


def test_check_warns_without_approval_url(webpush_settings):
    webpush_settings.set(APPROVAL_URL=None)
    [message] = get_backend().check()
    assert message.id == "django_ciba.W033" and not message.is_serious()


def test_system_checks_run_the_backend_check(webpush_settings):
    from django.conf import settings

    from django_ciba.checks.outbound import _check_backend

    webpush_settings.set(WEBPUSH_VAPID_SUBJECT=None)
    assert "django_ciba.E032" in {message.id for message in _check_backend(settings)}


def test_unknown_options_are_refused():
    with pytest.raises(CibaConfigurationError):
        WebPushBackend(retries=3)


@pytest.mark.parametrize(
    ("options", "check_id"),
    [
        ({"urgency": "urgent"}, "django_ciba.E198"),
        ({"ttl": -1}, "django_ciba.E199"),
        ({"ttl": "60"}, "django_ciba.E199"),
        ({"ttl": True}, "django_ciba.E199"),
    ],
    ids=["urgency", "ttl-negative", "ttl-string", "ttl-bool"],
)
def test_invalid_urgency_and_ttl_are_reported_by_their_own_check(webpush_settings, options, check_id, user):
    backend = WebPushBackend(**options)
    assert [
        message.id for message in backend.check() if message.id in ("django_ciba.E198", "django_ciba.E199")
    ] == [check_id]
    with pytest.raises(CibaConfigurationError):  # never sent with a bad header
        backend.headers(make_notification(user, minutes=1))


def test_valid_urgency_and_ttl_raise_no_check(webpush_settings):
    ids = {message.id for message in WebPushBackend(urgency="low", ttl=0).check()}
    assert not ids & {"django_ciba.E198", "django_ciba.E199"}


# --- sending (stubbed transport) -------------------------------------------------------------


def test_message_is_encrypted_for_the_browser_with_vapid(
    webpush_settings, push_service, browser, user, vapid_keys
):
    subscription = browser.subscribe(user)
    notification = make_notification(user)
    started = time.time()
    WebPushBackend().notify(notification)

    [call] = push_service.calls
    assert call["url"] == ENDPOINT
    headers = call["headers"]
    assert headers["Content-Encoding"] == "aes128gcm"
    assert headers["Content-Type"] == "application/octet-stream"
    assert headers["Urgency"] == "high"
    assert headers["Topic"] == "ciba-42"
    assert 280 <= int(headers["TTL"]) <= 300
    claims = vapid_claims(headers["Authorization"], vapid_keys[1])
    assert claims["aud"] == PUSH_HOST and claims["sub"] == SUBJECT
    assert started < claims["exp"] <= time.time() + 24 * 3600

    assert b"Teller" not in call["body"]  # encrypted
    plaintext = browser.decrypt(call["body"])
    assert len(plaintext) % webpush.PAD_TO == 0  # padded: the length does not tell the content
    assert json.loads(plaintext) == {
        "title": "Authentication request",
        "body": "Teller terminal: Teller 7: pay 10 EUR",
        "url": "https://op.example.com/o/ciba/requests/42/",
        "request_id": 42,
    }
    subscription.refresh_from_db()
    assert subscription.last_used_at is not None


def test_every_subscription_of_the_user_and_only_those(webpush_settings, push_service, user, other_user):
    phone, laptop, stranger = Browser.new(), Browser.new(), Browser.new()
    phone.subscribe(user, endpoint=ENDPOINT + "-phone")
    laptop.subscribe(user, endpoint=ENDPOINT + "-laptop")
    stranger.subscribe(other_user, endpoint=ENDPOINT + "-bob")
    WebPushBackend().notify(make_notification(user))
    assert [call["url"] for call in push_service.calls] == [ENDPOINT + "-phone", ENDPOINT + "-laptop"]
    phone.decrypt(push_service.calls[0]["body"])
    laptop.decrypt(push_service.calls[1]["body"])
    with pytest.raises(http_ece.ECEException):
        laptop.decrypt(push_service.calls[0]["body"])  # each message is for one browser only


def test_options_change_the_message(webpush_settings, push_service, browser, user):
    browser.subscribe(user)
    backend = WebPushBackend(urgency="normal", ttl=60, title="Example Bank", include_details=False)
    backend.notify(make_notification(user))
    [call] = push_service.calls
    assert call["headers"]["Urgency"] == "normal"
    assert call["headers"]["TTL"] == "60"
    message = json.loads(browser.decrypt(call["body"]))
    assert message["title"] == "Example Bank"
    assert "Teller" not in message["body"]


def test_message_without_binding_message_or_link(webpush_settings, push_service, browser, user):
    browser.subscribe(user)
    WebPushBackend().notify(make_notification(user, binding_message="", approval_url=""))
    message = json.loads(browser.decrypt(push_service.calls[0]["body"]))
    assert message["body"] == "Teller terminal" and message["url"] == ""


def test_ttl_never_exceeds_the_request_lifetime(webpush_settings, push_service, browser, user):
    browser.subscribe(user)
    WebPushBackend(ttl=3600).notify(make_notification(user, minutes=1))
    assert 50 <= int(push_service.calls[0]["headers"]["TTL"]) <= 60


def test_long_text_is_shortened_to_fit_one_record(webpush_settings, push_service, browser, user):
    browser.subscribe(user)
    WebPushBackend().notify(make_notification(user, client_name="€" * 3000, binding_message="x" * 500))
    plaintext = browser.decrypt(push_service.calls[0]["body"])
    assert len(plaintext) <= webpush.MAX_PLAINTEXT
    assert json.loads(plaintext)["body"].endswith("…")


@pytest.mark.parametrize("status", [404, 410])
def test_expired_subscriptions_are_pruned(webpush_settings, push_service, user, status):
    gone, alive = Browser.new(), Browser.new()
    gone.subscribe(user, endpoint=ENDPOINT + "-gone")
    alive.subscribe(user, endpoint=ENDPOINT + "-alive")
    push_service.reply(ENDPOINT + "-gone", status)
    WebPushBackend().notify(make_notification(user))  # delivered to the other one
    assert list(WebPushSubscription.objects.values_list("endpoint", flat=True)) == [ENDPOINT + "-alive"]


def test_only_expired_subscriptions_is_a_permanent_failure(webpush_settings, push_service, browser, user):
    browser.subscribe(user)
    push_service.reply(ENDPOINT, 410)
    with pytest.raises(PermanentNotificationError) as caught:
        WebPushBackend().notify(make_notification(user))
    assert "HTTP 410" in str(caught.value)
    assert not WebPushSubscription.objects.exists()


def test_no_subscription_is_a_permanent_failure(webpush_settings, push_service, user):
    with pytest.raises(PermanentNotificationError, match="no Web Push subscription"):
        WebPushBackend().notify(make_notification(user))
    assert push_service.calls == []


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503])
def test_transient_answers_are_retried(webpush_settings, push_service, browser, user, status):
    browser.subscribe(user)
    push_service.reply(ENDPOINT, outbound.OutboundResponse(status=status, headers={"Retry-After": "120"}))
    with pytest.raises(NotificationError) as caught:
        WebPushBackend().notify(make_notification(user))
    assert not isinstance(caught.value, PermanentNotificationError)
    assert caught.value.retry_after == (120 if status in (429, 503) else None)
    assert WebPushSubscription.objects.count() == 1


def test_one_accepting_subscription_is_enough(webpush_settings, push_service, user):
    Browser.new().subscribe(user, endpoint=ENDPOINT + "-busy")
    Browser.new().subscribe(user, endpoint=ENDPOINT + "-ok")
    push_service.reply(ENDPOINT + "-busy", 503)
    WebPushBackend().notify(make_notification(user))
    assert len(push_service.calls) == 2


def test_transient_wins_over_permanent_failures(webpush_settings, push_service, user):
    Browser.new().subscribe(user, endpoint=ENDPOINT + "-busy")
    Browser.new().subscribe(user, endpoint=ENDPOINT + "-refused")
    push_service.reply(ENDPOINT + "-busy", 429)
    push_service.reply(ENDPOINT + "-refused", 403)
    with pytest.raises(NotificationError) as caught:
        WebPushBackend().notify(make_notification(user))
    assert not isinstance(caught.value, PermanentNotificationError)


@pytest.mark.parametrize("status", [400, 401, 403, 413, 301])
def test_other_answers_fail_without_pruning(webpush_settings, push_service, browser, user, status):
    browser.subscribe(user)
    push_service.reply(ENDPOINT, status)
    with pytest.raises(PermanentNotificationError, match=f"HTTP {status}"):
        WebPushBackend().notify(make_notification(user))
    assert WebPushSubscription.objects.count() == 1


def test_transport_errors(webpush_settings, push_service, browser, user):
    browser.subscribe(user)
    push_service.reply(ENDPOINT, outbound.TransportError("Outbound POST to https://push.example.net failed."))
    with pytest.raises(NotificationError) as caught:
        WebPushBackend().notify(make_notification(user))
    assert not isinstance(caught.value, PermanentNotificationError)
    push_service.reply(
        ENDPOINT, outbound.UnsafeDestination("Refused outbound call to https://push.example.net.")
    )
    with pytest.raises(PermanentNotificationError):
        WebPushBackend().notify(make_notification(user))


def test_stored_keys_that_cannot_work_are_pruned(webpush_settings, push_service, user):
    WebPushSubscription.objects.create(user=user, endpoint=ENDPOINT, p256dh="AAAA", auth="AAAA")
    with pytest.raises(PermanentNotificationError, match="unusable keys"):
        WebPushBackend().notify(make_notification(user))
    assert push_service.calls == [] and not WebPushSubscription.objects.exists()


def test_missing_vapid_settings_are_a_configuration_error(webpush_settings, push_service, browser, user):
    browser.subscribe(user)
    webpush_settings.set(WEBPUSH_VAPID_PRIVATE_KEY=None)
    with pytest.raises(CibaConfigurationError):
        WebPushBackend().notify(make_notification(user))
    assert push_service.calls == []


def test_endpoints_never_appear_in_logs_or_errors(webpush_settings, push_service, user, caplog):
    caplog.set_level(logging.DEBUG)
    for index, status in enumerate([410, 403, 503, 201]):
        Browser.new().subscribe(user, endpoint=f"{ENDPOINT}-{index}")
        push_service.reply(f"{ENDPOINT}-{index}", status)
    WebPushBackend().notify(make_notification(user))
    for index, status in enumerate([410, 403, 503]):
        Browser.new().subscribe(user, endpoint=f"{ENDPOINT}-again-{index}")
        push_service.reply(f"{ENDPOINT}-again-{index}", status)
    WebPushSubscription.objects.filter(endpoint=f"{ENDPOINT}-3").delete()
    with pytest.raises(NotificationError) as caught:
        WebPushBackend().notify(make_notification(user))
    assert "capability-token" not in str(caught.value)
    assert caplog.records and "capability-token" not in caplog.text
    assert "https://push.example.net" in caplog.text  # the origin is what logs show


# --- through the delivery outbox --------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_bc_authorize_pushes_to_the_browser(webpush_settings, push_service, client, user, poll_client):
    browser = Browser.new()
    browser.subscribe(user)
    app, secret = poll_client
    auth_req_id, auth_request = start_request(
        client, app, secret, scope="openid", login_hint="alice", binding_message="Teller 7: 4711"
    )
    [call] = push_service.calls
    plaintext = browser.decrypt(call["body"]).decode()
    message = json.loads(plaintext)
    assert message["url"] == APPROVAL_URL.format(pk=auth_request.pk)
    assert message["request_id"] == auth_request.pk
    assert message["body"] == "Teller terminal: Teller 7: 4711"
    assert auth_req_id not in plaintext and auth_req_id not in json.dumps(call["headers"])
    device = Delivery.objects.get(auth_request=auth_request)
    assert device.status == Delivery.Status.DELIVERED


@pytest.mark.django_db(transaction=True)
def test_delivery_retries_a_busy_push_service(webpush_settings, push_service, client, user, poll_client):
    browser = Browser.new()
    browser.subscribe(user)
    push_service.reply(ENDPOINT, 503, 201)
    app, secret = poll_client
    _, auth_request = start_request(client, app, secret, scope="openid", login_hint="alice")
    device = Delivery.objects.get(auth_request=auth_request)
    assert device.status == Delivery.Status.PENDING
    Delivery.objects.filter(pk=device.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    assert delivery.deliver(device.pk) == "delivered"
    assert len(push_service.calls) == 2


@pytest.mark.django_db(transaction=True)
def test_delivery_fails_for_a_user_without_subscriptions(
    webpush_settings, push_service, client, user, poll_client
):
    app, secret = poll_client
    _, auth_request = start_request(client, app, secret, scope="openid", login_hint="alice")
    device = Delivery.objects.get(auth_request=auth_request)
    assert device.status == Delivery.Status.FAILED
    assert "no Web Push subscription" in device.last_error


# --- the subscription API --------------------------------------------------------------------

SUBSCRIBE = "/o/ciba/webpush/subscribe/"
UNSUBSCRIBE = "/o/ciba/webpush/unsubscribe/"
CSRF = "a" * 32


def test_url_names():
    assert reverse("django_ciba:webpush-subscribe") == SUBSCRIBE
    assert reverse("django_ciba:webpush-unsubscribe") == UNSUBSCRIBE
    assert reverse("django_ciba:service-worker") == "/o/ciba/sw.js"


@pytest.fixture
def session(webpush_settings, user):
    """A signed-in browser session that must send the CSRF token, as a real one does."""
    http = Client(enforce_csrf_checks=True)
    http.force_login(user)
    http.cookies["csrftoken"] = CSRF
    return http


def post(http, url, body, *, csrf=CSRF, method="post", **extra):
    headers = {"HTTP_X_CSRFTOKEN": csrf} if csrf else {}
    return getattr(http, method)(
        url, data=json.dumps(body), content_type="application/json", **headers, **extra
    )


def test_subscribe_stores_the_subscription(session, user, browser):
    response = post(session, SUBSCRIBE, {**browser.json(), "device": "Alice's phone"})
    assert response.status_code == 201, response.content
    assert ENDPOINT.encode() not in response.content and b"capability" not in response.content
    [stored] = WebPushSubscription.objects.all()
    assert (stored.user, stored.endpoint, stored.p256dh, stored.auth, stored.device) == (
        user,
        ENDPOINT,
        browser.p256dh,
        browser.auth_text,
        "Alice's phone",
    )


def test_subscribing_again_refreshes_the_keys(session, user):
    first, second = Browser.new(), Browser.new()
    assert post(session, SUBSCRIBE, first.json()).status_code == 201
    response = post(session, SUBSCRIBE, second.json(), HTTP_USER_AGENT="Mozilla/5.0 (X11)\x00 Firefox")
    assert response.status_code == 200
    [stored] = WebPushSubscription.objects.all()
    assert stored.p256dh == second.p256dh and stored.device == "Mozilla/5.0 (X11) Firefox"


def test_a_browser_belongs_to_whoever_subscribed_last(session, user, other_user, browser):
    browser.subscribe(other_user)
    assert post(session, SUBSCRIBE, browser.json()).status_code == 201
    [stored] = WebPushSubscription.objects.all()
    assert stored.user == user


def test_oldest_subscriptions_beyond_the_cap_are_dropped(session, user, browser):
    from django_ciba.views.webpush import MAX_SUBSCRIPTIONS_PER_USER

    for index in range(MAX_SUBSCRIPTIONS_PER_USER):
        browser.subscribe(
            user, endpoint=f"{ENDPOINT}-{index}", created_at=timezone.now() - timedelta(days=index)
        )
    assert post(session, SUBSCRIBE, browser.json()).status_code == 201
    endpoints = set(WebPushSubscription.objects.values_list("endpoint", flat=True))
    assert len(endpoints) == MAX_SUBSCRIPTIONS_PER_USER
    assert ENDPOINT in endpoints and f"{ENDPOINT}-{MAX_SUBSCRIPTIONS_PER_USER - 1}" not in endpoints


def test_subscribe_needs_a_session(webpush_settings, browser, db):
    http = Client(enforce_csrf_checks=True)
    http.cookies["csrftoken"] = CSRF
    response = post(http, SUBSCRIBE, browser.json())
    assert response.status_code == 403
    assert response.json()["error"] == "not_authenticated"
    assert not WebPushSubscription.objects.exists()


def test_subscribe_needs_the_csrf_token(session, browser):
    assert post(session, SUBSCRIBE, browser.json(), csrf="").status_code == 403
    assert post(session, SUBSCRIBE, browser.json(), csrf="b" * 32).status_code == 403
    assert post(session, UNSUBSCRIBE, browser.json(), csrf="").status_code == 403
    assert not WebPushSubscription.objects.exists()


def test_subscribe_takes_json_only(session, browser):
    response = session.post(SUBSCRIBE, data=browser.json()["keys"], HTTP_X_CSRFTOKEN=CSRF)
    assert response.status_code == 415
    response = session.post(
        SUBSCRIBE, data="{not json", content_type="application/json", HTTP_X_CSRFTOKEN=CSRF
    )
    assert response.status_code == 400


def bad_bodies():
    good = Browser.new().json()
    keys = good["keys"]
    return [
        ["not", "an", "object"],
        {"keys": keys},
        {**good, "endpoint": 42},
        {**good, "endpoint": "http://push.example.net/x"},
        {**good, "endpoint": "https://127.0.0.1/x"},
        {**good, "endpoint": "https://10.0.0.1/x"},
        {**good, "endpoint": "https://user:pw@push.example.net/x"},
        {**good, "endpoint": "https://push.example.net/" + "x" * 2000},
        {"endpoint": ENDPOINT},
        {**good, "keys": {"p256dh": keys["p256dh"]}},
        {**good, "keys": {"auth": keys["auth"]}},
        {**good, "keys": {**keys, "p256dh": b64(b"\x04" + b"\x01" * 64)}},
        {**good, "keys": {**keys, "p256dh": "not base64!"}},
        {**good, "keys": {**keys, "auth": b64(b"short")}},
        {**good, "device": ["x"]},
    ]


@pytest.mark.parametrize("body", bad_bodies())
def test_subscribe_validates(session, body):
    response = post(session, SUBSCRIBE, body)
    assert response.status_code == 400, response.content
    assert response.json()["error"] == "invalid_request"
    assert not WebPushSubscription.objects.exists()


def test_subscribe_is_off_without_a_public_key(session, webpush_settings, browser):
    webpush_settings.set(WEBPUSH_VAPID_PUBLIC_KEY=None)
    assert post(session, SUBSCRIBE, browser.json()).status_code == 404
    assert not WebPushSubscription.objects.exists()


@pytest.mark.parametrize("method", ["post", "delete"])
def test_unsubscribe_deletes_only_the_users_own(session, user, other_user, method):
    mine, theirs = Browser.new(), Browser.new()
    mine.subscribe(user, endpoint=ENDPOINT + "-mine")
    theirs.subscribe(other_user, endpoint=ENDPOINT + "-theirs")
    assert post(session, UNSUBSCRIBE, {"endpoint": ENDPOINT + "-theirs"}, method=method).status_code == 204
    assert post(session, UNSUBSCRIBE, {"endpoint": ENDPOINT + "-mine"}, method=method).status_code == 204
    assert list(WebPushSubscription.objects.values_list("endpoint", flat=True)) == [ENDPOINT + "-theirs"]
    assert post(session, UNSUBSCRIBE, {"nothing": True}, method=method).status_code == 400


def test_unsubscribe_needs_a_session(webpush_settings, db):
    response = Client().post(UNSUBSCRIBE, data="{}", content_type="application/json")
    assert response.status_code == 403


def test_other_methods_are_refused(session):
    assert session.get(SUBSCRIBE).status_code == 405
    assert session.get(UNSUBSCRIBE).status_code == 405


# --- the service worker ----------------------------------------------------------------------


def test_service_worker_is_served_same_origin(client):
    response = client.get("/o/ciba/sw.js")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/javascript; charset=utf-8"
    assert response["Cache-Control"] == "no-cache"
    source = response.content.decode()
    assert 'addEventListener("push"' in source and 'addEventListener("notificationclick"' in source
    assert 'addEventListener("fetch"' not in source
    assert client.post("/o/ciba/sw.js").status_code == 405


# --- the include and its template tag ---------------------------------------------------------

INCLUDE = "django_ciba/pages/_webpush.html"


def test_include_renders_nothing_without_a_public_key(ciba_settings, rf):
    ciba_settings.set(WEBPUSH_VAPID_PUBLIC_KEY=None)
    assert ciba_webpush_config() is None
    assert render_to_string(INCLUDE, request=rf.get("/")).strip() == ""


def test_include_offers_notifications(webpush_settings, vapid_keys, rf: RequestFactory):
    request = rf.get("/o/ciba/requests/")
    html = render_to_string(INCLUDE, request=request)
    assert f'data-public-key="{vapid_keys[1]}"' in html
    assert 'data-service-worker-url="/o/ciba/sw.js"' in html
    assert f'data-subscribe-url="{SUBSCRIBE}"' in html and f'data-unsubscribe-url="{UNSUBSCRIBE}"' in html
    token = re.search(r'data-csrf-token="([^"]+)"', html)
    assert token and len(token.group(1)) == 64
    # Hidden until the script finds Web Push support: without JavaScript nothing shows.
    assert re.search(
        r"<button [^>]*data-ciba-webpush-subscribe hidden>Notify me on this device</button>", html
    )
    assert re.search(r'<script src="[^"]*django_ciba/webpush\.js" defer></script>', html)
    assert vapid_keys[0] not in html
    assert "<script>" not in html  # no inline script: works under a strict CSP


def test_include_renders_without_a_request(webpush_settings):
    html = render_to_string(INCLUDE)
    assert "data-ciba-webpush" in html and 'data-csrf-token=""' in html


def test_static_files_exist():
    from pathlib import Path

    import django_ciba

    static = Path(django_ciba.__file__).parent / "static" / "django_ciba"
    script = (static / "webpush.js").read_text()
    assert "pushManager.subscribe" in script and "X-CSRFToken" in script
    assert (static / "sw.js").is_file()


# --- manage.py ciba_vapid_keys ---------------------------------------------------------------


def test_vapid_keys_command_prints_a_usable_pair(ciba_settings):
    out = StringIO()
    call_command("ciba_vapid_keys", stdout=out)
    # Printed as the backend's OPTIONS.
    values = dict(re.findall(r'"(vapid_\w+)": "([A-Za-z0-9_-]+)",', out.getvalue()))
    assert set(values) == {"vapid_private_key", "vapid_public_key"}
    ciba_settings.set(NOTIFICATION_BACKEND={**BACKEND, "OPTIONS": {**values, "vapid_subject": SUBJECT}})
    assert webpush.vapid_config().public_key == values["vapid_public_key"]
    out = StringIO()
    call_command("ciba_vapid_keys", "--env", stdout=out)
    assert re.fullmatch(
        r"CIBA_WEBPUSH_VAPID_PRIVATE_KEY=[\w-]{43}\nCIBA_WEBPUSH_VAPID_PUBLIC_KEY=[\w-]{87}\n", out.getvalue()
    )
