"""Abuse controls at the backchannel endpoint (SEC-07, SEC-08, UC-06).

Stub to be completed (issue 6): per-client and per-user rate limits, a cap on pending requests
per user, user_code brute-force lockout, abuse-report thresholds.
"""

from __future__ import annotations

from typing import Any

from .conf import ciba_settings
from .exceptions import InvalidUserCode, MissingUserCode
from .models import CibaClient


def check_client(application: Any, *, request: Any = None) -> None:
    """Refuse the request early when the client is over its limits (before any user lookup)."""


def check_user(application: Any, user: Any, *, request: Any = None) -> None:
    """Refuse the request when the hinted user may not be asked again now."""


def user_code_required(ciba: CibaClient) -> bool:
    return bool(ciba_settings.USER_CODE_SUPPORTED and ciba.user_code_parameter)


def check_user_code(ciba: CibaClient, user: Any, user_code: str | None, *, application: Any = None) -> None:
    """UC-02 / UC-03: required for clients registered for user codes, checked by the hook."""
    if not user_code_required(ciba):
        return
    if user_code is None:
        raise MissingUserCode()
    verifier = ciba_settings.USER_CODE_VERIFIER
    if verifier is None or not verifier(user, user_code):
        raise InvalidUserCode()
