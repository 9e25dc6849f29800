"""Sealing: authenticated encryption of the few secrets django-ciba must keep to deliver results.

Ping and push callbacks need the plaintext ``auth_req_id`` and ``client_notification_token`` long
after the backchannel request, and a push that is retried must resend the same token response.
These values are stored *sealed* (Fernet: AES-128-CBC with HMAC-SHA256), never in clear.

Keys come from ``CIBA["SEALING_KEYS"]`` (the first seals, all open), or are derived from
``SECRET_KEY`` and ``SECRET_KEY_FALLBACKS``, so rotating Django's secret key keeps working as long as
the old key stays in the fallbacks until pending requests are finished.
"""

from __future__ import annotations

import base64
import hashlib
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

from django_ciba.core.conf import ciba_settings
from django_ciba.exceptions import CibaConfigurationError


_CONTEXT = b"django-ciba sealing v1\x00"


def _fernet_key(secret: str | bytes) -> bytes:
    raw = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
    return base64.urlsafe_b64encode(hashlib.sha256(_CONTEXT + raw).digest())


def _secrets() -> tuple[str | bytes, ...]:
    configured = ciba_settings.SEALING_KEYS
    if configured is None:
        configured = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    if isinstance(configured, str | bytes) or not configured:
        raise CibaConfigurationError("CIBA['SEALING_KEYS'] must be a non-empty list of secrets.")
    return tuple(configured)


@lru_cache(maxsize=8)
def _cipher(secrets: tuple[str | bytes, ...]) -> MultiFernet:
    return MultiFernet([Fernet(_fernet_key(secret)) for secret in secrets])


def seal(value: str) -> str:
    """Encrypt and authenticate ``value``; the result is ASCII and safe to store."""
    return _cipher(_secrets()).encrypt(value.encode("utf-8")).decode("ascii")


def unseal(sealed: str) -> str:
    """Open a value made by :func:`seal`; raises :class:`UnsealError` when no key opens it."""
    try:
        return _cipher(_secrets()).decrypt(sealed.encode("ascii")).decode("utf-8")
    except (InvalidToken, UnicodeError, ValueError) as exc:
        raise UnsealError("A sealed value could not be opened (wrong or rotated SEALING_KEYS?).") from exc


class UnsealError(Exception):
    """A stored sealed value cannot be opened with the configured keys."""
