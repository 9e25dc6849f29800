"""System checks of client JWK-set fetching (E085-E089)."""

from __future__ import annotations

from typing import Any

from django.core import checks

from .conf import ciba_settings
from .exceptions import CibaConfigurationError


def _positive(value: Any, *, integer: bool = False) -> bool:
    kinds = int if integer else int | float
    return isinstance(value, kinds) and not isinstance(value, bool) and value > 0


@checks.register()
def check_jwks_fetch_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """The bounds of ``jwks_uri`` fetching (E085-E089)."""
    errors: list[checks.CheckMessage] = []

    def error(message: str, number: int) -> None:
        errors.append(
            checks.Error(message, hint="See the JWK set settings.", id=f"django_ciba.E{number:03d}")
        )

    try:
        _ = ciba_settings.user_settings
    except CibaConfigurationError:
        return []  # reported as E010
    if not _positive(ciba_settings.JWKS_FETCH_TIMEOUT):
        error("CIBA['JWKS_FETCH_TIMEOUT'] must be a positive number of seconds.", 85)
    base, ceiling = ciba_settings.JWKS_FAILURE_BACKOFF, ciba_settings.JWKS_FAILURE_MAX_BACKOFF
    if not (_positive(base) and _positive(ceiling)):
        error(
            "CIBA['JWKS_FAILURE_BACKOFF'] and CIBA['JWKS_FAILURE_MAX_BACKOFF'] must be positive numbers "
            "of seconds.",
            86,
        )
    elif base > ceiling:
        error("CIBA['JWKS_FAILURE_BACKOFF'] must not exceed CIBA['JWKS_FAILURE_MAX_BACKOFF'].", 87)
    limit = ciba_settings.JWKS_FETCH_LIMIT
    if limit is not None and not (
        isinstance(limit, list | tuple)
        and len(limit) == 2
        and all(_positive(item, integer=True) for item in limit)
    ):
        error("CIBA['JWKS_FETCH_LIMIT'] must be None or [fetches, seconds], two positive integers.", 88)
    if not _positive(ciba_settings.JWKS_MAX_CONCURRENT_FETCHES, integer=True):
        error("CIBA['JWKS_MAX_CONCURRENT_FETCHES'] must be a positive integer.", 89)
    return errors
