"""Notification backends: building them from settings, and each shipped backend's delivery.

The webhook tests stub ``django_ciba.core.outbound`` (the HTTP client), so they run without a network.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import io
import json
import smtplib
import sys
import threading
import types
from datetime import UTC, datetime, timedelta, timezone

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.test import override_settings

import django_ciba
from django_ciba.backends import (
    BaseNotificationBackend,
    DeviceNotification,
    NotificationError,
    PermanentNotificationError,
    get_backend,
    locmem,
)
from django_ciba.backends.console import ConsoleBackend
from django_ciba.backends.email import EmailBackend
from django_ciba.backends.locmem import LocmemBackend
from django_ciba.backends.webhook import WebhookBackend, verify_signature
from django_ciba.exceptions import CibaConfigurationError


SECRET = "s" * 40
URL = "https://push.example.com/ciba"
EXPIRES_AT = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
NOW = 1_900_000_000


class SimpleUser:
    def __init__(self, pk=7, username="alice", email="alice@example.com"):
        self.pk = pk
        self.username = username
        self.email = email

    def get_username(self):
        return self.username


def make_notification(**changes):
    values = {
        "auth_request_pk": 42,
        "user": SimpleUser(),
        "client_id": "client-abc",
        "client_name": "Teller terminal",
        "binding_message": "Pay 10 EUR to O'Brien & Co <ACME>",
        "scopes": ("openid", "payments"),
        "acr_values": ("urn:acr:strong",),
        "expires_at": EXPIRES_AT,
        "approval_url": "https://op.example.com/ciba/42/",
    }
    values.update(changes)
    return DeviceNotification(**values)


def backend_setting(path, **options):
    return override_settings(CIBA={"NOTIFICATION_BACKEND": {"BACKEND": path, "OPTIONS": options}})


@pytest.fixture(autouse=True)
def _clean_locmem():
    locmem.reset()
    yield
    locmem.reset()


# --- the contract ------------------------------------------------------------------------------


def test_device_notification_is_frozen_and_requires_an_aware_expiry():
    notification = make_notification(scopes=["openid"], acr_values=[])
    assert notification.scopes == ("openid",)
    assert notification.acr_values == ()
    with pytest.raises(dataclasses.FrozenInstanceError):
        notification.binding_message = "changed"
    with pytest.raises(ValueError, match="aware"):
        make_notification(expires_at=datetime(2030, 1, 1))


def test_device_notification_has_no_field_for_secrets():
    names = {field.name for field in dataclasses.fields(DeviceNotification)}
    assert not names & {"auth_req_id", "user_code", "client_notification_token", "access_token", "token"}


def test_permanent_errors_are_notification_errors():
    assert issubclass(PermanentNotificationError, NotificationError)


def test_base_backend_requires_notify_and_has_no_checks():
    backend = BaseNotificationBackend()
    assert backend.check() == []
    with pytest.raises(NotImplementedError):
        backend.notify(make_notification())


# --- get_backend -------------------------------------------------------------------------------


def test_default_backend_is_the_console():
    with override_settings(CIBA={}):
        backend = get_backend()
    assert type(backend) is ConsoleBackend
    assert backend.stream is None


def test_get_backend_builds_the_configured_class_with_its_options():
    with backend_setting("django_ciba.backends.email.EmailBackend", from_email="ciba@example.com"):
        first = get_backend()
        second = get_backend(subject_prefix="[OP] ")
    assert type(first) is EmailBackend
    assert first.from_email == "ciba@example.com"
    assert first is not second
    assert (second.from_email, second.subject_prefix) == ("ciba@example.com", "[OP] ")
    assert first.subject_prefix == ""  # overrides do not leak into the setting


def test_get_backend_reads_the_setting_at_call_time():
    with backend_setting("django_ciba.backends.locmem.LocmemBackend"):
        assert type(get_backend()) is LocmemBackend
    with backend_setting("django_ciba.backends.console.ConsoleBackend"):
        assert type(get_backend()) is ConsoleBackend


def test_a_bad_import_path_is_a_configuration_error():
    with backend_setting("django_ciba.backends.nowhere.Backend"):
        with pytest.raises(CibaConfigurationError, match="nowhere"):
            get_backend()


def test_a_class_that_is_not_a_backend_is_a_configuration_error():
    with backend_setting("django_ciba.exceptions.CibaError"):
        with pytest.raises(CibaConfigurationError, match="BaseNotificationBackend"):
            get_backend()


@pytest.mark.parametrize(
    "config",
    [
        "django_ciba.backends.console.ConsoleBackend",
        {"OPTIONS": {}},
        {"BACKEND": "django_ciba.backends.console.ConsoleBackend", "OPTION": {}},
        {"BACKEND": "django_ciba.backends.console.ConsoleBackend", "OPTIONS": ["stream"]},
    ],
)
def test_a_malformed_setting_is_a_configuration_error(config):
    with override_settings(CIBA={"NOTIFICATION_BACKEND": config}):
        with pytest.raises(CibaConfigurationError):
            get_backend()


def test_an_unknown_option_is_a_configuration_error_that_lists_the_accepted_ones():
    with backend_setting("django_ciba.backends.email.EmailBackend", form_email="typo@example.com"):
        with pytest.raises(CibaConfigurationError) as excinfo:
            get_backend()
    message = str(excinfo.value)
    assert "'form_email'" in message
    assert "'from_email'" in message and "'subject_prefix'" in message


def test_an_unknown_override_is_a_configuration_error():
    with backend_setting("django_ciba.backends.locmem.LocmemBackend"):
        with pytest.raises(CibaConfigurationError, match="'stream'"):
            get_backend(stream=io.StringIO())


# --- console -----------------------------------------------------------------------------------


def test_console_writes_a_readable_block():
    stream = io.StringIO()
    ConsoleBackend(stream=stream).notify(make_notification())
    lines = stream.getvalue().splitlines()
    assert lines[1:-1] == [
        "CIBA authentication request #42",
        "User: alice",
        "Client: Teller terminal (client-abc)",
        "Binding message: Pay 10 EUR to O'Brien & Co <ACME>",
        "Scopes: openid payments",
        "ACR values: urn:acr:strong",
        "Expires at: 2030-01-02T03:04:05+00:00",
        "Approve or deny: https://op.example.com/ciba/42/",
    ]
    assert set(lines[0]) == set(lines[-1]) == {"-"}


def test_console_shows_expiry_in_utc_and_says_when_there_is_no_link():
    stream = io.StringIO()
    expires_at = EXPIRES_AT.astimezone(timezone(timedelta(hours=2)))
    ConsoleBackend(stream=stream).notify(make_notification(approval_url="", expires_at=expires_at))
    assert "Expires at: 2030-01-02T03:04:05+00:00" in stream.getvalue()
    assert "(no approval URL configured)" in stream.getvalue()


def test_console_cannot_be_made_to_forge_lines():
    stream = io.StringIO()
    ConsoleBackend(stream=stream).notify(make_notification(binding_message="ok\nApprove or deny: evil"))
    assert "Binding message: ok\\nApprove or deny: evil" in stream.getvalue().splitlines()


def test_console_writes_to_stdout_by_default(capsys, settings):
    settings.CIBA = {}
    get_backend().notify(make_notification())
    assert "Pay 10 EUR to O'Brien & Co <ACME>" in capsys.readouterr().out


def test_console_blocks_from_threads_do_not_interleave():
    class SlowStream(io.StringIO):
        def write(self, text):
            for char in text:  # gives other threads every chance to interleave
                super().write(char)
            return len(text)

    stream = SlowStream()
    threads = [
        threading.Thread(
            target=ConsoleBackend(stream=stream).notify, args=(make_notification(auth_request_pk=n),)
        )
        for n in range(8)
    ]
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(previous)
    output = stream.getvalue()
    assert output.count("CIBA authentication request #") == 8
    for n in range(8):  # each block is written whole
        assert ConsoleBackend().format(make_notification(auth_request_pk=n)) in output


# --- locmem ------------------------------------------------------------------------------------


def test_locmem_records_notifications_in_order():
    backend = LocmemBackend()
    first, second = make_notification(auth_request_pk=1), make_notification(auth_request_pk=2)
    backend.notify(first)
    LocmemBackend().notify(second)
    assert locmem.outbox == [first, second]


@pytest.mark.parametrize(
    ("permanent", "error"), [(False, NotificationError), (True, PermanentNotificationError)]
)
def test_locmem_fail_next_fails_without_recording(permanent, error):
    backend = LocmemBackend()
    locmem.fail_next(2, permanent=permanent)
    for _ in range(2):
        with pytest.raises(error) as excinfo:
            backend.notify(make_notification())
        assert isinstance(excinfo.value, PermanentNotificationError) is permanent
    assert locmem.outbox == []
    backend.notify(make_notification())
    assert len(locmem.outbox) == 1


def test_locmem_failures_add_up_in_order():
    backend = LocmemBackend()
    locmem.fail_next()
    locmem.fail_next(permanent=True)
    with pytest.raises(NotificationError) as excinfo:
        backend.notify(make_notification())
    assert not isinstance(excinfo.value, PermanentNotificationError)
    with pytest.raises(PermanentNotificationError):
        backend.notify(make_notification())


def test_locmem_reset_clears_outbox_in_place_and_pending_failures():
    outbox = locmem.outbox
    LocmemBackend().notify(make_notification())
    locmem.fail_next(3)
    locmem.reset()
    assert outbox == [] and locmem.outbox is outbox
    LocmemBackend().notify(make_notification())
    assert len(outbox) == 1


def test_locmem_refuses_what_is_not_a_notification():
    with pytest.raises(TypeError):
        LocmemBackend().notify({"auth_request_pk": 1})


# --- e-mail ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_email_goes_to_the_users_address_with_binding_message_and_link():
    user = get_user_model().objects.create_user("bob", "bob@example.com")
    EmailBackend(from_email="ciba@example.com").notify(make_notification(user=user))
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["bob@example.com"]
    assert message.from_email == "ciba@example.com"
    assert "Teller terminal" in message.subject
    assert "Pay 10 EUR to O'Brien & Co <ACME>" in message.body  # in full, not HTML-escaped
    assert "https://op.example.com/ciba/42/" in message.body
    assert "Hello bob," in message.body
    assert "openid, payments" in message.body


def test_email_subject_is_one_line_with_the_prefix(settings):
    settings.DEFAULT_FROM_EMAIL = "op@example.com"
    EmailBackend(subject_prefix="[OP] ").notify(make_notification(client_name="Bank\nBcc: x@evil.example"))
    message = mail.outbox[0]
    assert message.subject == "[OP] Approve the sign-in request from Bank Bcc: x@evil.example"
    assert message.from_email == "op@example.com"
    message.message()  # headers are valid


def test_email_without_binding_message_or_link():
    EmailBackend().notify(make_notification(binding_message="", approval_url=""))
    body = mail.outbox[0].body
    assert "It shows this message" not in body
    assert "Open your authentication app" in body


@pytest.mark.parametrize("address", ["", None, "   "])
def test_email_to_a_user_without_address_is_permanent(address):
    with pytest.raises(PermanentNotificationError, match="no e-mail address"):
        EmailBackend().notify(make_notification(user=SimpleUser(email=address)))
    assert mail.outbox == []


def test_email_honours_a_custom_email_field():
    class CustomUser(SimpleUser):
        contact = "carol@example.com"

        def get_email_field_name(self):
            return "contact"

    EmailBackend().notify(make_notification(user=CustomUser(email="")))
    assert mail.outbox[0].to == ["carol@example.com"]


class FailingMailBackend:
    error: Exception = smtplib.SMTPServerDisconnected("gone")

    def __init__(self, fail_silently=False, **kwargs):
        self.fail_silently = fail_silently

    def send_messages(self, messages):
        if self.fail_silently:
            return 0
        raise self.error


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (smtplib.SMTPServerDisconnected("gone"), NotificationError),
        (ConnectionRefusedError(), NotificationError),
        (smtplib.SMTPRecipientsRefused({"a@example.com": (451, b"try later")}), NotificationError),
        (
            smtplib.SMTPRecipientsRefused({"a@example.com": (550, b"no such user")}),
            PermanentNotificationError,
        ),
    ],
)
def test_email_sending_errors_become_notification_errors(settings, monkeypatch, error, expected):
    settings.EMAIL_BACKEND = f"{__name__}.FailingMailBackend"
    monkeypatch.setattr(FailingMailBackend, "error", error)
    with pytest.raises(expected) as excinfo:
        EmailBackend().notify(make_notification())
    assert isinstance(excinfo.value, PermanentNotificationError) is (expected is PermanentNotificationError)
    assert excinfo.value.__cause__ is error


def test_email_fail_silently_is_passed_to_django(settings):
    settings.EMAIL_BACKEND = f"{__name__}.FailingMailBackend"
    EmailBackend(fail_silently=True).notify(make_notification())


# --- webhook -----------------------------------------------------------------------------------


class FakeOutbound:
    """Stands in for ``django_ciba.core.outbound``: records calls, answers with ``status`` or raises."""

    class OutboundError(Exception):
        transient = False

    class UnsafeDestination(OutboundError):
        transient = False

    class TransportError(OutboundError):
        transient = True

    def __init__(self):
        self.calls = []
        self.status = 204
        self.error = None
        self.refused = set()

    def post_json(self, url, body, *, headers=None):
        self.calls.append((url, body, dict(headers or {})))
        if self.error is not None:
            raise self.error
        headers = {"retry-after": "7"} if self.status == 429 else {}
        return types.SimpleNamespace(
            status=self.status, headers=headers, retry_after=lambda: 7.0 if self.status == 429 else None
        )

    def validate_endpoint_url(self, url):
        if url in self.refused:
            raise self.UnsafeDestination(f"{url} resolves to a private address")


@pytest.fixture
def outbound(monkeypatch):
    fake = FakeOutbound()
    monkeypatch.setitem(sys.modules, "django_ciba.core.outbound", fake)
    monkeypatch.setattr(django_ciba.core, "outbound", fake, raising=False)
    return fake


@pytest.fixture
def frozen_time(monkeypatch):
    from django_ciba.backends import webhook

    monkeypatch.setattr(webhook.time, "time", lambda: NOW + 0.25)


def test_webhook_posts_compact_signed_json(outbound, frozen_time):
    user = SimpleUser(pk=7, username="élodie")
    WebhookBackend(url=URL, secret=SECRET).notify(make_notification(user=user, binding_message="Zahle 10 €"))
    [(url, body, headers)] = outbound.calls
    assert url == URL
    assert json.loads(body) == {
        "type": "ciba.authentication_request",
        "id": 42,
        "user": {"pk": "7", "username": "élodie"},
        "client": {"client_id": "client-abc", "name": "Teller terminal"},
        "binding_message": "Zahle 10 €",
        "scopes": ["openid", "payments"],
        "acr_values": ["urn:acr:strong"],
        "expires_at": "2030-01-02T03:04:05Z",
        "approval_url": "https://op.example.com/ciba/42/",
    }
    # compact separators, UTF-8 rather than \u escapes
    assert body == json.dumps(json.loads(body), separators=(",", ":"), ensure_ascii=False).encode()
    assert "Zahle 10 €".encode() in body
    signature = headers["X-Ciba-Signature"]
    expected = hmac.new(SECRET.encode(), f"{NOW}.".encode() + body, hashlib.sha256).hexdigest()
    assert signature == f"t={NOW},v1={expected}"
    assert verify_signature(SECRET, signature, body, now=NOW + 10)


def test_webhook_never_sends_the_secret_and_uses_the_configured_header(outbound):
    WebhookBackend(url=URL, secret=SECRET, header_name="X-Push-Signature").notify(make_notification())
    [(_, body, headers)] = outbound.calls
    assert list(headers) == ["X-Push-Signature"]
    assert SECRET not in body.decode() and SECRET not in repr(headers)


def test_webhook_expiry_is_utc():
    from django_ciba.backends.webhook import build_payload

    expires_at = EXPIRES_AT.astimezone(timezone(timedelta(hours=-5)))
    assert build_payload(make_notification(expires_at=expires_at))["expires_at"] == "2030-01-02T03:04:05Z"


@pytest.mark.parametrize("secret", [SECRET, SECRET.encode()])
def test_verify_signature_accepts_str_and_bytes_secrets(outbound, secret):
    WebhookBackend(url=URL, secret=secret).notify(make_notification())
    [(_, body, headers)] = outbound.calls
    assert verify_signature(SECRET, headers["X-Ciba-Signature"], body)
    assert verify_signature(SECRET.encode(), headers["X-Ciba-Signature"], body)


@pytest.fixture
def signed(outbound, frozen_time):
    WebhookBackend(url=URL, secret=SECRET).notify(make_notification())
    [(_, body, headers)] = outbound.calls
    return headers["X-Ciba-Signature"], body


def test_verify_signature_refuses_a_tampered_body(signed):
    header, body = signed
    assert not verify_signature(SECRET, header, body.replace(b'"id":42', b'"id":43'))
    assert not verify_signature(SECRET, header, body + b" ")


def test_verify_signature_refuses_the_wrong_secret(signed):
    header, body = signed
    assert not verify_signature("t" * 40, header, body, now=NOW)


def test_verify_signature_refuses_stale_and_future_timestamps(signed):
    header, body = signed
    assert verify_signature(SECRET, header, body, now=NOW + 300)
    assert not verify_signature(SECRET, header, body, now=NOW + 301)
    assert not verify_signature(SECRET, header, body, now=NOW - 301)
    assert not verify_signature(SECRET, header, body, now=NOW + 60, tolerance=30)


def test_verify_signature_refuses_a_moved_timestamp(signed):
    header, body = signed
    moved = header.replace(f"t={NOW}", f"t={NOW + 100}")
    assert not verify_signature(SECRET, moved, body, now=NOW + 100)


def test_verify_signature_accepts_any_matching_v1_entry(signed):
    header, body = signed
    timestamp, v1 = header.split(",")
    assert verify_signature(SECRET, f"{timestamp},v1={'0' * 64},{v1}", body, now=NOW)
    assert verify_signature(SECRET, f"{v1}, {timestamp}", body, now=NOW)


@pytest.mark.parametrize(
    "header",
    [
        "",
        "garbage",
        "v1=abc",
        f"t={NOW}",
        f"t=abc,v1={'0' * 64}",
        f"t={NOW},t={NOW},v1=00",
        f"t=-{NOW},v1=00",
    ],
)
def test_verify_signature_refuses_malformed_headers(header):
    assert not verify_signature(SECRET, header, b"{}", now=NOW)


def test_verify_signature_refuses_an_empty_secret():
    with pytest.raises(ValueError):
        verify_signature("", f"t={NOW},v1=00", b"{}", now=NOW)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (200, None),
        (202, None),
        (204, None),
        (500, NotificationError),
        (503, NotificationError),
        (429, NotificationError),
        (408, NotificationError),
        (301, PermanentNotificationError),
        (400, PermanentNotificationError),
        (401, PermanentNotificationError),
        (404, PermanentNotificationError),
    ],
)
def test_webhook_status_mapping(outbound, status, expected):
    outbound.status = status
    backend = WebhookBackend(url=URL, secret=SECRET)
    if expected is None:
        backend.notify(make_notification())
        return
    with pytest.raises(expected) as excinfo:
        backend.notify(make_notification())
    assert isinstance(excinfo.value, PermanentNotificationError) is (expected is PermanentNotificationError)
    assert str(status) in str(excinfo.value)
    # A 429's Retry-After travels with the error so the retry waits at least that long.
    assert getattr(excinfo.value, "retry_after", None) == (7.0 if status == 429 else None)


def test_webhook_transport_errors_are_transient(outbound):
    outbound.error = outbound.TransportError("connection reset")
    with pytest.raises(NotificationError) as excinfo:
        WebhookBackend(url=URL, secret=SECRET).notify(make_notification())
    assert not isinstance(excinfo.value, PermanentNotificationError)
    assert excinfo.value.__cause__ is outbound.error


def test_webhook_unsafe_destinations_are_permanent(outbound):
    outbound.error = outbound.UnsafeDestination("127.0.0.1 is not public")
    with pytest.raises(PermanentNotificationError) as excinfo:
        WebhookBackend(url="https://localhost/", secret=SECRET).notify(make_notification())
    assert excinfo.value.__cause__ is outbound.error


@pytest.mark.parametrize("options", [{"secret": SECRET}, {"url": URL}])
def test_webhook_without_url_or_secret_fails_permanently_without_sending(outbound, options):
    with pytest.raises(PermanentNotificationError):
        WebhookBackend(**options).notify(make_notification())
    assert outbound.calls == []


def test_webhook_secret_stays_out_of_repr_and_errors(outbound):
    backend = WebhookBackend(url=URL, secret=SECRET)
    assert SECRET not in repr(backend) and URL in repr(backend)
    outbound.status = 400
    with pytest.raises(PermanentNotificationError) as excinfo:
        backend.notify(make_notification())
    assert SECRET not in str(excinfo.value)
    assert all(SECRET not in message.msg for message in WebhookBackend(url=URL, secret="short").check())


def test_webhook_refuses_an_invalid_header_name():
    with pytest.raises(CibaConfigurationError, match="header_name"):
        WebhookBackend(url=URL, secret=SECRET, header_name="X-Sig\r\nEvil")


def test_webhook_options_come_from_the_setting(outbound):
    with backend_setting("django_ciba.backends.webhook.WebhookBackend", url=URL, secret=SECRET):
        get_backend().notify(make_notification())
    assert outbound.calls[0][0] == URL


def test_webhook_check_accepts_a_good_configuration(outbound):
    assert WebhookBackend(url=URL, secret=SECRET).check() == []


@pytest.mark.parametrize(
    "options, check_ids",
    [
        ({"secret": SECRET}, {"django_ciba.E030"}),
        ({"url": URL}, {"django_ciba.E191"}),
        ({}, {"django_ciba.E030", "django_ciba.E191"}),
        ({"url": URL, "secret": 12345}, {"django_ciba.E191"}),
    ],
)
def test_webhook_check_needs_url_and_secret(outbound, options, check_ids):
    # E030: no url; E191: no secret.
    messages = WebhookBackend(**options).check()
    assert {message.id for message in messages} == check_ids
    assert all(message.is_serious() for message in messages)


def test_webhook_check_refuses_an_unsafe_url(outbound):
    outbound.refused.add("http://10.0.0.1/push")
    [message] = WebhookBackend(url="http://10.0.0.1/push", secret=SECRET).check()
    assert message.id == "django_ciba.E190" and message.is_serious()
    assert "private address" in message.msg


def test_webhook_check_ignores_transient_lookup_failures(outbound, monkeypatch):
    def unreachable(url):
        raise outbound.TransportError("DNS lookup timed out")

    monkeypatch.setattr(outbound, "validate_endpoint_url", unreachable)
    assert WebhookBackend(url=URL, secret=SECRET).check() == []


def test_webhook_check_warns_about_a_short_secret(outbound):
    [message] = WebhookBackend(url=URL, secret="x" * 31).check()
    assert message.id == "django_ciba.W031" and not message.is_serious()
    assert WebhookBackend(url=URL, secret="x" * 32).check() == []


def test_the_real_outbound_module_provides_what_the_webhook_uses():
    outbound = pytest.importorskip("django_ciba.core.outbound")
    for name in ("post_json", "validate_endpoint_url"):
        assert callable(getattr(outbound, name))
    for name in ("UnsafeDestination", "TransportError"):
        assert issubclass(getattr(outbound, name), outbound.OutboundError)
