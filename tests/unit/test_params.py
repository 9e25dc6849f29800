"""Unit tests of bc_authorize.params and the error payload of django_ciba.exceptions (BC-*, AERR-*)."""

from __future__ import annotations

import re

import pytest

from django_ciba.bc_authorize.params import (
    check_binding_message,
    check_client_notification_token,
    parse_form,
    parse_requested_expiry,
    parse_scope,
)
from django_ciba.exceptions import (
    CibaError,
    InvalidBindingMessage,
    InvalidClient,
    InvalidRequest,
    InvalidScope,
    MethodNotAllowed,
    UnknownUserId,
)


FORM = "application/x-www-form-urlencoded"
DESCRIPTION_RE = re.compile(r"^[\x20-\x21\x23-\x5b\x5d-\x7e]*$")


# --- parse_form (BC-02, AERR-01)


def test_parse_form_decodes_utf8_and_plus():
    # BC-02: application/x-www-form-urlencoded, UTF-8.
    form = parse_form(FORM, b"scope=openid+profile&binding_message=%E6%94%AF%E4%BB%98&login_hint=a%40b.c")
    assert form == {"scope": "openid profile", "binding_message": "支付", "login_hint": "a@b.c"}


def test_parse_form_raw_utf8_bytes():
    # BC-02: UTF-8 bytes that are not percent-encoded are accepted too.
    assert parse_form(FORM, "binding_message=Müller".encode()) == {"binding_message": "Müller"}


@pytest.mark.parametrize(
    "content_type",
    [FORM, f"{FORM}; charset=UTF-8", "Application/X-WWW-Form-URLencoded", f"  {FORM}  ;charset=utf-8"],
)
def test_parse_form_content_type_variants(content_type):
    # BC-02: the media type is compared case-insensitively, parameters ignored.
    assert parse_form(content_type, b"scope=openid") == {"scope": "openid"}


@pytest.mark.parametrize(
    "content_type",
    ["", "application/json", "multipart/form-data; boundary=x", "text/plain", f"{FORM}x", "application/jwt"],
)
def test_parse_form_other_content_types(content_type):
    # BC-02 / AERR-01: anything but a form body is invalid_request.
    with pytest.raises(InvalidRequest):
        parse_form(content_type, b"scope=openid")


@pytest.mark.parametrize(
    "body",
    [b"scope=%ff", b"scope=\xff\xfe", b"%ff=openid", b"scope=%ed%a0%80", b"scope=%c3", b"scope=\xc3"],
    ids=["pct-ff", "raw-ff", "key-ff", "surrogate", "truncated-pct", "truncated-raw"],
)
def test_parse_form_invalid_utf8(body):
    # BC-02 / AERR-01: undecodable bytes (raw or percent-encoded) are invalid_request.
    with pytest.raises(InvalidRequest, match="UTF-8"):
        parse_form(FORM, body)


@pytest.mark.parametrize("body", [b"scope=openid&scope=profile", b"scope=openid&scope=openid", b"a=1&b=2&a="])
def test_parse_form_repeated_parameter(body):
    # AERR-01: a repeated parameter is invalid_request (even with equal or empty values).
    with pytest.raises(InvalidRequest, match="Repeated parameter"):
        parse_form(FORM, body)


@pytest.mark.parametrize("body", [b"scope=open%00id", b"sc%00ope=openid", b"scope=open\x00id"])
def test_parse_form_nul(body):
    # AERR-01: NUL characters are refused.
    with pytest.raises(InvalidRequest, match="NUL"):
        parse_form(FORM, body)


def test_parse_form_too_many_fields():
    # AERR-01: more than MAX_FIELDS parameters is invalid_request, not an unbounded parse.
    body = "&".join(f"p{i}=v" for i in range(101)).encode()
    with pytest.raises(InvalidRequest, match="Too many"):
        parse_form(FORM, body)
    assert len(parse_form(FORM, "&".join(f"p{i}=v" for i in range(100)).encode())) == 100


def test_parse_form_blank_values_are_omitted():
    # RFC 6749 §3.1: parameters sent without a value are treated as omitted.
    assert parse_form(FORM, b"scope=openid&login_hint=&binding_message&&") == {"scope": "openid"}


def test_parse_form_empty_body():
    # BC-02: an empty form is an empty dict (the missing parameters are reported later).
    assert parse_form(FORM, b"") == {}


def test_parse_form_keeps_unknown_parameters():
    # BC-14: unknown parameters are passed through (and ignored later).
    assert parse_form(FORM, b"scope=openid&foo=bar") == {"scope": "openid", "foo": "bar"}


# --- parse_scope (BC-05, AERR-02)


