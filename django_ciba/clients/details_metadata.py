"""``authorization_details_types`` client metadata (RFC 9396 §10): the types a client may request.

Registration accepts a list of the types ``CIBA["AUTHORIZATION_DETAILS"]["TYPES"]`` configures and
stores it on :class:`~django_ciba.models.CibaClient`; an empty list (or none) lets the client use
every configured type. The client information response returns the registered list.
"""

from __future__ import annotations

from typing import Any

from django_ciba.core.authorization_types import supported_types
from django_ciba.exceptions import InvalidClientMetadata
from django_ciba.models import CibaClient


NAME = "authorization_details_types"
MAX_TYPES = 50


def read(data: dict[str, Any]) -> list[str]:
    """The registered types, checked against the configured ones; JSON null counts as absent."""
    value = data.get(NAME)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise InvalidClientMetadata(f"{NAME}: must be an array of strings.")
    if len(value) > MAX_TYPES:
        raise InvalidClientMetadata(f"{NAME}: must hold at most {MAX_TYPES} values.")
    offered = supported_types()
    if any(item not in offered for item in value):
        raise InvalidClientMetadata(
            f"{NAME}: must name types this server offers (authorization_details_types_supported)."
        )
    return list(dict.fromkeys(value))


def information(ciba: CibaClient) -> dict[str, Any]:
    """The registered types for the client information response (left out when none)."""
    types = list(ciba.authorization_details_types or [])
    return {NAME: types} if types else {}
