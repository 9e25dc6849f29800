"""System checks of signed requests, client assertions, JWK sets and subjects.

E050-E053 and E160-E164 (the fetching of JWK sets is checked in :mod:`django_ciba.checks.clients`).
"""

from __future__ import annotations

from typing import Any

from django.core import checks

from django_ciba.checks.values import positive_number
from django_ciba.core.conf import ciba_settings, setting_name
from django_ciba.exceptions import CibaConfigurationError


#: JWS algorithms PyJWT verifies with public keys (SIGNING_ALGORITHMS must stay within these).
ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
POSITIVE = "must be a positive number."


@checks.register()
def check_client_key_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Signed requests, client assertions, JWK sets, registration and subjects."""
    errors: list[checks.CheckMessage] = []
    try:
        _ = ciba_settings.user_settings
    except CibaConfigurationError:
        return []  # reported as E010 / E182
    algorithms = ciba_settings.SIGNING_ALGORITHMS
    if (
        not isinstance(algorithms, list | tuple)
        or not algorithms
        or any(algorithm not in ASYMMETRIC_ALGORITHMS for algorithm in algorithms)
    ):
        errors.append(
            checks.Error(
                "CIBA['SIGNING_ALGORITHMS'] must be a non-empty list of asymmetric JWS algorithms "
                f"({', '.join(sorted(ASYMMETRIC_ALGORITHMS))}); none and HS* are never accepted.",
                id="django_ciba.E050",
            )
        )
    errors.extend(_lifetimes())
    types = ciba_settings.SUBJECT_TYPES_SUPPORTED
    if (
        not isinstance(types, list | tuple)
        or "public" not in types
        or not set(types) <= {"public", "pairwise"}
    ):
        errors.append(
            checks.Error(
                "CIBA['SUBJECT_TYPES_SUPPORTED'] must list public, and may add pairwise.",
                id="django_ciba.E052",
            )
        )
    salt = ciba_settings.PAIRWISE_SALT
    if salt is not None and not isinstance(salt, str | bytes):
        errors.append(checks.Error("CIBA['PAIRWISE_SALT'] must be None or a string.", id="django_ciba.E053"))
    return errors


def _lifetimes() -> list[checks.CheckMessage]:
    """E051, E160-E164: lifetimes of signed requests and assertions, the JWK set cache."""
    errors: list[checks.CheckMessage] = []
    if not positive_number(ciba_settings.REQUEST_OBJECT_MAX_LIFETIME):
        errors.append(
            checks.Error(f"{setting_name('REQUEST_OBJECT_MAX_LIFETIME')} {POSITIVE}", id="django_ciba.E051")
        )
    if not positive_number(ciba_settings.REQUEST_OBJECT_MAX_AGE):
        errors.append(
            checks.Error(f"{setting_name('REQUEST_OBJECT_MAX_AGE')} {POSITIVE}", id="django_ciba.E160")
        )
    if not positive_number(ciba_settings.CLIENT_ASSERTION_MAX_LIFETIME):
        errors.append(
            checks.Error(f"{setting_name('CLIENT_ASSERTION_MAX_LIFETIME')} {POSITIVE}", id="django_ciba.E161")
        )
    if not positive_number(ciba_settings.JWKS_CACHE_TTL):
        errors.append(checks.Error(f"{setting_name('JWKS_CACHE_TTL')} {POSITIVE}", id="django_ciba.E162"))
    if not positive_number(ciba_settings.JWKS_MAX_BYTES):
        errors.append(checks.Error(f"{setting_name('JWKS_MAX_BYTES')} {POSITIVE}", id="django_ciba.E163"))
    if not positive_number(ciba_settings.JWKS_REFRESH_INTERVAL):
        errors.append(
            checks.Error(f"{setting_name('JWKS_REFRESH_INTERVAL')} {POSITIVE}", id="django_ciba.E164")
        )
    return errors
