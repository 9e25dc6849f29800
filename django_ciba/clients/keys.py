"""Client public keys (``jwks`` by value or ``jwks_uri``) and signature checks of client-signed JWTs.

Used by signed authentication requests (SR-08) and ``private_key_jwt`` client assertions (RFC 7523).
Keys are parsed by :mod:`django_ciba.core.jwk` (public, asymmetric signing keys only). A
``jwks_uri`` is fetched and cached by :mod:`django_ciba.core.jwks_cache` (through
:mod:`django_ciba.core.outbound`: https, public addresses, no redirects, short timeouts). A JWT
naming a key id the cached set lacks causes one refetch, at most every ``JWKS_REFRESH_INTERVAL``
seconds per URL, so a client can rotate keys without waiting for the cache; failed fetches back off
and fetches are bounded in total.

Callers check the claims themselves; this module only answers "which registered key signed this?".
"""

from __future__ import annotations

import logging
from typing import Any

import jwt

from django_ciba.core import jwks_cache
from django_ciba.core.conf import ciba_settings
from django_ciba.core.jwk import (
    SIGNATURE_ONLY,
    ClientKey,
    InvalidClientKeys,
    is_asymmetric,
    key_fits,
    parse_jwks,
)


logger = logging.getLogger(__name__)


class ClientJwtError(Exception):
    """A client-signed JWT is malformed, uses a refused algorithm, or no registered key verifies it."""


def supported_algorithms() -> list[str]:
    """``SIGNING_ALGORITHMS`` without anything symmetric or ``none`` (never accepted, whatever is set)."""
    return [alg for alg in ciba_settings.SIGNING_ALGORITHMS if isinstance(alg, str) and is_asymmetric(alg)]


def fetch_jwks(url: str, *, refresh: bool = False) -> list[ClientKey]:
    """The signing keys published at ``url``: cached, or fetched under :mod:`django_ciba.core.jwks_cache`.

    ``refresh`` (a JWT named an unknown key id) is honoured at most every ``JWKS_REFRESH_INTERVAL``
    seconds per URL; failed fetches back off, and fetches are bounded in total.
    """
    try:
        document = jwks_cache.document(url, refresh=refresh)
    except jwks_cache.JwksUnavailable as exc:
        raise ClientJwtError(str(exc)) from (exc.__cause__ or exc)  # the outbound refusal, if any
    try:
        return parse_jwks(document, strict=False)
    except InvalidClientKeys as exc:
        raise ClientJwtError(f"The client's JWK set is unusable: {exc}") from exc


def registered_keys(ciba: Any, *, refresh: bool = False) -> list[ClientKey]:
    """The keys of a :class:`~django_ciba.models.CibaClient` (``jwks`` or ``jwks_uri``)."""
    if ciba.jwks:
        try:
            return parse_jwks(ciba.jwks, strict=False)
        except InvalidClientKeys as exc:
            raise ClientJwtError(f"The client's registered JWK set is unusable: {exc}") from exc
    if ciba.jwks_uri:
        return fetch_jwks(ciba.jwks_uri, refresh=refresh)
    raise ClientJwtError("The client has registered no public keys.")


def unverified_header(token: Any) -> dict[str, Any]:
    """The JOSE header of a compact JWS; encrypted (JWE) and malformed tokens are refused."""
    if not isinstance(token, str) or not token.isascii():
        raise ClientJwtError("The JWT is malformed.")
    if token.count(".") != 2:
        raise ClientJwtError("Encrypted or malformed JWT: a signed JWT (JWS compact form) is expected.")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise ClientJwtError("The JWT is malformed.") from exc
    if not isinstance(header.get("alg"), str):
        raise ClientJwtError("The JWT header has no alg.")
    return header


def verify_client_jwt(
    token: str, ciba: Any, *, algorithms: list[str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Check the signature of ``token`` with the client's keys; return ``(header, claims)``.

    ``algorithms`` are the JWS algorithms acceptable for this use (already narrowed to what the
    client registered). Only the signature is checked here: ``exp``, ``aud`` and the rest are the
    caller's business.
    """
    header = unverified_header(token)
    algorithm = header["alg"]
    if algorithm.lower() == "none" or not is_asymmetric(algorithm):
        raise ClientJwtError(f"The JWT must be signed with an asymmetric algorithm, not {algorithm[:16]}.")
    if algorithm not in algorithms:
        raise ClientJwtError(f"The JWT algorithm {algorithm[:16]} is not accepted for this client.")
    kid = header.get("kid")
    for attempt in (False, True):
        if attempt and not ciba.jwks_uri:
            break
        keys = [
            key
            for key in registered_keys(ciba, refresh=attempt)
            if key_fits(key, algorithm) and (kid is None or key.key_id == kid)
        ]
        for key in keys:
            try:
                claims = jwt.decode(
                    token,
                    key=key.key,
                    algorithms=[algorithm],
                    options=SIGNATURE_ONLY,
                )
            except (jwt.InvalidSignatureError, jwt.InvalidKeyError, TypeError):
                continue
            except jwt.PyJWTError as exc:
                raise ClientJwtError("The JWT is malformed.") from exc
            if not isinstance(claims, dict):
                raise ClientJwtError("The JWT payload is not a JSON object.")
            return header, claims
        if keys and kid is None:
            break  # keys were there, none verified: no refetch for a bad signature
    raise ClientJwtError("No key registered by the client verifies the JWT signature.")
