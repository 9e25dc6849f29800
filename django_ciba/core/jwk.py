"""JSON Web Key sets (RFC 7517): which members of a set are usable public signing keys.

Pure functions over PyJWT, used by the client models (a registered ``jwks`` is checked on save) and
by :mod:`django_ciba.clients.keys`. Only public, asymmetric signing keys are accepted: RSA of at
least 2048 bits, EC on P-256/P-384/P-521, Ed25519/Ed448.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import TYPE_CHECKING, Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa


if TYPE_CHECKING:
    from jwt.types import Options


MIN_RSA_BITS = 2048
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_EC_CURVES = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}


class ClientKey(jwt.PyJWK):
    """A public key of a client's set that remembers the ``alg`` and ``crv`` members it declared."""

    def __init__(self, member: dict[str, Any]) -> None:
        super().__init__(member)
        self.declared_algorithm: str | None = member.get("alg")
        self.curve: str | None = member.get("crv")


class InvalidClientKeys(ValueError):
    """A JWK set that cannot be registered or used (the message names the problem, never key data)."""


def is_asymmetric(algorithm: str) -> bool:
    return algorithm[:2] in ("RS", "PS", "ES") or algorithm == "EdDSA"


def parse_jwks(document: Any, *, strict: bool = True) -> list[ClientKey]:
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
    keys: list[ClientKey] = []
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


def _parse_key(member: Any, position: int) -> ClientKey | None:
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
    if algorithm is not None and (not isinstance(algorithm, str) or not is_asymmetric(algorithm)):
        raise InvalidClientKeys(f"Key {position}: alg must be an asymmetric signing algorithm.")
    kid = member.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise InvalidClientKeys(f"Key {position}: kid must be a string.")
    try:
        key = ClientKey(member)
    except (jwt.PyJWTError, ValueError, TypeError, KeyError) as exc:
        raise InvalidClientKeys(f"Key {position} cannot be read ({type(exc).__name__}).") from exc
    public = key.key
    if isinstance(public, rsa.RSAPublicKey) and public.key_size < MIN_RSA_BITS:
        raise InvalidClientKeys(f"Key {position}: RSA keys need at least {MIN_RSA_BITS} bits.")
    if not hasattr(public, "public_bytes") or hasattr(public, "private_bytes"):
        raise InvalidClientKeys(f"Key {position} is not a public key.")
    return key


#: PyJWT ``decode`` options that check the signature only: the claims are the caller's to check.
SIGNATURE_ONLY: Options = {
    "verify_signature": True,
    "verify_exp": False,
    "verify_nbf": False,
    "verify_iat": False,
    "verify_aud": False,
    "verify_iss": False,
}


def parse_key(member: Any) -> ClientKey:
    """One public, asymmetric signing key (a JWK object, RFC 7517 §4); raises
    :class:`InvalidClientKeys` for anything else (private members, ``"use": "enc"``, weak RSA...)."""
    key = _parse_key(member, 0)
    if key is None:
        raise InvalidClientKeys("Key 0 is not a signing key.")
    return key


#: The members of each key type that make up its RFC 7638 thumbprint (§3.2), in lexicographic order.
_THUMBPRINT_MEMBERS = {"RSA": ("e", "kty", "n"), "EC": ("crv", "kty", "x", "y"), "OKP": ("crv", "kty", "x")}


def thumbprint(member: Any) -> str:
    """The JWK SHA-256 thumbprint of a public key (RFC 7638 §3), base64url without padding.

    Only the required members count, serialised without whitespace in lexicographic order (§3.3),
    so the same key gives the same thumbprint whatever else its JWK carries (``kid``, ``alg``...).
    """
    if not isinstance(member, dict):
        raise InvalidClientKeys("A JWK is a JSON object.")
    names = _THUMBPRINT_MEMBERS.get(str(member.get("kty")))
    if names is None or not all(isinstance(member.get(name), str) for name in names):
        raise InvalidClientKeys("The key has no thumbprint: unknown type or missing members.")
    canonical = json.dumps({name: member[name] for name in names}, separators=(",", ":"), sort_keys=True)
    digest = hashlib.sha256(canonical.encode("utf-8")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def key_fits(key: ClientKey, algorithm: str) -> bool:
    """Whether ``key`` can verify a JWS made with ``algorithm``."""
    declared = key.declared_algorithm
    if declared and declared != algorithm:
        return False
    public = key.key
    if algorithm[:2] in ("RS", "PS"):
        return isinstance(public, rsa.RSAPublicKey)
    if algorithm in _EC_CURVES:
        return isinstance(public, ec.EllipticCurvePublicKey) and key.curve == _EC_CURVES[algorithm]
    return algorithm == "EdDSA" and key.key_type == "OKP"
