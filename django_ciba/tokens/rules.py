"""What an application's CIBA registration allows, at every grant and not only at CIBA's endpoints.

A :class:`~django_ciba.models.CibaClient` row is the *registration*; it may be enabled or not.
Two questions are kept apart:

* ``CibaClient.objects.registration_of`` finds the registration, enabled or not. The registered client
  authentication method (REG-07) and the registered ``scope`` apply whatever ``enabled`` says,
  and pairwise subjects keep being computed for a disabled registration.
* :func:`is_disabled` is the gate: an application whose registration exists and is disabled gets
  nothing from any grant (``unauthorized_client``, RFC 6749 §5.2: the client authenticated, but is
  not authorized for the grant), its refresh tokens are refused and its access tokens stop
  validating. An application without a registration is left to DOT's own rules.

:func:`scopes_allowed` answers whether a set of scopes fits the registered ``scope`` (empty: every
scope the OP offers); :func:`check_registered_scopes` raises ``invalid_scope`` (RFC 6749 §5.2) for
grants that do not call the validator's ``validate_scopes`` (refresh_token, authorization_code at
the token endpoint, the CIBA grant). It is registered as a ``post_token`` validator on every grant
by :class:`~django_ciba.server.CibaServerMixin`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from oauthlib.oauth2.rfc6749 import errors

from django_ciba.core import profiles
from django_ciba.models import CibaClient


SCOPE_DESCRIPTION = "The requested scope is not allowed for this client."


def is_disabled(application: Any) -> bool:
    """True when the application has a CIBA registration and it is disabled."""
    ciba = CibaClient.objects.registration_of(application)
    return ciba is not None and not ciba.enabled


def profile_refuses(application: Any) -> bool:
    """FAPI-03: a push client held to FAPI-CIBA gets nothing from any grant (``unauthorized_client``).

    FAPI-12 (client authentication) is the validator's; an application without a CIBA registration
    is left to DOT.
    """
    ciba = CibaClient.objects.registration_of(application)
    return ciba is not None and not profiles.delivery_mode_allowed(ciba, ciba.delivery_mode)


def secret_refused(application: Any) -> bool:
    """FAPI-12 (Part 2 5.2.2-14): a client held to FAPI-CIBA may not authenticate with a secret
    (client_secret_basic or client_secret_post), at the backchannel and the token endpoint alike.

    Only CIBA registrations: DOT's own applications (e.g. resource servers calling introspection)
    keep DOT's methods.
    """
    ciba = CibaClient.objects.registration_of(application)
    return ciba is not None and profiles.fapi_applies(ciba)


def scopes_allowed(application: Any, scopes: Iterable[str] | None) -> bool:
    """Whether every one of ``scopes`` is within the registered ``scope`` (True without a limit)."""
    ciba = CibaClient.objects.registration_of(application)
    allowed = ciba.allowed_scopes if ciba is not None else None
    return allowed is None or set(scopes or ()) <= allowed


def check_registered_scopes(request: Any) -> None:
    """oauthlib ``post_token`` validator: the scopes about to be granted fit the registration.

    Runs once the grant has settled ``request.scopes``; an operator who narrowed the registered
    ``scope`` after the grant (a refresh token, an approved CIBA request) is obeyed from then on.
    """
    if not scopes_allowed(getattr(request, "client", None), getattr(request, "scopes", None)):
        raise errors.InvalidScopeError(description=SCOPE_DESCRIPTION, request=request)
