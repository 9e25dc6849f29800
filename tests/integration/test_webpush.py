"""Web Push against a push service stand-in: real HTTPS on loopback, real encryption and VAPID.

The stand-in (tests/integration/receiver.py) plays the push service; the test plays the browser:
it makes the subscription's P-256 key pair and auth secret, then checks what arrived as the
browser and the push service would: the VAPID JWT verifies with the announced public key and
names the push service's origin, and the body decrypts (aes128gcm, RFC 8291) with the
subscription's keys to the expected message.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import time
from datetime import timedelta

import http_ece
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils
from django.utils import timezone

from django_ciba.backends.webpush import generate_vapid_keys
from django_ciba.delivery import worker as delivery
from django_ciba.models import Delivery, WebPushSubscription
from django_ciba.testing import start_request
from tests.integration.receiver import Reply


pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

SUBJECT = "mailto:ops@example.com"
APPROVAL_URL = "https://op.example.com/o/ciba/requests/{pk}/"


def b64decode(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class Browser:
    """The browser side of a subscription: a fresh P-256 key pair and 16-byte auth secret."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.auth = os.urandom(16)

    def subscribe(self, user, endpoint: str) -> WebPushSubscription:
        point = self.key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return WebPushSubscription.objects.create(
            user=user, endpoint=endpoint, p256dh=b64encode(point), auth=b64encode(self.auth), device="test"
        )

    def decrypt(self, body: bytes) -> bytes:
        return http_ece.decrypt(body, private_key=self.key, auth_secret=self.auth, version="aes128gcm")


def verify_vapid(header: str, public_key: str) -> dict:
    """What a push service does (RFC 8292 §3): check ``vapid t=<JWT>,k=<key>``; return the claims.

    The ES256 signature is checked here with ``cryptography`` alone, independently of the JWT
    library the backend uses.
    """
    scheme, _, params = header.partition(" ")
    assert scheme == "vapid", header
    fields = dict(item.strip().split("=", 1) for item in params.split(","))
    assert set(fields) == {"t", "k"}
    assert fields["k"] == public_key
    signing_input, _, signature = fields["t"].rpartition(".")
    head, _, payload = signing_input.partition(".")
    assert json.loads(b64decode(head)) == {"typ": "JWT", "alg": "ES256"}
    raw = b64decode(signature)
    assert len(raw) == 64
    verifier = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b64decode(fields["k"]))
    der = utils.encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    verifier.verify(der, signing_input.encode("ascii"), ec.ECDSA(hashes.SHA256()))  # raises if forged
    return json.loads(b64decode(payload))


@pytest.fixture
def vapid(callback_receiver, ciba_settings, monkeypatch):
    """The Web Push backend configured, sending to the loopback stand-in, which it trusts."""
    private, public = generate_vapid_keys()
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", callback_receiver.ca_file)
    ciba_settings.set(
        NOTIFICATION_BACKEND={"BACKEND": "django_ciba.backends.webpush.WebPushBackend"},
        WEBPUSH_VAPID_PRIVATE_KEY=private,
        WEBPUSH_VAPID_PUBLIC_KEY=public,
        WEBPUSH_VAPID_SUBJECT=SUBJECT,
        APPROVAL_URL=APPROVAL_URL,
        OUTBOUND_ALLOWED_NETWORKS=["127.0.0.0/8"],
    )
    return public


@pytest.fixture
def push_path() -> str:
    return f"/wpush/v2/{secrets.token_urlsafe(24)}"


def test_push_service_receives_an_encrypted_vapid_signed_message(
    vapid, callback_receiver, push_path, client, user, poll_client
):
    callback_receiver.script(push_path, Reply(201, headers={"Location": "https://push.invalid/m/1"}))
    browser = Browser()
    subscription = browser.subscribe(user, callback_receiver.url(push_path))
    app, secret = poll_client
    started = time.time()
    auth_req_id, auth_request = start_request(
        client, app, secret, scope="openid", login_hint="alice", binding_message="Teller 7: pay 10 EUR"
    )

    [request] = callback_receiver.wait_for(1, path=push_path, timeout=15)
    assert callback_receiver.errors == []
    assert request.method == "POST"
    headers = request.headers
    assert headers["Content-Encoding"] == "aes128gcm"
    assert headers["Content-Type"] == "application/octet-stream"
    assert headers["Urgency"] == "high"
    assert headers["Topic"] == f"ciba-{auth_request.pk}"
    lifetime = (auth_request.expires_at - timezone.now()).total_seconds()
    assert 0 < int(headers["TTL"]) <= lifetime + 1

    claims = verify_vapid(headers["Authorization"], vapid)
    assert claims["aud"] == callback_receiver.base_url  # the push service's origin, no path
    assert claims["sub"] == SUBJECT
    assert started < claims["exp"] <= time.time() + 24 * 3600

    plaintext = browser.decrypt(request.body)
    message = json.loads(plaintext)
    assert message == {
        "title": "Authentication request",
        "body": "Teller terminal: Teller 7: pay 10 EUR",
        "url": APPROVAL_URL.format(pk=auth_request.pk),
        "request_id": auth_request.pk,
    }
    # Nothing secret travels through the push service, not even encrypted.
    for value in (auth_req_id, secret):
        assert value.encode() not in plaintext
        assert value not in json.dumps(dict(headers))
    assert b"Teller" not in request.body

    device = Delivery.objects.get(auth_request=auth_request)
    assert device.status == Delivery.Status.DELIVERED
    subscription.refresh_from_db()
    assert subscription.last_used_at is not None


def test_gone_subscription_is_deleted(vapid, callback_receiver, push_path, client, user, poll_client):
    callback_receiver.script(push_path, Reply(410))
    Browser().subscribe(user, callback_receiver.url(push_path))
    app, secret = poll_client
    _, auth_request = start_request(client, app, secret, scope="openid", login_hint="alice")

    callback_receiver.wait_for(1, path=push_path, timeout=15)
    assert not WebPushSubscription.objects.filter(user=user).exists()
    device = Delivery.objects.get(auth_request=auth_request)
    assert device.status == Delivery.Status.FAILED
    assert "410" in device.last_error
    assert push_path not in device.last_error


def test_busy_push_service_gets_the_message_on_retry(
    vapid, callback_receiver, push_path, client, user, poll_client
):
    callback_receiver.script(push_path, [Reply(503), Reply(201)])
    browser = Browser()
    browser.subscribe(user, callback_receiver.url(push_path))
    app, secret = poll_client
    _, auth_request = start_request(client, app, secret, scope="openid", login_hint="alice")
    callback_receiver.wait_for(1, path=push_path, timeout=15)
    device = Delivery.objects.get(auth_request=auth_request)
    assert device.status == Delivery.Status.PENDING

    Delivery.objects.filter(pk=device.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    assert delivery.deliver(device.pk) == "delivered"
    first, second = callback_receiver.wait_for(2, path=push_path, timeout=15)
    # Each attempt is encrypted afresh (new salt and sender key); both decrypt to the same message.
    assert first.body != second.body
    assert browser.decrypt(first.body) == browser.decrypt(second.body)
    assert WebPushSubscription.objects.filter(user=user).count() == 1