@pytest.mark.parametrize("raw", [None, ""])
def test_parse_scope_missing(raw):
    # BC-05: scope is required -> invalid_request.
    with pytest.raises(InvalidRequest):
        parse_scope(raw)


def test_parse_scope_without_openid():
    # BC-05: openid is required -> invalid_request (not invalid_scope).
    with pytest.raises(InvalidRequest) as excinfo:
        parse_scope("profile email")
    assert type(excinfo.value) is InvalidRequest


def test_parse_scope_order_and_duplicates():
    # BC-05: any order; duplicates collapse, first occurrence kept.
    assert parse_scope("email openid profile email") == ["email", "openid", "profile"]


@pytest.mark.parametrize(
    "raw", ["openid  profile", " openid", "openid ", 'openid "x"', "openid a\\b", "openid é"]
)
def test_parse_scope_malformed(raw):
    # AERR-02: not 1*( %x21 / %x23-5B / %x5D-7E ) tokens separated by single spaces -> invalid_scope.
    with pytest.raises(InvalidScope):
        parse_scope(raw)


def test_parse_scope_accepts_all_scope_token_characters():
    # RFC 6749 §3.3: every allowed character is accepted syntactically.
    token = "".join(chr(c) for c in range(0x21, 0x7F) if c not in (0x22, 0x5C))
    assert parse_scope(f"openid {token}") == ["openid", token]


# --- check_binding_message (BC-09, AERR-08)


@pytest.mark.parametrize(
    "message", ["1234", "Überweisung 42,00 €", "支付确认 ありがとう", "👍🏽❤️👨‍👩‍👧", "a" * 128]
)
def test_binding_message_accepted(message):
    # BC-09: short text, accents, CJK, emoji (with modifiers, VS16 and ZWJ) within 128 characters.
    assert check_binding_message(message) == message


def test_binding_message_absent():
    # BC-09: optional by default; absent means "".
    assert check_binding_message(None) == ""


@pytest.mark.parametrize(
    "message",
    [
        "a" * 129,
        "",
        "   ",
        "\x00",
        "a\nb",
        "a\rb",
        "a\tb",
        "\x7f",
        "\x85",
        "\u2028",
        "\u2029",
        "\ue000",
        "\U0010fffd",
    ],
    ids=["long", "empty", "blank", "nul", "lf", "cr", "tab", "del", "nel", "lsep", "psep", "pua", "pua-b"],
)
def test_binding_message_refused(message):
    # AERR-08 / SEC-09: too long, blank, control, separator or private-use characters.
    with pytest.raises(InvalidBindingMessage):
        check_binding_message(message)


def test_binding_message_unassigned_code_point():
    # AERR-08: an unassigned code point cannot be displayed.
    with pytest.raises(InvalidBindingMessage):
        check_binding_message("ok \U000e0080")


def test_binding_message_max_length_setting(ciba_settings):
    # BC-09: BINDING_MESSAGE_MAX_LENGTH counts characters, not bytes.
    ciba_settings.set(BINDING_MESSAGE_MAX_LENGTH=3)
    assert check_binding_message("支付确") == "支付确"
    with pytest.raises(InvalidBindingMessage, match="longer than 3"):
        check_binding_message("支付确认")


def test_binding_message_pattern_setting(ciba_settings):
    # BC-09: BINDING_MESSAGE_PATTERN must match the entire message.
    ciba_settings.set(BINDING_MESSAGE_PATTERN=r"[ -~]{3,300}")
    assert check_binding_message("Pay 42 EUR") == "Pay 42 EUR"
    for bad in ["ab", "Pay 42 €", "支付确认"]:
        with pytest.raises(InvalidBindingMessage):
            check_binding_message(bad)


def test_binding_message_required_setting(ciba_settings):
    # BC-09 / AERR-01: a required but missing binding_message is invalid_request.
    ciba_settings.set(BINDING_MESSAGE_REQUIRED=True)
    with pytest.raises(InvalidRequest) as excinfo:
        check_binding_message(None)
    assert excinfo.value.error == "invalid_request"
    assert check_binding_message("1234") == "1234"


# --- parse_requested_expiry (BC-11)


@pytest.mark.parametrize("raw, expected", [(None, None), ("30", 30), ("1", 1), (" 30 ", 30), ("0300", 300)])
def test_requested_expiry_valid(raw, expected):
    # BC-11: a positive integer, sent as a string in a form.
    assert parse_requested_expiry(raw) == expected


@pytest.mark.parametrize(
    "raw", ["0", "000", "-1", "+1", "1.0", "1e2", "abc", " ", "0x1f", "٣", "１２", "30 s"]
)
def test_requested_expiry_invalid(raw):
    # BC-11 / AERR-01: anything but a positive (ASCII) integer -> invalid_request.
    with pytest.raises(InvalidRequest):
        parse_requested_expiry(raw)


