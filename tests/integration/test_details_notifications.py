"""Hostile authorization details (RFC 9396) in the user's device notifications, with real parts.

A request whose details hold markup, a right-to-left override, a 5000-character string, nesting
and a non-numeric amount is started through the real bc-authorize endpoint (PostgreSQL, the
delivery task run on commit as in the other in-process integration tests) and its notification is
delivered by each backend to a real receiver on loopback:

* e-mail: Django's SMTP e-mail backend talking to a small SMTP server in this module;
* Web Push: the HTTPS push service stand-in of tests/integration/receiver.py, the message
  decrypted with the subscription's keys (as in test_webpush.py);
* webhook: the HTTPS callback receiver; the signature checked with ``verify_signature``.

What the user reads is plain text: markup stays inert literal text, the override character is
gone, long strings are cut, amounts are formatted for the user's language (German here), and a
non-numeric amount is shown as sent. Nothing answers 5xx and the request stays approvable.
"""

from __future__ import annotations

import email
import json
import secrets
import socketserver
import threading
from collections.abc import Iterator
from email import policy
from pathlib import Path

import pytest

from django_ciba.approval import decisions
from django_ciba.backends.webhook import verify_signature
from django_ciba.core import authorization_schemas, details_rendering
from django_ciba.models import AuthenticationRequest, Delivery
from django_ciba.testing import start_request
from tests.integration.receiver import Reply
from tests.integration.test_webpush import Browser


pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

APPROVAL_URL = "https://op.example.com/o/ciba/requests/{pk}/"
SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'
RLO = "\u202e"
LONG = "x" * 5000
LOOSE_AMOUNT = "12,5 <b>lots</b>"
PAYMENT = {
    "type": "payment_initiation",
    "instructedAmount": {"currency": "EUR", "amount": "1234.56"},
    "creditorName": f"{SCRIPT} M{RLO}üller",
    "creditorAccount": {"iban": "DE89370400440532013000"},
    "remittanceInformationUnstructured": IMG,
}
#: A site type with a permissive schema, shown with the shipped payment templates.
LOOSE = {
    "type": "loose_payment",
    "instructedAmount": {"currency": "EUR", "amount": LOOSE_AMOUNT},
    "creditorName": IMG,
}
NOTE = {"type": "note", "text": LONG, "nested": {"a": {"b": {"c": {"d": f"deep{SCRIPT}"}}}}}
DETAILS = [PAYMENT, LOOSE, NOTE]
TYPES = {
    "payment_initiation": {
        "SCHEMA": authorization_schemas.PAYMENT,
        "TEMPLATE": details_rendering.PAYMENT_HTML,
        "TEXT_TEMPLATE": details_rendering.PAYMENT_TEXT,
    },
    "loose_payment": {
        "SCHEMA": {"type": "object"},
        "TEMPLATE": details_rendering.PAYMENT_HTML,
        "TEXT_TEMPLATE": details_rendering.PAYMENT_TEXT,
    },
    "note": {"SCHEMA": {"type": "object"}},
}


# --- a minimal SMTP server (RFC 5321 subset: what smtplib sends) ---------------------------------


class _SmtpHandler(socketserver.StreamRequestHandler):
    timeout = 10

    def reply(self, line: str) -> None:
        self.wfile.write(line.encode("ascii") + b"\r\n")
        self.server.replies.append(line)  # type: ignore[attr-defined]

    def handle(self) -> None:
        self.reply("220 localhost test SMTP")
        envelope: dict = {"rcpt": []}
        while line := self.rfile.readline(65536):
            verb = line.decode("ascii", "replace").strip().split(" ", 1)[0].upper()
            if verb == "EHLO":
                self.wfile.write(b"250-localhost\r\n")
                self.reply("250 8BITMIME")
            elif verb in ("HELO", "NOOP", "RSET"):
                self.reply("250 OK")
            elif verb == "MAIL":
                envelope = {"from": line.decode().strip(), "rcpt": []}
                self.reply("250 OK")
            elif verb == "RCPT":
                envelope["rcpt"].append(line.decode().partition("<")[2].rstrip().rstrip(">"))
                self.reply("250 OK")
            elif verb == "DATA":
                self.reply("354 End data with <CR><LF>.<CR><LF>")
                data = []
                while (chunk := self.rfile.readline(65536)) not in (b".\r\n", b""):
                    data.append(chunk[1:] if chunk.startswith(b".") else chunk)  # dot-unstuffing
                self.server.messages.append((envelope, b"".join(data)))  # type: ignore[attr-defined]
                self.reply("250 OK queued")
            elif verb == "QUIT":
                self.reply("221 Bye")
                return
            else:
                self.reply("502 Command not implemented")


