"""Serving while ``manage.py check`` reports errors: a JSON answer, never a bare 500.

A setting of the wrong type (``CIBA["LIMITS"]["CLIENT_RATE"] = 120``) or an unusable OpenID Connect
signing key makes the code that reads it fail. When a protocol endpoint fails that way, and the
system checks of the settings report an error, the endpoint answers ``503 temporarily_unavailable``
(the JSON of :mod:`django_ciba.middleware`) instead of Django's 500 page, and logs the check IDs at
ERROR level, so the operator knows what to fix. The client retries later; nothing was consumed (the
token endpoint claims an ``auth_req_id`` and mints its tokens in one transaction).

A failure while the settings check out is not covered: it is a bug and is left to Django.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable
from typing import Any

from django.core import checks
from django.core.exceptions import BadRequest, PermissionDenied, SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse

from django_ciba.checks import assurance as assurance_checks
from django_ciba.checks import authorization_details as details_checks
from django_ciba.checks import clients as client_checks
from django_ciba.checks import id_tokens as id_token_checks
from django_ciba.checks import integration as integration_checks
from django_ciba.checks import mtls as mtls_checks
from django_ciba.checks import settings as ciba_checks
from django_ciba.exceptions import CibaConfigurationError
from django_ciba.middleware import DATABASE_UNAVAILABLE, unavailable_response


logger = logging.getLogger(__name__)

#: Exceptions Django turns into a 4xx answer: not failures, so never a 503.
ANSWERS: tuple[type[Exception], ...] = (Http404, PermissionDenied, SuspiciousOperation, BadRequest)

#: The system checks of settings alone: no database, no network, cheap enough for an error path.
SETTINGS_CHECKS: tuple[Callable[..., Iterable[checks.CheckMessage]], ...] = (
    ciba_checks.check_dot_integration,
    ciba_checks.check_ciba_settings,
    ciba_checks.check_setting_names,
    ciba_checks.check_delivery_settings,
    ciba_checks.check_client_key_settings,
    ciba_checks.check_abuse_settings,
    client_checks.check_jwks_fetch_settings,
    mtls_checks.check_mtls_settings,
    assurance_checks.check_assurance_settings,
    details_checks.check_authorization_details_settings,
    integration_checks.check_oidc_signing_key,
    integration_checks.check_decision_policies,
    id_token_checks.check_id_token_signing_keys,
)


def configuration_errors() -> list[str]:
    """The IDs of the errors the settings checks report now (sorted, without repeats)."""
    found: set[str] = set()
    for check in SETTINGS_CHECKS:
        try:
            messages = list(check())
        except Exception as exc:  # a check that cannot even run is itself a configuration problem
            found.add(f"{check.__name__} failed ({type(exc).__name__})")
            continue
        found.update(message.id or "" for message in messages if message.is_serious())
    return sorted(found)


def misconfigured_response(request: HttpRequest, exc: BaseException) -> HttpResponse | None:
    """The 503 answer for ``exc`` raised by a view while the settings are invalid, or None.

    None when the settings check out (``exc`` is then a bug, for Django to report) and for a
    database outage (answered by :class:`~django_ciba.middleware.DatabaseUnavailableMiddleware`).
    """
    if isinstance(exc, (*DATABASE_UNAVAILABLE, *ANSWERS)) or not isinstance(exc, Exception):
        return None
    problems = configuration_errors()
    if not problems:
        if not isinstance(exc, CibaConfigurationError):
            return None
        # A setting that one request needed and lacks (e.g. a client's ID token key gone: W200):
        # the configuration is wrong even where no system check error says so.
        logger.error(
            "Answered 503 temporarily_unavailable to %s %s: %s (run manage.py check).",
            request.method,
            request.path,
            type(exc).__name__,
        )
        return unavailable_response(request)
    # The exception's class only: its message may quote a setting's value (a key, a secret).
    logger.error(
        "Answered 503 temporarily_unavailable to %s %s: %s raised while the configuration is invalid "
        "(%s; run manage.py check).",
        request.method,
        request.path,
        type(exc).__name__,
        ", ".join(problems),
    )
    return unavailable_response(request)


def guarded(view: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate a view method ``(self, request, ...)``: a failure under invalid settings is a 503."""

    @functools.wraps(view)
    def wrapper(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return view(self, request, *args, **kwargs)
        except Exception as exc:
            response = misconfigured_response(request, exc)
            if response is None:
                raise
            return response

    return wrapper
