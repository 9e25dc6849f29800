"""Server nonces for DPoP proofs (RFC 9449 §8, §9), without server-side state.

A nonce is an HMAC of the current time window under a key derived from ``SECRET_KEY``: every app
server computes the same value, nothing is stored, and a nonce stops being accepted one window
after the one that issued it (``CIBA["DPOP"]["NONCE_LIFETIME"]`` seconds per window). The value
says nothing about the time to the client; the client just echoes it.
"""

from __future__ import annotations

import time

from django.utils.crypto import salted_hmac

from django_ciba.core.conf import ciba_settings


SALT = "django_ciba.tokens.dpop_nonces"


def _nonce(window: int) -> str:
    return salted_hmac(SALT, str(window), algorithm="sha256").hexdigest()[:43]


def _window(now: float) -> int:
    return int(now // max(1, int(ciba_settings.DPOP_NONCE_LIFETIME)))


def current(now: float | None = None) -> str:
    """The nonce to hand out now (``DPoP-Nonce`` response header)."""
    return _nonce(_window(time.time() if now is None else now))


def accepted(now: float | None = None) -> tuple[str, ...]:
    """The nonces a proof may carry now: this window's and the previous one's."""
    window = _window(time.time() if now is None else now)
    return (_nonce(window), _nonce(window - 1))


def required() -> bool:
    return bool(ciba_settings.DPOP_NONCE_REQUIRED)
