"""Approve or deny a request the way the OpenID conformance suite asks: test deployments only.

The suite's CIBA test plans can drive the "user" themselves: they POST, without a body or any
credential, to an *automated CIBA approval URL* taken from the test configuration, in which they
substitute ``{auth_req_id}`` and ``{action}`` (``allow`` or ``deny``). django-ciba serves such a
URL (:class:`django_ciba.views.AutomatedApprovalView`) when ``CIBA["TEST_AUTOMATION"]`` enables it.
Its ``SECRET``, part of the URL, is the only thing that protects it.

It answers 404, as any unknown URL, unless :func:`available`: enabled, with a usable secret, and
the deployment does not :func:`look like production <looks_like_production>` (``DEBUG`` off and
an issuer that is not a loopback one), unless the issuer is exactly ``ALLOWED_ISSUER``. The same
rule is the system check ``django_ciba.E133``, which stops ``runserver`` and ``migrate``; the
view applies it again at run time because a WSGI server runs no checks.

An automated approval is an approval nobody authenticated for: it records no ``acr``, ``amr`` or
``auth_time`` (:data:`django_ciba.assurance.NO_AUTHENTICATION`) and its audit actor is
:data:`ACTOR`. Deliveries (ping, push) follow as for any decision.
"""

from __future__ import annotations

import hmac
import ipaddress
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from oauth2_provider.settings import oauth2_settings

from django_ciba.approval import decisions
from django_ciba.core.conf import DEFAULTS, ciba_settings
from django_ciba.exceptions import RequestNotFound
from django_ciba.models import AuthenticationRequest


#: The audit actor of automated decisions.
ACTOR = "test-automation"
#: The ``{action}`` values the suite sends.
ALLOW, DENY = "allow", "deny"
ACTIONS = (ALLOW, DENY)
#: The shortest accepted secret, in characters.
MIN_SECRET_LENGTH = 32
#: A secret is made of URL-unreserved characters only (RFC 3986 §2.3), so it needs no encoding.
SECRET_PATTERN = re.compile(r"[A-Za-z0-9._~-]+")
KEYS = frozenset(DEFAULTS["TEST_AUTOMATION"])


@dataclass(frozen=True)
class AutomationSettings:
    enabled: bool
    secret: str
    allowed_issuer: str | None


class MalformedSettings(ValueError):
    """``CIBA["TEST_AUTOMATION"]`` is not a dict of the documented keys and types."""


def current() -> AutomationSettings:
    """``CIBA["TEST_AUTOMATION"]`` with its defaults; :class:`MalformedSettings` when malformed."""
    value = ciba_settings.TEST_AUTOMATION
    if not isinstance(value, dict) or not set(value) <= KEYS:
        raise MalformedSettings()
    merged = {**DEFAULTS["TEST_AUTOMATION"], **value}
    enabled, secret, allowed = merged["ENABLED"], merged["SECRET"], merged["ALLOWED_ISSUER"]
    if not isinstance(enabled, bool) or not isinstance(secret, str):
        raise MalformedSettings()
    if allowed is not None and not isinstance(allowed, str):
        raise MalformedSettings()
    return AutomationSettings(enabled, secret, allowed)


def secret_too_short(secret: str) -> bool:
    return len(secret) < MIN_SECRET_LENGTH


def secret_not_url_safe(secret: str) -> bool:
    return not SECRET_PATTERN.fullmatch(secret)


def issuer() -> str:
    """The issuer configured in DOT (``OIDC_ISS_ENDPOINT``), without a trailing slash; may be empty."""
    return str(oauth2_settings.OIDC_ISS_ENDPOINT or "").rstrip("/")


def is_loopback_issuer(value: str) -> bool:
    """Whether ``value`` is an URL whose host is ``localhost``, ``*.localhost`` or a loopback address."""
    try:
        host = (urlsplit(value).hostname or "").lower().rstrip(".")
    except ValueError:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def looks_like_production() -> bool:
    """``DEBUG`` is off and the issuer is not a loopback one (or not configured)."""
    return not settings.DEBUG and not is_loopback_issuer(issuer())


def allowed_anyway(config: AutomationSettings) -> bool:
    """``ALLOWED_ISSUER`` names this deployment's (configured) issuer exactly."""
    current_issuer = issuer()
    return bool(config.allowed_issuer and current_issuer) and (
        (config.allowed_issuer or "").rstrip("/") == current_issuer
    )


def refused_as_production(config: AutomationSettings) -> bool:
    return looks_like_production() and not allowed_anyway(config)


def available() -> AutomationSettings | None:
    """The settings when the automation may answer at all, else None (the URL answers 404)."""
    try:
        config = current()
    except MalformedSettings:
        return None
    if not config.enabled or secret_too_short(config.secret) or secret_not_url_safe(config.secret):
        return None
    if refused_as_production(config):
        return None
    return config


def secret_matches(config: AutomationSettings, candidate: Any) -> bool:
    """Constant-time comparison of ``candidate`` with the configured secret."""
    if not isinstance(candidate, str):
        return False
    return hmac.compare_digest(candidate.encode("utf-8", "surrogatepass"), config.secret.encode("utf-8"))


def decide(auth_req_id: str, action: str) -> AuthenticationRequest:
    """Approve (``allow``: every requested scope, nobody authenticated) or deny the request named
    by ``auth_req_id``, as :data:`ACTOR`. Raises :class:`~django_ciba.exceptions.DecisionError`
    (not found, already decided, expired)."""
    auth_request = (
        AuthenticationRequest.objects.by_auth_req_id(auth_req_id).select_related("client", "user").first()
    )
    if auth_request is None:
        raise RequestNotFound("No authentication request has that auth_req_id.")
    if action == ALLOW:
        return decisions.approve(auth_request, user=auth_request.user, context=None, actor=ACTOR)
    return decisions.deny(auth_request, actor=ACTOR)