@pytest.fixture
def smtp_server() -> Iterator[socketserver.ThreadingTCPServer]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _SmtpHandler)
    server.daemon_threads = True
    server.messages = []  # type: ignore[attr-defined]
    server.replies = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


# --- shared set-up and checks ------------------------------------------------------------------


@pytest.fixture
def german(settings):
    """The user's notifications are written in German (amounts 1.234,56)."""
    settings.LANGUAGE_CODE = "de"


def configure(ciba_settings, backend: dict) -> None:
    ciba_settings.set(
        AUTHORIZATION_DETAILS={"TYPES": TYPES},
        NOTIFICATION_BACKEND=backend,
        APPROVAL_URL=APPROVAL_URL,
        OUTBOUND_ALLOWED_NETWORKS=["127.0.0.0/8"],
    )


def start(client, poll_client) -> AuthenticationRequest:
    app, secret = poll_client
    _, auth_request = start_request(
        client,
        app,
        secret,
        scope="openid",
        login_hint="alice",
        binding_message="Agent 7",
        authorization_details=json.dumps(DETAILS),
    )
    assert auth_request.authorization_details == DETAILS  # stored as sent
    return auth_request


def assert_plain_and_bounded(text: str, *, long_shown: bool = True) -> None:
    """What a user reads: no bidi override, nothing longer than MAX_STRING, German amounts, a
    non-numeric amount as sent, markup only as the literal characters the client sent."""
    assert RLO not in text
    assert "x" * details_rendering.MAX_STRING not in text
    if long_shown:
        assert "x" * 250 + details_rendering.ELLIPSIS in text.replace(" ", "")  # shown, cut
    assert "1.234,56 EUR" in text
    assert "1234.56" not in text and "1,234.56" not in text
    assert f"{LOOSE_AMOUNT} EUR" in text  # not a number: shown as sent
    assert SCRIPT in text and IMG in text  # literal text, as sent (never entity-encoded in plain text)
    assert "&lt;" not in text and "&quot;" not in text and "&amp;" not in text  # not HTML


