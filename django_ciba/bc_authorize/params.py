"""Parsing and per-parameter rules of the backchannel authentication request (BC-*, AERR-*)."""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import parse_qsl

from django_ciba.core.conf import ciba_settings
from django_ciba.core.constants import CLIENT_NOTIFICATION_TOKEN_MAX_LENGTH
from django_ciba.exceptions import InvalidBindingMessage, InvalidRequest, InvalidScope


MAX_FIELDS = 100
# requested_expiry is stored in a 32-bit column; larger requests are clamped (and capped later).
MAX_STORED_EXPIRY = 2**31 - 1
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
# RFC 6749 §3.3 scope-token: 1*( %x21 / %x23-5B / %x5D-7E )
_SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]+$")
# RFC 6750 §2.1 b64token
_B64TOKEN = re.compile(r"^[A-Za-z0-9\-._~+/]+=*$")
# Digits only (no sign, no Unicode digits); long values are capped later, not refused.
_POSITIVE_INT = re.compile(r"^[0-9]{1,30}$")
# Characters a device cannot show faithfully: controls, surrogates, private use, unassigned.
_UNSHOWABLE_CATEGORIES = frozenset({"Cc", "Cs", "Co", "Cn", "Zl", "Zp"})
# Bidirectional overrides and isolates reorder what the user reads (spoofing); always refused.
_BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def parse_form(content_type: str, body: bytes) -> dict[str, str]:
    """Decode an ``application/x-www-form-urlencoded`` UTF-8 body strictly (BC-02).

    A parameter sent twice, undecodable bytes, or another content type is ``invalid_request``.
    Parameters sent without a value are treated as omitted (RFC 6749 §3.1).
    """
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type != FORM_CONTENT_TYPE:
        raise InvalidRequest("The request body must be application/x-www-form-urlencoded.")
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(
            text, keep_blank_values=True, strict_parsing=False, errors="strict", max_num_fields=MAX_FIELDS
        )
    except UnicodeDecodeError:
        raise InvalidRequest("The request body is not valid UTF-8.")
    except ValueError:
        raise InvalidRequest("Too many parameters.")
    form: dict[str, str] = {}
    repeated: set[str] = set()
    for key, value in pairs:
        if key in form:
            repeated.add(key)
        form[key] = value
    if repeated:
        raise InvalidRequest(f"Repeated parameter: {', '.join(sorted(repeated))}.")
    if any("\x00" in key or "\x00" in value for key, value in form.items()):
        raise InvalidRequest("Parameters must not contain NUL characters.")
    return {key: value for key, value in form.items() if value != ""}


def parse_scope(raw: str | None) -> list[str]:
    """BC-05: scope is required and contains openid; tokens follow RFC 6749 §3.3."""
    if not raw:
        raise InvalidRequest("The scope parameter is required.")
    scopes = raw.split(" ")
    if any(not _SCOPE_TOKEN.match(scope) for scope in scopes):
        raise InvalidScope("The scope parameter is malformed.")
    unique = list(dict.fromkeys(scopes))
    if "openid" not in unique:
        raise InvalidRequest("The scope must contain openid.")
    return unique


def check_binding_message(message: str | None) -> str:
    """BC-09 / AERR-08: a message the authentication device can show, within the configured rules."""
    if message is None:
        if ciba_settings.BINDING_MESSAGE_REQUIRED:
            # A missing required parameter is invalid_request (AERR-01), not invalid_binding_message.
            raise InvalidRequest("A binding_message is required.")
        return ""
    if len(message) > int(ciba_settings.BINDING_MESSAGE_MAX_LENGTH):
        raise InvalidBindingMessage(
            f"The binding_message is longer than {int(ciba_settings.BINDING_MESSAGE_MAX_LENGTH)} characters."
        )
    if not message.strip():
        raise InvalidBindingMessage("The binding_message is blank.")
    if any(
        unicodedata.category(char) in _UNSHOWABLE_CATEGORIES or char in _BIDI_CONTROLS for char in message
    ):
        raise InvalidBindingMessage("The binding_message contains characters that cannot be displayed.")
    pattern = ciba_settings.BINDING_MESSAGE_PATTERN
    if pattern and not re.fullmatch(pattern, message):
        raise InvalidBindingMessage("The binding_message contains characters that are not allowed.")
    return message


def parse_requested_expiry(raw: str | None) -> int | None:
    """BC-11: a positive integer (sent as a string in a form)."""
    if raw is None:
        return None
    value = raw.strip()
    if not _POSITIVE_INT.match(value) or int(value) <= 0:
        raise InvalidRequest("requested_expiry must be a positive integer.")
    return min(int(value), MAX_STORED_EXPIRY)


def check_client_notification_token(raw: str | None, required: bool) -> str:
    """BC-06: required for ping and push, RFC 6750 b64token syntax, at most 1024 characters."""
    if not required:
        return ""
    if raw is None:
        raise InvalidRequest("client_notification_token is required for ping and push clients.")
    if len(raw) > CLIENT_NOTIFICATION_TOKEN_MAX_LENGTH:
        raise InvalidRequest("client_notification_token is longer than 1024 characters.")
    if not _B64TOKEN.match(raw):
        raise InvalidRequest("client_notification_token is not a valid bearer token.")
    return raw
