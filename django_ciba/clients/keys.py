"""Client public keys (``jwks`` by value or ``jwks_uri``) and signature checks of client-signed JWTs.

Used by signed authentication requests (SR-08) and ``private_key_jwt`` client assertions (RFC 7523).
Keys are parsed by PyJWT; only public, asymmetric signing keys are accepted (RSA of at least 2048
bits, EC on P-256/P-384/P-521, Ed25519/Ed448). A ``jwks_uri`` is fetched and cached by
:mod:`django_ciba.core.jwks_cache` (through :mod:`django_ciba.core.outbound`: https, public addresses, no
redirects, short timeouts). A JWT naming a key id the cached set lacks causes one refetch, at most
every ``JWKS_REFRESH_INTERVAL`` seconds per URL, so a client can rotate keys without waiting for
the cache; failed fetches back off and fetches are bounded in total.

Callers check the claims themselves; this module only answers "which registered key signed this?".
"""

from __future__ import annotations

import json
import logging
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from django_ciba.core import jwks_cache
from django_ciba.core.conf import ciba_settings


logger = logging.getLogger(__name__)

MIN_RSA_BITS = 2048
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_EC_CURVES = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}


class InvalidClientKeys(ValueError):
    """A JWK set that cannot be registered or used (the message names the problem, never key data)."""


class ClientJwtError(Exception):
    """A client-signed JWT is malformed, uses a refused algorithm, or no registered key verifies it."""


def _asymmetric(algorithm: str) -> bool:
    return algorithm[:2] in ("RS", "PS", "ES") or algorithm == "EdDSA"


def supported_algorithms() -> list[str]:
    """``SIGNING_ALGORITHMS`` without anything symmetric or ``none`` (never accepted, whatever is set)."""
    return [alg for alg in ciba_settings.SIGNING_ALGORITHMS if isinstance(alg, str) and _asymmetric(alg)]


def parse_jwks(document: Any, *, strict: bool = True) -> list[jwt.PyJWK]:
    """The usable signing keys of a JWK set (RFC 7517 §5).

    ``strict`` (registration) refuses the whole set for any bad key; otherwise (a fetched
    ``jwks_uri``) bad keys are skipped. Keys marked ``"use": "enc"`` are never signing keys.
    """
    if isinstance(document, str | bytes):
        try:
            document = json.loads(document)
        except ValueError as exc:
            raise InvalidClientKeys("The JWK set is not valid JSON.") from exc
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise InvalidClientKeys('A JWK set is a JSON object with a "keys" array.')
    keys: list[jwt.PyJWK] = []
    kids: set[str] = set()
    for position, member in enumerate(document["keys"]):
        try:
            key = _parse_key(member, position)
        except InvalidClientKeys:
            if strict:
                raise
            continue
        if key is None:
            continue
        kid = key.key_id
        if kid is not None and kid in kids and strict:
            raise InvalidClientKeys(f"Key {position}: the key id is used twice in the set.")
        kids.add(kid or "")
        keys.append(key)
    if not keys:
        raise InvalidClientKeys("The JWK set holds no usable public signing key.")
    return keys


def _parse_key(member: Any, position: int) -> jwt.PyJWK | None:
    if not isinstance(member, dict):
        raise InvalidClientKeys(f"Key {position} is not a JSON object.")
    if _PRIVATE_MEMBERS & member.keys():
        raise InvalidClientKeys(
            f"Key {position} holds private or symmetric key material; publish public keys only."
        )
    if member.get("use", "sig") != "sig":
        return None
    if member.get("kty") not in ("RSA", "EC", "OKP"):
        raise InvalidClientKeys(f"Key {position}: only RSA, EC and OKP keys are accepted.")
    algorithm = member.get("alg")
    if algorithm is not None and (not isinstance(algorithm, str) or not _asymmetric(algorithm)):
        raise InvalidClientKeys(f"Key {position}: alg must be an asymmetric signing algorithm.")
    kid = member.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise InvalidClientKeys(f"Key {position}: kid must be a string.")
    try:
        key = jwt.PyJWK(member)
    except (jwt.PyJWTError, ValueError, TypeError, KeyError) as exc:
        raise InvalidClientKeys(f"Key {position} cannot be read ({type(exc).__name__}).") from exc
    public = key.key
    if isinstance(public, rsa.RSAPublicKey) and public.key_size < MIN_RSA_BITS:
        raise InvalidClientKeys(f"Key {position}: RSA keys need at least {MIN_RSA_BITS} bits.")
    if not hasattr(public, "public_bytes") or hasattr(public, "private_bytes"):
        raise InvalidClientKeys(f"Key {position} is not a public key.")
    return key


def key_fits(key: jwt.PyJWK, algorithm: str) -> bool:
    """Whether ``key`` can verify a JWS made with ``algorithm``."""
    declared = key._jwk_data.get("alg")
    if declared and declared != algorithm:
        return False
    public = key.key
    if algorithm[:2] in ("RS", "PS"):
        return isinstance(public, rsa.RSAPublicKey)
    if algorithm in _EC_CURVES:
        return (
            isinstance(public, ec.EllipticCurvePublicKey)
            and key._jwk_data.get("crv") == _EC_CURVES[algorithm]
        )
    return algorithm == "EdDSA" and key.key_type == "OKP"


def fetch_jwks(url: str, *, refresh: bool = False) -> list[jwt.PyJWK]:
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


def registered_keys(ciba: Any, *, refresh: bool = False) -> list[jwt.PyJWK]:
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
    if algorithm.lower() == "none" or not _asymmetric(algorithm):
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
                    options={
                        "verify_signature": True,
                        "verify_exp": False,
                        "verify_nbf": False,
                        "verify_iat": False,
                        "verify_aud": False,
                        "verify_iss": False,
                    },
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
