"""System checks of the security profile (E220-E223, W220-W224): ``CIBA["PROFILE"]`` and FAPI-CIBA.

Under ``PROFILE = "fapi-ciba"`` the endpoints enforce the profile whatever the other settings say
(:mod:`django_ciba.core.profiles`); these checks point at settings that contradict it (warnings:
the profile wins) or leave it unable to work (errors).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.core import checks
from django.db import DatabaseError

from django_ciba.core import profiles
from django_ciba.core.conf import ciba_settings
from django_ciba.exceptions import CibaConfigurationError


HINT = "See the FAPI-CIBA page of the django-ciba documentation."
#: How many client_ids W224 names at most (the rest are counted).
LISTED_CLIENTS = 20


@checks.register()
def check_profile_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """E220 (unknown profile); under FAPI-CIBA, E221-E223 and W220-W223."""
    try:
        _ = ciba_settings.user_settings
    except CibaConfigurationError:
        return []  # reported as E010 / E182
    profile = ciba_settings.PROFILE
    if profile is not None and profile not in profiles.PROFILES:
        return [
            checks.Error(
                f"CIBA['PROFILE'] must be None or one of {', '.join(profiles.PROFILES)}.",
                hint=HINT,
                id="django_ciba.E220",
            )
        ]
    if profile != profiles.FAPI_CIBA:
        return []
    return [*_fapi_errors(), *_fapi_warnings()]


def _fapi_errors() -> list[checks.CheckMessage]:
    errors: list[checks.CheckMessage] = []
    if not profiles.id_token_algorithms():
        errors.append(
            checks.Error(
                "CIBA['PROFILE'] is fapi-ciba, but CIBA['ID_TOKEN_SIGNING_KEYS'] has no key for PS256 "
                "or ES256: FAPI-CIBA ID tokens cannot be signed (FAPI-13).",
                hint=HINT,
                id="django_ciba.E221",
            )
        )
    if not ciba_settings.MTLS_TRUSTED_PROXIES and not ciba_settings.DPOP_ENABLED:
        errors.append(
            checks.Error(
                "CIBA['PROFILE'] is fapi-ciba, but neither CIBA['MTLS']['TRUSTED_PROXIES'] is set nor "
                "CIBA['DPOP']['ENABLED'] is on: no token can be sender-constrained (FAPI-15).",
                hint=HINT,
                id="django_ciba.E222",
            )
        )
    algorithms = ciba_settings.SIGNING_ALGORITHMS
    if isinstance(algorithms, list | tuple) and not set(algorithms) & set(profiles.FAPI_ALGORITHMS):
        errors.append(
            checks.Error(
                "CIBA['PROFILE'] is fapi-ciba, but CIBA['SIGNING_ALGORITHMS'] has neither PS256 nor "
                "ES256: no signed request or client assertion can be accepted (FAPI-13).",
                hint=HINT,
                id="django_ciba.E223",
            )
        )
    return errors


def _fapi_warnings() -> list[checks.CheckMessage]:
    warnings: list[checks.CheckMessage] = []
    modes = ciba_settings.DELIVERY_MODES
    if isinstance(modes, list | tuple) and profiles.FORBIDDEN_MODE in modes:
        warnings.append(
            checks.Warning(
                "CIBA['DELIVERY_MODES'] lists push, which CIBA['PROFILE'] fapi-ciba never offers "
                "(FAPI-03): remove it.",
                hint=HINT,
                id="django_ciba.W220",
            )
        )
    algorithms = ciba_settings.SIGNING_ALGORITHMS
    if isinstance(algorithms, list | tuple) and not set(algorithms) <= set(profiles.FAPI_ALGORITHMS):
        warnings.append(
            checks.Warning(
                "CIBA['SIGNING_ALGORITHMS'] lists algorithms besides PS256 and ES256, which "
                "CIBA['PROFILE'] fapi-ciba refuses (FAPI-13): remove them.",
                hint=HINT,
                id="django_ciba.W221",
            )
        )
    if _above(ciba_settings.REQUEST_OBJECT_MAX_LIFETIME, profiles.MAX_REQUEST_LIFETIME):
        warnings.append(
            checks.Warning(
                "CIBA['SIGNED_REQUESTS']['MAX_LIFETIME'] is above 3600 seconds; CIBA['PROFILE'] "
                "fapi-ciba caps it at 3600 (FAPI-09).",
                hint=HINT,
                id="django_ciba.W222",
            )
        )
    if _above(ciba_settings.REQUEST_OBJECT_MAX_AGE, profiles.MAX_REQUEST_AGE):
        warnings.append(
            checks.Warning(
                "CIBA['SIGNED_REQUESTS']['MAX_AGE'] is above 3600 seconds; CIBA['PROFILE'] "
                "fapi-ciba caps it at 3600 (FAPI-09).",
                hint=HINT,
                id="django_ciba.W223",
            )
        )
    return warnings


def _above(value: Any, limit: float) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > limit


@checks.register(checks.Tags.database)
def check_profile_clients(
    app_configs: Any = None, databases: Iterable[str] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """W224: enabled clients held to FAPI-CIBA whose registration breaks it (names client_ids only)."""
    from django_ciba.models import CibaClient

    try:
        _ = ciba_settings.user_settings
    except CibaConfigurationError:
        return []
    breaking: list[str] = []
    for alias in databases or ():
        try:
            rows = list(
                CibaClient.objects.using(alias)
                .filter(enabled=True)
                .select_related("application")
                .order_by("pk")
            )
        except DatabaseError:
            continue  # no tables yet (before the first migrate)
        breaking.extend(
            row.application.client_id
            for row in rows
            if profiles.fapi_applies(row) and profiles.registration_problems(profiles.client_metadata(row))
        )
    if not breaking:
        return []
    listed = ", ".join(breaking[:LISTED_CLIENTS])
    more = f" and {len(breaking) - LISTED_CLIENTS} more" if len(breaking) > LISTED_CLIENTS else ""
    return [
        checks.Warning(
            f"{len(breaking)} enabled client(s) held to FAPI-CIBA have a registration that breaks it "
            f"({listed}{more}): push mode, a client secret, an algorithm other than PS256/ES256, no "
            "request signing algorithm, or no sender-constrained tokens.",
            hint="Change them in the admin (the FAPI-CIBA page lists the rules); the endpoints refuse "
            "what the profile forbids.",
            id="django_ciba.W224",
        )
    ]
