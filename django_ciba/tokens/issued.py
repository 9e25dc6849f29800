"""The access token DOT has just stored for a token response, looked up once per request.

Several steps follow DOT's ``save_bearer_token`` (the token's binding, its authorization details,
the push bookkeeping); DOT does not hand the row back, so it is found by its checksum once and kept
on the oauthlib request for the others.
"""

from __future__ import annotations

import hashlib
from typing import Any

from oauth2_provider.models import get_access_token_model


ATTRIBUTE = "ciba_issued_access_token"


def checksum(value: str) -> str:
    """DOT's ``token_checksum`` of a token value: hex SHA-256 of its UTF-8 bytes."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def access_token_of(token: dict[str, Any], request: Any) -> Any:
    """The stored access token of ``token`` (a token response), or None."""
    value = token.get("access_token")
    if not isinstance(value, str):
        return None
    cached = getattr(request, ATTRIBUTE, None)
    if cached is not None and cached[0] == value:
        return cached[1]
    found = get_access_token_model().objects.filter(token_checksum=checksum(value)).first()
    setattr(request, ATTRIBUTE, (value, found))
    return found
