"""Pairwise sectors of CIBA clients (OIDC Core §8.1): which URLs prove a client's sector."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.utils.translation import gettext_lazy as _

from django_ciba.models.choices import AuthMethod, DeliveryMode, SubjectType


SECTOR_FIELDS = (
    "subject_type",
    "delivery_mode",
    "notification_endpoint",
    "token_endpoint_auth_method",
    "jwks_uri",
    "sector_identifier_uri",
)


def _host(url: str) -> str:
    return (urlsplit(url).hostname or "").lower() if url else ""


def sector_proof_uris(client: Any) -> dict[str, str]:
    """The URIs ``client`` demonstrably uses, each with the metadata it comes from (REG-06).

    A push client's notification endpoint (its tokens are delivered there and nowhere else) and
    the ``jwks_uri`` of a client that authenticates with ``private_key_jwt`` (only the holder of
    the keys published there can authenticate). A ping client's endpoint proves nothing: ping
    clients can fetch their tokens at the token endpoint without ever receiving a ping. ``client``
    is a :class:`CibaClient` or anything with the same attributes (registration metadata).
    """
    uris: dict[str, str] = {}
    if client.delivery_mode == DeliveryMode.PUSH and client.notification_endpoint:
        uris[client.notification_endpoint] = "the backchannel_client_notification_endpoint"
    if client.token_endpoint_auth_method == AuthMethod.PRIVATE_KEY_JWT and client.jwks_uri:
        uris[client.jwks_uri] = "the jwks_uri"
    return uris


def proven_sector(client: Any) -> str:
    """The sector host ``client`` proves (OIDC Core §8.1, REG-06), "" when it proves none.

    The host of ``sector_identifier_uri`` (whose document must list one of the
    :func:`sector_proof_uris`; it is fetched when the metadata is validated); else the host of the
    first proof URI: a push client's notification endpoint, then a ``private_key_jwt`` client's
    ``jwks_uri``.
    """
    proofs = sector_proof_uris(client)
    if client.sector_identifier_uri:
        return _host(client.sector_identifier_uri) if proofs else ""
    return _host(next(iter(proofs), ""))


def legacy_sector(client: Any) -> str:
    """The sector of earlier versions, which did not ask for a proof: the sector identifier URL's
    host, else the notification endpoint's (push) or the ``jwks_uri``'s host (poll, ping)."""
    if client.sector_identifier_uri:
        return _host(client.sector_identifier_uri)
    if client.delivery_mode == DeliveryMode.PUSH:
        return _host(client.notification_endpoint)
    return _host(client.jwks_uri)


def sector_problem(client: Any) -> tuple[str, str] | None:
    """Why ``client``'s pairwise sector is not proven, as ``(field, message)``; None when fine."""
    if client.subject_type != SubjectType.PAIRWISE:
        return None
    if client.sector_identifier_uri and not sector_proof_uris(client):
        return (
            "sector_identifier_uri",
            str(
                _(
                    "A sector identifier URL must list a URL this client uses, and it has none: a push "
                    "client's notification endpoint, or the JWK set URL of a private_key_jwt client."
                )
            ),
        )
    if not proven_sector(client):
        return (
            "subject_type",
            str(
                _(
                    "Pairwise subjects need a sector the client proves: the notification endpoint of "
                    "a push client, the JWK set URL of a client authenticating with private_key_jwt, "
                    "or a sector identifier URL listing one of them."
                )
            ),
        )
    return None
