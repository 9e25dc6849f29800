"""Granted authorization details (RFC 9396) in token responses, and their narrowing on refresh.

What the approval granted (the details the user approved, all of them or a part) goes, as
``authorization_details``, into the token response of the CIBA grant and of push (RFC 9396 §7), is
kept with the access token for introspection (§9.2) and with the refresh-token family
(:class:`~django_ciba.models.TokenAssurance`), so that the refresh grant answers with it too. A
refresh request may send ``authorization_details`` to ask for a part of the grant only (§6,
§6.1); anything else is ``invalid_authorization_details``. The ID token is unaffected.

Two steps, registered by :class:`~django_ciba.server.CibaServerMixin` and the validator:

1. :func:`check_refresh` (a ``post_token`` validator of the refresh grant) settles what the new
   tokens carry, on ``request.ciba_authorization_details``;
2. :func:`record_issued` (from the validator's ``save_bearer_token``, for every grant) adds them to
   the token response and records them next to the access token just stored.
"""

from __future__ import annotations

from typing import Any

from oauthlib.oauth2.rfc6749 import errors

from django_ciba import assurance
from django_ciba.core.authorization_details import PARAMETER, enabled, narrow
from django_ciba.exceptions import InvalidAuthorizationDetails
from django_ciba.models import TokenAuthorizationDetails
from django_ciba.tokens import issued


class InvalidAuthorizationDetailsError(errors.OAuth2Error):
    """RFC 9396 §6: the token request asks for details the grant does not hold (HTTP 400)."""

    error = "invalid_authorization_details"
    status_code = 400


def check_refresh(request: Any) -> None:
    """``post_token`` of the refresh grant: the family's granted details, or the part asked for."""
    kept = assurance.for_refresh(request)
    granted: list[dict[str, Any]] = list(kept.authorization_details or []) if kept is not None else []
    raw = getattr(request, PARAMETER, None)
    if raw is None or raw == "" or (not granted and not enabled()):
        request.ciba_authorization_details = granted
        return
    try:
        request.ciba_authorization_details = narrow(raw, granted)
    except InvalidAuthorizationDetails as exc:
        raise InvalidAuthorizationDetailsError(description=exc.description, request=request) from None


def issued_details(request: Any) -> list[dict[str, Any]]:
    """What the tokens being issued for ``request`` carry: settled by :func:`check_refresh`, else
    those of the CIBA request being redeemed (poll, ping and push alike)."""
    details = getattr(request, "ciba_authorization_details", None)
    if details is None:
        auth = getattr(request, "ciba_request", None)
        details = auth.granted_details if auth is not None else []
    return list(details)


def record_issued(token: dict[str, Any], request: Any) -> None:
    """Add the details to the token response and keep them with the access token just stored."""
    details = issued_details(request)
    if not details or not isinstance(token.get("access_token"), str):
        return
    token[PARAMETER] = details
    access_token = issued.access_token_of(token, request)
    if access_token is not None:
        TokenAuthorizationDetails.objects.update_or_create(
            access_token=access_token, defaults={"details": details}
        )


def for_access_token(access_token: Any) -> list[dict[str, Any]] | None:
    """The details an access token was issued with (introspection), or None."""
    row = getattr(access_token, "ciba_authorization_details", None)
    return list(row.details) if isinstance(row, TokenAuthorizationDetails) and row.details else None
