"""What the user reads about the authorization details (RFC 9396) they approve: the per-type
templates, the generic fallback, hostile strings, locale amounts, the approval pages and every
notification backend."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.conf import settings
from django.core import mail
from django.test import override_settings
from django.utils import translation

from django_ciba.backends.console import ConsoleBackend
from django_ciba.backends.email import EmailBackend
from django_ciba.backends.webhook import build_payload as webhook_payload
from django_ciba.backends.webpush import MAX_DETAILS_SUMMARY, MAX_PLAINTEXT, WebPushBackend
from django_ciba.checks.authorization_details import check_authorization_details_settings
from django_ciba.core import details_rendering as rendering
from django_ciba.core.authorization_schemas import AGENT_ACTION
from django_ciba.core.authorization_schemas import PAYMENT as PAYMENT_SCHEMA
from django_ciba.core.authorization_types import check_detail
from django_ciba.delivery.worker import build_notification
from django_ciba.models import AuthenticationRequest
from tests.unit.approvals import make_request
from tests.unit.test_backends import make_notification


SCRIPT = "<script>alert(1)</script>"
RLO = "\u202e"
PAYMENT = {
    "type": "payment_initiation",
    "instructedAmount": {"currency": "EUR", "amount": "1234.56"},
    "creditorName": "Müller GmbH",
    "creditorAccount": {"iban": "DE02100100109307118603"},
    "remittanceInformationUnstructured": "Invoice 42",
}
SECOND_PAYMENT = {
    **PAYMENT,
    "instructedAmount": {"currency": "EUR", "amount": "9.00"},
    "creditorName": "Bäckerei Schmidt",
}
HOSTILE_PAYMENT = {
    **PAYMENT,
    "creditorName": f"Evil {SCRIPT}{RLO}moc.knab",
    "creditorAccount": {"iban": "DE1"},
}
AGENT = {
    "type": "agent_action",
    "agent": {"name": "Travel Assistant", "client_id": "agent-platform-7", "operator": "Agents Inc."},
    "action": "book",
    "resource": "flight LH 123",
    "limits": {"max_amount": {"currency": "EUR", "amount": "2500"}},
}
ACCOUNTS = {"type": "accounts", "actions": ["read"], "identifier": "acc-1"}
TYPES = {
    "payment_initiation": {
        "SCHEMA": PAYMENT_SCHEMA,
        "TEMPLATE": rendering.PAYMENT_HTML,
        "TEXT_TEMPLATE": rendering.PAYMENT_TEXT,
        "SUBSET": True,
    },
    "agent_action": {
        "SCHEMA": AGENT_ACTION,
        "TEMPLATE": rendering.AGENT_ACTION_HTML,
        "TEXT_TEMPLATE": rendering.AGENT_ACTION_TEXT,
    },
    "accounts": {"SCHEMA": {"type": "object"}},
}
SITE_TEMPLATES = Path(__file__).parent / "templates_details"


@pytest.fixture
def types(ciba_settings):
    ciba_settings.set(AUTHORIZATION_DETAILS={"TYPES": TYPES})
    return ciba_settings


def site_templates():
    engine = {**settings.TEMPLATES[0], "DIRS": [str(SITE_TEMPLATES)]}
    return override_settings(TEMPLATES=[engine])


# --- the module ---------------------------------------------------------------------------------


def test_the_shipped_schemas_accept_the_examples(types):
    for detail in (PAYMENT, SECOND_PAYMENT, AGENT):
        check_detail(detail["type"], detail)


@pytest.mark.parametrize(
    ("language", "expected"),
    [("en", "1,234.56 EUR"), ("de", "1.234,56 EUR")],
)
def test_amounts_follow_the_active_language(types, language, expected):
    with translation.override(language):
        assert rendering.format_amount("1234.56", "EUR") == expected
        assert expected in rendering.render_detail(PAYMENT)
        assert expected in rendering.render_detail(PAYMENT, text=True)


@pytest.mark.parametrize(
    ("amount", "shown"),
    [
        ("1234567.5", "1,234,567.5 EUR"),
        ("0.10", "0.10 EUR"),
        ("1e400", "1e400 EUR"),  # not a plain decimal: as sent, never expanded
        ("12,50", "12,50 EUR"),
        ("NaN", "NaN EUR"),
        ("9" * 40, "9" * 40 + " EUR"),
    ],
)
def test_amounts_are_decimals_or_shown_as_sent(amount, shown):
    with translation.override("en"):
        assert rendering.format_amount(amount, "EUR") == shown


def test_float_rounding_never_touches_an_amount():
    with translation.override("en"):
        assert rendering.format_amount("0.30000000", "EUR") == "0.30000000 EUR"
        assert rendering.format_amount("123456789012345678.12", "EUR") == "123,456,789,012,345,678.12 EUR"


def test_hostile_strings_are_escaped_in_html_and_cleaned_in_text(types):
    with translation.override("en"):
        html = rendering.render_detail(HOSTILE_PAYMENT)
        text = rendering.render_detail(HOSTILE_PAYMENT, text=True)
    assert SCRIPT not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert RLO not in html and RLO not in text  # no reordering of what the user reads
    assert "moc.knab" in text


def test_the_generic_template_lists_members_of_an_unknown_type_escaped_and_bounded(types):
    detail = {
        "type": f"unknown{SCRIPT}",
        "nested": {"deeper": {"deepest": {"bottom": {"x": "hidden"}}}},
        "list": list(range(100)),
        "long": "A" * 5000,
        "flag": True,
        "markup": SCRIPT,
    }
    html = rendering.render_detail(detail)
    text = rendering.render_detail(detail, text=True)
    assert "<script>" not in html
    assert html.count("&lt;script&gt;") == 2
    assert "nested.deeper.deepest.bottom" in html and "hidden" not in html  # depth bounded
    assert "19, …" in html and "20," not in html  # arrays bounded
    assert "A" * rendering.MAX_STRING not in text and "A" * 100 in text
    assert "flag: yes" in text
    assert len(text) < 2000


def test_a_type_template_wins_then_the_site_template_then_the_generic(ciba_settings):
    named = {
        "payment_initiation": {"SCHEMA": {"type": "object"}},
        "accounts": {
            "SCHEMA": {"type": "object"},
            "TEMPLATE": "site/accounts.html",
            "TEXT_TEMPLATE": "site/accounts.txt",
        },
    }
    ciba_settings.set(AUTHORIZATION_DETAILS={"TYPES": named})
    with site_templates():
        assert "NAMED acc-1" in rendering.render_detail(ACCOUNTS)
        assert rendering.render_detail(ACCOUNTS, text=True) == "named text acc-1"
        assert "SITE-OWN Müller GmbH" in rendering.render_detail(PAYMENT)
        assert rendering.render_detail(PAYMENT, text=True) == "site text Müller GmbH"
        assert "detail--generic" in rendering.render_detail({"type": "other", "a": "b"})
    assert "detail--generic" in rendering.render_detail(PAYMENT)  # without the site's templates


def test_a_type_name_never_becomes_a_template_path(ciba_settings):
    ciba_settings.set(AUTHORIZATION_DETAILS={"TYPES": {}})
    html = rendering.render_detail({"type": "../pages/detail", "a": "b"})
    assert "detail--generic" in html


def test_the_agent_action_template_shows_who_acts(types):
    with translation.override("en"):
        text = rendering.render_detail(AGENT, text=True)
        html = rendering.render_detail(AGENT)
    assert text == "Travel Assistant (Agents Inc.) asks to book: flight LH 123, at most 2,500 EUR"
    assert "agent-platform-7" in html


def test_the_summary_is_bounded_and_cut_cleanly(types):
    details = [PAYMENT] * 30
    with translation.override("en"):
        summary = rendering.text_summary(details, limit=200)
    assert len(summary) <= 200
    assert summary.endswith("…")


@pytest.mark.parametrize(
    ("key", "check_id"), [("TEMPLATE", "django_ciba.E250"), ("TEXT_TEMPLATE", "django_ciba.E251")]
)
@pytest.mark.parametrize("value", ["no/such/template.html", 7, ""])
def test_template_names_must_load(ciba_settings, key, check_id, value):
    ciba_settings.set(AUTHORIZATION_DETAILS={"TYPES": {"t": {"SCHEMA": {"type": "object"}, key: value}}})
    assert [error.id for error in check_authorization_details_settings()] == [check_id]


def test_shipped_template_names_pass_the_checks(types):
    assert check_authorization_details_settings() == []


# --- the approval pages ---------------------------------------------------------------------------


@pytest.fixture
def asked(app, user, types):
    return make_request(app, user, authorization_details=[PAYMENT, HOSTILE_PAYMENT, ACCOUNTS])


def detail_url(pk):
    return f"/o/ciba/requests/{pk}/"


@pytest.mark.django_db
def test_the_page_shows_each_detail_escaped_with_a_checkbox_when_it_may_be_left_out(client, user, asked):
    client.force_login(user)
    with translation.override("de"):
        page = client.get(detail_url(asked.pk), HTTP_ACCEPT_LANGUAGE="de").content.decode()
    assert SCRIPT not in page and "&lt;script&gt;" in page
    assert page.count('name="authorization_detail"') == 2  # the accounts detail is always included
    assert 'value="0" id="detail-0" checked' in page and 'value="1" id="detail-1" checked' in page
    assert "acc-1" in page


@pytest.mark.django_db
def test_the_page_uses_the_requests_language_for_amounts(client, user, asked, settings):
    settings.LANGUAGES = [("en", "English"), ("de", "German")]
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, "django.middleware.locale.LocaleMiddleware"]
    client.force_login(user)
    german = client.get(detail_url(asked.pk), HTTP_ACCEPT_LANGUAGE="de").content.decode()
    english = client.get(detail_url(asked.pk), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "1.234,56 EUR" in german
    assert "1,234.56 EUR" in english


@pytest.mark.django_db
def test_the_list_summarises_the_details_escaped(client, user, asked):
    client.force_login(user)
    with translation.override("en"):
        page = client.get("/o/ciba/requests/").content.decode()
    assert "Payment 1,234.56 EUR to Müller GmbH" in page
    assert SCRIPT not in page and "&lt;script&gt;" in page


@pytest.mark.django_db
def test_approving_a_ticked_subset(client, user, asked):
    client.force_login(user)
    response = client.post(detail_url(asked.pk), {"action": "approve", "authorization_detail": ["1"]})
    assert response.status_code == 302
    asked.refresh_from_db()
    assert asked.status == AuthenticationRequest.Status.APPROVED
    assert asked.granted_authorization_details == [HOSTILE_PAYMENT, ACCOUNTS]  # accounts: required


@pytest.mark.django_db
@pytest.mark.parametrize("ticked", [[], ["7"], ["x"], ["-1"], ["1" * 50]])
def test_a_refused_choice_is_shown_on_the_page(client, user, app, ticked, ciba_settings):
    ciba_settings.set(AUTHORIZATION_DETAILS={"TYPES": TYPES})
    only_payments = make_request(app, user, authorization_details=[PAYMENT, SECOND_PAYMENT])
    client.force_login(user)
    response = client.post(
        detail_url(only_payments.pk), {"action": "approve", "authorization_detail": ticked}
    )
    assert response.status_code == 400
    assert 'role="alert"' in response.content.decode()
    only_payments.refresh_from_db()
    assert only_payments.status == AuthenticationRequest.Status.PENDING


@pytest.mark.django_db
def test_a_request_without_details_is_approved_as_before(client, user, app, types):
    plain = make_request(app, user)
    client.force_login(user)
    page = client.get(detail_url(plain.pk)).content.decode()
    assert "authorization_detail" not in page
    assert client.post(detail_url(plain.pk), {"action": "approve"}).status_code == 302


@pytest.mark.django_db
def test_long_waits_show_the_expiry_date(client, user, app, types):
    from datetime import timedelta

    from django.utils import timezone

    later = timezone.now() + timedelta(hours=30)
    long = make_request(app, user, expires_at=later)
    client.force_login(user)
    page = client.get(detail_url(long.pk)).content.decode()
    with translation.override(settings.LANGUAGE_CODE):
        from django.utils.formats import date_format

        shown = date_format(timezone.localtime(later), "DATETIME_FORMAT")
    assert shown in page


# --- the notification backends ---------------------------------------------------------------------


def notification(**changes):
    return make_notification(authorization_details=(PAYMENT, HOSTILE_PAYMENT), **changes)


def test_the_email_lists_the_details_as_inert_text(types, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    EmailBackend().notify(notification())
    body = mail.outbox[-1].body
    assert mail.outbox[-1].content_subtype == "plain"
    assert "Payment 1,234.56 EUR to Müller GmbH" in body
    assert RLO not in body
    assert "moc.knab" in body


def test_the_email_follows_the_users_language(types, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.LANGUAGES = [("en", "English"), ("de", "German")]
    user = make_notification().user
    user.language = "de"
    EmailBackend().notify(notification(user=user))
    assert "1.234,56 EUR" in mail.outbox[-1].body
    user.language = "xx-nonsense"
    EmailBackend().notify(notification(user=user))
    assert "1,234.56 EUR" in mail.outbox[-1].body  # LANGUAGE_CODE


def test_the_console_shows_each_detail_without_control_characters(types):
    stream = io.StringIO()
    ConsoleBackend(stream=stream).notify(notification())
    text = stream.getvalue()
    assert "Detail: Payment 1,234.56 EUR to Müller GmbH" in text
    assert RLO not in text


def test_the_webhook_carries_the_details_as_data_and_a_summary(types):
    payload = webhook_payload(notification())
    assert payload["authorization_details"] == [PAYMENT, HOSTILE_PAYMENT]
    summary = payload["authorization_details_summary"]
    assert summary.startswith("Payment 1,234.56 EUR to Müller GmbH") and RLO not in summary
    assert "authorization_details" not in webhook_payload(make_notification())


def test_web_push_bodies_carry_a_bounded_summary(types):
    backend = WebPushBackend()
    payload = backend.build_payload(notification())
    assert "Payment 1,234.56 EUR to Müller GmbH" in payload["body"]
    assert RLO not in payload["body"]
    many = backend.build_payload(make_notification(authorization_details=(PAYMENT,) * 32))
    summary = many["body"].split("\n", 1)[1]
    assert len(summary) <= MAX_DETAILS_SUMMARY and summary.endswith("…")
    assert len(backend.encode_payload(many)) <= MAX_PLAINTEXT
    private = WebPushBackend(include_details=False).build_payload(notification())
    assert "Payment" not in private["body"]


@pytest.mark.django_db
def test_the_worker_passes_the_details_to_the_backend(app, user, types):
    auth_request = make_request(app, user, authorization_details=[PAYMENT])
    assert build_notification(auth_request).authorization_details == (PAYMENT,)
