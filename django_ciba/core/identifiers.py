"""auth_req_id generation and hashing. Only the hash is ever stored (ACK-03, SEC-02)."""

from __future__ import annotations

import hashlib
import secrets

from django_ciba.core.conf import ciba_settings


def new_auth_req_id() -> str:
    """A fresh auth_req_id: URL-safe base64 of CSPRNG bytes (``[A-Za-z0-9_-]``, ACK-02).

    Ids starting with ``-`` are drawn again, so command-line tools never mistake one for an
    option (this drops under 1 bit of the 256).
    """
    size = max(16, int(ciba_settings.AUTH_REQ_ID_BYTES))
    while True:
        value = secrets.token_urlsafe(size)
        if not value.startswith("-"):
            return value


def hash_auth_req_id(auth_req_id: str) -> str:
    """The SHA-256 hex digest under which an auth_req_id is stored and looked up."""
    return hashlib.sha256(auth_req_id.encode("utf-8", "surrogatepass")).hexdigest()
