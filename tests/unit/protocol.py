"""Shapes the CIBA spec fixes for the backchannel endpoint's answers (ACK-02, section 13)."""

import re


AUTH_REQ_ID_RE = re.compile(r"^[A-Za-z0-9_.\-]+$")
# RFC 6749 §5.2 / CIBA §13: error_description is %x20-21 / %x23-5B / %x5D-7E only.
DESCRIPTION_RE = re.compile(r"^[\x20-\x21\x23-\x5b\x5d-\x7e]+$")
CIBA_ERRORS = frozenset(
    {
        "invalid_request",
        "invalid_scope",
        "expired_login_hint_token",
        "unknown_user_id",
        "unauthorized_client",
        "missing_user_code",
        "invalid_user_code",
        "invalid_binding_message",
        "invalid_client",
        "access_denied",
    }
)
