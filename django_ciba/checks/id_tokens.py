"""System checks of the ID token signing keys (``CIBA["ID_TOKEN_SIGNING_KEYS"]``): E200-E206, W200.

Each ID names one problem: E200 the setting is not a list (or its import string fails), E201 an
entry is not ``{"alg", "key", "kid"?}``, E202 an unknown algorithm, E203 a key that cannot be read,
E204 a key that does not fit its algorithm, E205 a kid used twice (with DOT's keys too), E206 a kid
that is not a non-empty string. W200 (a database check) lists clients registered with an algorithm
that has no key any more. Messages name positions, never key material.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.core import checks
from django.db import DatabaseError

from django_ciba.core import id_token_keys
from django_ciba.core.conf import ciba_settings, setting_name
from django_ciba.exceptions import CibaConfigurationError


#: How many client_ids W200 names at most (the rest are counted).
LISTED_CLIENTS = 10


def _problem(exc: id_token_keys.SigningKeyProblem) -> checks.CheckMessage:
    """The one message of ``exc``'s kind (a literal ID per problem)."""
    detail = str(exc)
    if exc.kind == "setting":
        return checks.Error(
            f"{setting_name('ID_TOKEN_SIGNING_KEYS')} must be a list or an import string: {detail}",
            id="django_ciba.E200",
        )
    if exc.kind == "entry":
        return checks.Error(
            f"{setting_name('ID_TOKEN_SIGNING_KEYS')} holds an entry that is not a dict: {detail}",
            id="django_ciba.E201",
        )
    if exc.kind == "alg":
        return checks.Error(
            f"{setting_name('ID_TOKEN_SIGNING_KEYS')} holds an unknown algorithm: {detail}",
            id="django_ciba.E202",
        )
    if exc.kind == "unreadable":
        return checks.Error(
            f"{setting_name('ID_TOKEN_SIGNING_KEYS')} holds a key that cannot be read: {detail}",
            id="django_ciba.E203",
        )
    if exc.kind == "mismatch":
        return checks.Error(
            f"{setting_name('ID_TOKEN_SIGNING_KEYS')} holds a key that does not fit its alg: {detail}",
            id="django_ciba.E204",
        )
    if exc.kind == "duplicate":
        return checks.Error(
            f"{setting_name('ID_TOKEN_SIGNING_KEYS')} uses a kid twice: {detail}", id="django_ciba.E205"
        )
    return checks.Error(
        f"{setting_name('ID_TOKEN_SIGNING_KEYS')} holds an invalid kid: {detail}", id="django_ciba.E206"
    )


@checks.register(checks.Tags.security)
def check_id_token_signing_keys(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """E200-E206: every entry of ``CIBA["ID_TOKEN_SIGNING_KEYS"]`` is a usable signing key."""
    try:
        _ = ciba_settings.user_settings
    except CibaConfigurationError:
        return []  # reported as E010 / E182
    try:
        keys = id_token_keys.signing_keys()
    except id_token_keys.SigningKeyProblem as exc:
        return [_problem(exc)]
    dot_kids = {key.get("kid") for key in _dot_jwks()}
    clashing = [key.kid for key in keys if key.kid in dot_kids]
    if clashing:
        return [
            _problem(
                id_token_keys.SigningKeyProblem(
                    "duplicate", f"kid {clashing[0]!r} is also the kid of OAUTH2_PROVIDER's RSA key."
                )
            )
        ]
    return []


def _dot_jwks() -> list[dict[str, Any]]:
    """DOT's published keys (their kids: the RFC 7638 thumbprints), [] when they cannot be read
    (checks E104 / E105)."""
    from oauth2_provider.settings import oauth2_settings
    from oauth2_provider.utils import jwk_from_pem

    found = []
    for pem in [
        oauth2_settings.OIDC_RSA_PRIVATE_KEY,
        *(oauth2_settings.OIDC_RSA_PRIVATE_KEYS_INACTIVE or []),
    ]:
        if not pem:
            continue
        try:
            found.append({"kid": jwk_from_pem(pem).thumbprint()})
        except Exception:  # unreadable: reported by E105
            continue
    return found


@checks.register(checks.Tags.database)
def check_id_token_clients(
    app_configs: Any = None, databases: Iterable[str] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """W200: clients whose ``id_token_signed_response_alg`` has no signing key (their token
    requests fail until the key is back or the client changes algorithm). A database check."""
    from django_ciba.models import CibaClient

    try:
        offered = id_token_keys.available_algorithms()
    except (id_token_keys.SigningKeyProblem, CibaConfigurationError):
        return []  # reported by E200-E206
    stranded: list[str] = []
    for alias in databases or ():
        try:
            rows = (
                CibaClient.objects.using(alias)
                .exclude(id_token_signed_response_alg="")
                .exclude(id_token_signed_response_alg__in=offered)
                .order_by("pk")
                .values_list("application__client_id", flat=True)
            )
            stranded.extend(rows)
        except DatabaseError:
            continue  # no tables yet (before the first migrate)
    if not stranded:
        return []
    listed = ", ".join(stranded[:LISTED_CLIENTS])
    more = f" and {len(stranded) - LISTED_CLIENTS} more" if len(stranded) > LISTED_CLIENTS else ""
    return [
        checks.Warning(
            f"{len(stranded)} client(s) registered an id_token_signed_response_alg that no key of "
            f"{setting_name('ID_TOKEN_SIGNING_KEYS')} signs ({listed}{more}): their ID tokens "
            "cannot be issued.",
            hint="Put the key back (retired keys stay in the list), or change the clients' algorithm.",
            id="django_ciba.W200",
        )
    ]


__all__ = ["check_id_token_clients", "check_id_token_signing_keys"]