# --- check_client_notification_token (BC-06)


def test_notification_token_not_required_is_ignored():
    # BC-06: poll clients do not use it; nothing is kept.
    assert check_client_notification_token("anything at all", required=False) == ""
    assert check_client_notification_token(None, required=False) == ""


def test_notification_token_required_missing():
    # BC-06: required for ping and push.
    with pytest.raises(InvalidRequest):
        check_client_notification_token(None, required=True)


@pytest.mark.parametrize("token", ["a", "a" * 1024, "Abc-._~+/09", "abc==", "8Rk2x_1-Q.~+/z="])
def test_notification_token_valid(token):
    # BC-06: RFC 6750 §2.1 b64token up to 1024 characters.
    assert check_client_notification_token(token, required=True) == token


@pytest.mark.parametrize("token", ["a" * 1025, "a b", "a=b", "=", "a*", "ä", "a\tb", "a,b"])
def test_notification_token_invalid(token):
    # BC-06: longer than 1024 or outside the b64token syntax -> invalid_request.
    with pytest.raises(InvalidRequest):
        check_client_notification_token(token, required=True)


# --- error payload (section 8)


@pytest.mark.parametrize(
    "description",
    ['quote " backslash \\ done', "tab\tnewline\ncr\r", "ümlaut – 支付 😀", "\x00\x1f\x7f", "plain text"],
)
def test_error_description_character_set(description):
    # Section 8 / RFC 6749 §5.2: error_description holds only %x20-21 / %x23-5B / %x5D-7E.
    payload = InvalidRequest(description).payload
    assert set(payload) <= {"error", "error_description"}
    assert payload["error"] == "invalid_request"
    assert DESCRIPTION_RE.match(payload.get("error_description", ""))


def test_error_description_dropped_when_nothing_is_left():
    # Section 8: error_description is optional; an all-unsafe description is left out, not sent empty.
    assert InvalidRequest("支付").payload == {"error": "invalid_request"}


def test_error_description_kept_verbatim_when_safe():
    # Section 8: a safe description is sent unchanged.
    assert InvalidScope("Bad scope: x.").payload == {
        "error": "invalid_scope",
        "error_description": "Bad scope: x.",
    }


@pytest.mark.parametrize(
    "exc, error, status",
    [
        (InvalidRequest(), "invalid_request", 400),
        (InvalidClient(), "invalid_client", 401),
        (UnknownUserId(), "unknown_user_id", 400),
        (MethodNotAllowed(), "invalid_request", 405),
    ],
)
def test_error_codes_and_statuses(exc, error, status):
    # AERR-01, AERR-04, AERR-09, BC-02: error code and HTTP status of each error class.
    assert isinstance(exc, CibaError)
    assert exc.payload["error"] == error
    assert exc.status_code == status


def test_invalid_client_has_www_authenticate():
    # AERR-09: 401 comes with a WWW-Authenticate challenge.
    assert InvalidClient().headers["WWW-Authenticate"].startswith("Basic ")


# BC-09 / SEC-09: bidirectional overrides would make the device show a reordered message.
@pytest.mark.parametrize("char", ["\u202e", "\u202d", "\u2066", "\u2069", "\u200f", "\u061c"])
def test_binding_message_refuses_bidi_controls(char):
    with pytest.raises(InvalidBindingMessage):
        check_binding_message(f"Pay {char}0001 EUR")


def test_binding_message_keeps_joiners_in_emoji_sequences():
    # U+200D (zero-width joiner, category Cf) is part of ordinary emoji sequences.
    assert check_binding_message("family \U0001f468\u200d\U0001f469\u200d\U0001f467") != ""


# BC-11: a very long positive integer is accepted and clamped to what the column stores.
def test_requested_expiry_huge_value_is_clamped():
    assert parse_requested_expiry("1" + "0" * 20) == 2**31 - 1


def test_requested_expiry_unicode_digits_refused():
    with pytest.raises(InvalidRequest):
        parse_requested_expiry("\u0663\u0660")


# ACK-02: ids never start with "-" (command-line tools would read them as options).
def test_auth_req_ids_never_start_with_dash(monkeypatch):
    import secrets

    from django_ciba.core import identifiers

    values = iter(["-starts-with-dash-0123456789abcdef", "ok-0123456789abcdefghijklmnopqrstu"])
    monkeypatch.setattr(secrets, "token_urlsafe", lambda size: next(values))
    assert identifiers.new_auth_req_id() == "ok-0123456789abcdefghijklmnopqrstu"