def assert_still_approvable(client, user, auth_request: AuthenticationRequest) -> None:
    auth_request.refresh_from_db()
    assert auth_request.status == AuthenticationRequest.Status.PENDING
    device = Delivery.objects.get(auth_request=auth_request, kind="device")
    assert device.status == Delivery.Status.DELIVERED, device.last_error
    client.force_login(user)
    page = client.get(f"/o/ciba/requests/{auth_request.pk}/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "<script>alert" not in html and "<img src=x" not in html  # escaped on the page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    decisions.approve(auth_request, user=user)
    auth_request.refresh_from_db()
    assert auth_request.status == AuthenticationRequest.Status.APPROVED
    assert auth_request.granted_authorization_details == DETAILS


# --- the three backends ------------------------------------------------------------------------


def test_email_over_smtp_is_plain_text_with_inert_markup(
    smtp_server, settings, german, ciba_settings, client, user, poll_client
):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = smtp_server.server_address
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    settings.DEFAULT_FROM_EMAIL = "op@example.com"
    configure(ciba_settings, {"BACKEND": "django_ciba.backends.email.EmailBackend"})

    auth_request = start(client, poll_client)

    [(envelope, raw)] = smtp_server.messages
    assert envelope["rcpt"] == ["alice@example.com"]
    assert not [line for line in smtp_server.replies if line[0] in "45"]
    message = email.message_from_bytes(raw, policy=policy.default)
    assert not message.is_multipart()  # no HTML alternative: nothing a mail reader renders
    assert message.get_content_type() == "text/plain"
    assert [part.get_content_type() for part in message.walk()] == ["text/plain"]
    assert "\n" not in str(message["Subject"])
    body = message.get_content()
    assert_plain_and_bounded(body)
    lines = [line.strip() for line in body.splitlines() if line.strip().startswith("- ")]
    assert len(lines) == 3, body  # one line per detail
    assert lines[0].startswith("- ") and "1.234,56 EUR" in lines[0] and IMG in lines[0]
    assert "Müller" in lines[0]
    assert details_rendering.ELLIPSIS in lines[2]  # the long string, cut
    assert "deep" not in body  # nesting below MAX_DEPTH is summarised
    assert_still_approvable(client, user, auth_request)


def test_web_push_payload_is_bounded_text(
    callback_receiver, monkeypatch, german, ciba_settings, client, user, poll_client
):
    from django_ciba.backends.webpush import MAX_DETAILS_SUMMARY, generate_vapid_keys

    private, public = generate_vapid_keys()
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", callback_receiver.ca_file)
    configure(ciba_settings, {"BACKEND": "django_ciba.backends.webpush.WebPushBackend"})
    ciba_settings.set(
        WEBPUSH_VAPID_PRIVATE_KEY=private,
        WEBPUSH_VAPID_PUBLIC_KEY=public,
        WEBPUSH_VAPID_SUBJECT="mailto:ops@example.com",
    )
    path = f"/wpush/v2/{secrets.token_urlsafe(24)}"
    callback_receiver.script(path, Reply(201, headers={"Location": "https://push.invalid/m/1"}))
    browser = Browser()
    browser.subscribe(user, callback_receiver.url(path))

    auth_request = start(client, poll_client)

    [request] = callback_receiver.wait_for(1, path=path, timeout=15)
    assert callback_receiver.errors == []
    message = json.loads(browser.decrypt(request.body))
    assert set(message) == {"title", "body", "url", "request_id"}
    body = message["body"]
    assert body.startswith("Teller terminal: Agent 7\n")
    summary = body.split("\n", 1)[1]
    assert len(summary) <= MAX_DETAILS_SUMMARY
    assert summary.endswith(details_rendering.ELLIPSIS)  # cut inside the long third detail
    assert summary.startswith("Payment 1.234,56 EUR")  # the payment template, German amount
    assert_plain_and_bounded(body, long_shown=False)  # showNotification shows it as text
    assert_still_approvable(client, user, auth_request)


def test_service_worker_shows_text_only():
    worker = Path(details_rendering.__file__).parents[1] / "static" / "django_ciba" / "sw.js"
    source = worker.read_text()
    assert "showNotification" in source
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in source


def test_webhook_gets_signed_details_as_data(
    callback_receiver, monkeypatch, german, ciba_settings, client, user, poll_client
):
    secret = secrets.token_urlsafe(32)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", callback_receiver.ca_file)
    configure(
        ciba_settings,
        {
            "BACKEND": "django_ciba.backends.webhook.WebhookBackend",
            "OPTIONS": {"url": callback_receiver.url("/hook"), "secret": secret},
        },
    )
    callback_receiver.script("/hook", Reply(204))

    auth_request = start(client, poll_client)

    [request] = callback_receiver.wait_for(1, path="/hook", timeout=15)
    assert callback_receiver.errors == []
    assert verify_signature(secret, request.headers["X-Ciba-Signature"], request.body)
    assert not verify_signature(
        secret, request.headers["X-Ciba-Signature"], request.body.replace(b"1234", b"9234")
    )
    payload = json.loads(request.body)
    assert payload["authorization_details"] == DETAILS  # data, exactly as sent (JSON escapes it)
    summary = payload["authorization_details_summary"]
    assert len(summary) <= details_rendering.MAX_SUMMARY
    assert_plain_and_bounded(summary)
    assert payload["id"] == auth_request.pk
    assert_still_approvable(client, user, auth_request)
