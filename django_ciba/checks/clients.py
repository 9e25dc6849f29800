"""System checks of client JWK-set fetching and of stored pairwise sectors (E079, E085-E089, W085)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.core import checks
from django.db import DatabaseError

from django_ciba.core.conf import ciba_settings
from django_ciba.exceptions import CibaConfigurationError


HINT = "See the JWK set settings."
#: How many client_ids W085 names at most (the rest are counted).
LISTED_CLIENTS = 20


def _positive(value: Any, *, integer: bool = False) -> bool:
    kinds = int if integer else int | float
    return isinstance(value, kinds) and not isinstance(value, bool) and value > 0


@checks.register()
def check_jwks_fetch_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """The bounds of ``jwks_uri`` fetching (E079, E085-E089)."""
    errors: list[checks.CheckMessage] = []
    try:
        _ = ciba_settings.user_settings
    except CibaConfigurationError:
        return []  # reported as E010
    if not _positive(ciba_settings.JWKS_FETCH_TIMEOUT):
        errors.append(
            checks.Error(
                "CIBA['JWKS']['FETCH_TIMEOUT'] must be a positive number of seconds.",
                hint=HINT,
                id="django_ciba.E085",
            )
        )
    base, ceiling = ciba_settings.JWKS_FAILURE_BACKOFF, ciba_settings.JWKS_FAILURE_MAX_BACKOFF
    if not _positive(base):
        errors.append(
            checks.Error(
                "CIBA['JWKS']['FAILURE_BACKOFF'] must be a positive number of seconds.",
                hint=HINT,
                id="django_ciba.E086",
            )
        )
    if not _positive(ceiling):
        errors.append(
            checks.Error(
                "CIBA['JWKS']['FAILURE_MAX_BACKOFF'] must be a positive number of seconds.",
                hint=HINT,
                id="django_ciba.E079",
            )
        )
    if _positive(base) and _positive(ceiling) and base > ceiling:
        errors.append(
            checks.Error(
                "CIBA['JWKS']['FAILURE_BACKOFF'] must not exceed CIBA['JWKS']['FAILURE_MAX_BACKOFF'].",
                hint=HINT,
                id="django_ciba.E087",
            )
        )
    limit = ciba_settings.JWKS_FETCH_LIMIT
    if limit is not None and not (
        isinstance(limit, list | tuple)
        and len(limit) == 2
        and all(_positive(item, integer=True) for item in limit)
    ):
        errors.append(
            checks.Error(
                "CIBA['JWKS']['FETCH_LIMIT'] must be None or [fetches, seconds], two positive integers.",
                hint=HINT,
                id="django_ciba.E088",
            )
        )
    if not _positive(ciba_settings.JWKS_MAX_CONCURRENT_FETCHES, integer=True):
        errors.append(
            checks.Error(
                "CIBA['JWKS']['MAX_CONCURRENT_FETCHES'] must be a positive integer.",
                hint=HINT,
                id="django_ciba.E089",
            )
        )
    return errors


@checks.register(checks.Tags.database)
def check_pairwise_sectors(
    app_configs: Any = None, databases: Iterable[str] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """W085: stored pairwise clients whose sector is not proven (kept from an earlier version).

    A database check: it runs with ``migrate`` and ``check --database``. It names client_ids only.
    """
    from django_ciba.models import CibaClient, SubjectType
    from django_ciba.models.sectors import proven_sector

    unproven: list[str] = []
    for alias in databases or ():
        try:
            rows = list(
                CibaClient.objects.using(alias)
                .filter(subject_type=SubjectType.PAIRWISE)
                .select_related("application")
                .order_by("pk")
            )
        except DatabaseError:
            continue  # no tables yet (before the first migrate)
        unproven.extend(row.application.client_id for row in rows if not proven_sector(row))
    if not unproven:
        return []
    listed = ", ".join(unproven[:LISTED_CLIENTS])
    more = f" and {len(unproven) - LISTED_CLIENTS} more" if len(unproven) > LISTED_CLIENTS else ""
    return [
        checks.Warning(
            f"{len(unproven)} pairwise client(s) keep a sector they do not prove ({listed}{more}): "
            "another client naming the same jwks_uri or notification endpoint got, or gets, the same "
            "subjects.",
            hint="Let each switch to private_key_jwt with its jwks_uri, or register a "
            "sector_identifier_uri listing a URL it uses; see the pairwise subjects page.",
            id="django_ciba.W085",
        )
    ]
