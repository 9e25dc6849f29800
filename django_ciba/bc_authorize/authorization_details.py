"""``authorization_details`` at bc-authorize (RFC 9396 §3, §5): what the client asks to be authorized.

A form sends the parameter as a JSON string, a signed request as a JSON array claim
(:mod:`django_ciba.bc_authorize.request_object`). The rules are those of
:mod:`django_ciba.core.authorization_details`, with the types this client registered
(``CibaClient.authorization_details_types``; empty: every configured type). While
``CIBA["AUTHORIZATION_DETAILS"]["TYPES"]`` is empty the OP does not support RFC 9396 and the
parameter is ignored, as every unrecognised parameter (BC-14).
"""

from __future__ import annotations

from typing import Any

from django_ciba.core.authorization_details import PARAMETER, enabled, parse
from django_ciba.models import CibaClient


def requested_details(form: dict[str, Any], ciba: CibaClient) -> list[dict[str, Any]]:
    """The validated details of the request (``[]`` when none were sent); raises
    :class:`~django_ciba.exceptions.InvalidAuthorizationDetails`. Ignored (``[]``) while no type is
    configured (:func:`~django_ciba.core.authorization_details.enabled`)."""
    raw = form.get(PARAMETER)
    if raw is None or not enabled():
        return []
    return parse(raw, allowed=ciba.allowed_authorization_details_types)
