"""The OP's extra ID token signing keys: ``CIBA["ID_TOKEN_SIGNING_KEYS"]`` read into usable keys.

DOT signs ID tokens RS256 with ``OAUTH2_PROVIDER["OIDC_RSA_PRIVATE_KEY"]``. This setting adds keys
for the algorithms a client may ask for with ``id_token_signed_response_alg`` (OIDC Registration §2,
FAPI-CIBA: PS256 or ES256). Each entry is ``{"alg": ..., "key": PEM private key, "kid": optional}``;
the setting may also be the import string of a callable returning that list. Several entries per
algorithm make rotation possible: the first of an algorithm signs, all are published in the JWKS.
RSA keys need 2048 bits, EC keys P-256, and every published key has a ``kid`` (FAPI-17).

Pure functions of the settings: :func:`signing_keys` raises :class:`SigningKeyProblem` for an
unusable entry, with a :attr:`~SigningKeyProblem.kind` that the system checks (E200-E206) map to one
ID each. Messages never quote key material.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from django.utils.module_loading import import_string
from oauth2_provider.settings import oauth2_settings

from django_ciba.core.conf import ciba_settings
from django_ciba.core.jwk import MIN_RSA_BITS, thumbprint


#: The algorithms ID tokens can be signed with (RS256 is also DOT's own).
ALGORITHMS = ("RS256", "PS256", "ES256")
#: The members an entry may have.
MEMBERS = frozenset({"alg", "key", "kid"})


class SigningKeyProblem(ValueError):
    """An unusable ``ID_TOKEN_SIGNING_KEYS`` value; :attr:`kind` names the problem."""

    #: ``setting`` (not a list or import string), ``entry`` (not a dict of alg/key/kid),
    #: ``alg`` (unknown algorithm), ``unreadable`` (no PEM private key), ``mismatch`` (the key does
    #: not fit the algorithm), ``kid`` (not a non-empty string), ``duplicate`` (a kid used twice).
    kind: str

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class SigningKey:
    """One configured key: its algorithm, key id, private key and public JWK (with kid, use, alg)."""

    alg: str
    kid: str
    private_key: Any = field(repr=False)
    public_jwk: dict[str, Any] = field(repr=False)


def _entries() -> list[Any]:
    value = ciba_settings.ID_TOKEN_SIGNING_KEYS
    if isinstance(value, str):
        try:
            value = import_string(value)()
        except Exception as exc:  # an import string that cannot be imported or called
            raise SigningKeyProblem(
                "setting", f"the import string cannot be called ({type(exc).__name__})."
            ) from exc
    if value is None:
        return []
    if not isinstance(value, list | tuple):
        raise SigningKeyProblem(
            "setting", "a list of keys, or the import string of a callable returning one."
        )
    return list(value)


def _public_jwk(public_key: Any) -> dict[str, Any]:
    if isinstance(public_key, rsa.RSAPublicKey):
        member = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(public_key))
    else:
        member = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(public_key))
    return {name: value for name, value in member.items() if name != "key_ops"}


@lru_cache(maxsize=32)
def _load(position: int, alg: str, pem: str, kid: str | None) -> SigningKey:
    try:
        private_key = serialization.load_pem_private_key(pem.encode("utf-8"), password=None)
    except (ValueError, TypeError, UnicodeError) as exc:
        raise SigningKeyProblem(
            "unreadable",
            f"key {position}: not a readable, unencrypted PEM private key ({type(exc).__name__}).",
        ) from exc
    if alg in ("RS256", "PS256"):
        fits = isinstance(private_key, rsa.RSAPrivateKey) and private_key.key_size >= MIN_RSA_BITS
        wanted = f"an RSA key of at least {MIN_RSA_BITS} bits"
    else:
        fits = isinstance(private_key, ec.EllipticCurvePrivateKey) and isinstance(
            private_key.curve, ec.SECP256R1
        )
        wanted = "an EC key on P-256"
    if not fits:
        raise SigningKeyProblem("mismatch", f"key {position}: {alg} needs {wanted}.")
    public = _public_jwk(private_key.public_key())
    key_id = kid if kid is not None else thumbprint(public)
    public.update({"kid": key_id, "use": "sig", "alg": alg})
    return SigningKey(alg=alg, kid=key_id, private_key=private_key, public_jwk=public)


def parse_entry(position: int, entry: Any) -> SigningKey:
    """One entry of the setting as a :class:`SigningKey`; :class:`SigningKeyProblem` if unusable."""
    if not isinstance(entry, dict) or not {"alg", "key"} <= entry.keys() or entry.keys() - MEMBERS:
        raise SigningKeyProblem("entry", f"key {position}: a dict with alg, key and optionally kid.")
    alg, pem, kid = entry["alg"], entry["key"], entry.get("kid")
    if alg not in ALGORITHMS:
        raise SigningKeyProblem("alg", f"key {position}: alg must be one of {', '.join(ALGORITHMS)}.")
    if kid is not None and (not isinstance(kid, str) or not kid.strip()):
        raise SigningKeyProblem("kid", f"key {position}: kid must be a non-empty string.")
    if not isinstance(pem, str):
        raise SigningKeyProblem("unreadable", f"key {position}: the key must be a PEM string.")
    return _load(position, alg, pem, kid)


def signing_keys() -> list[SigningKey]:
    """Every configured key, in the setting's order; raises :class:`SigningKeyProblem`."""
    keys = [parse_entry(position, entry) for position, entry in enumerate(_entries())]
    seen: set[str] = set()
    for position, key in enumerate(keys):
        if key.kid in seen:
            raise SigningKeyProblem("duplicate", f"key {position}: kid {key.kid!r} is used twice.")
        seen.add(key.kid)
    return keys


def active_key(alg: str) -> SigningKey | None:
    """The key that signs with ``alg`` (the first one configured for it), or None."""
    return next((key for key in signing_keys() if key.alg == alg), None)


def configured_algorithms() -> list[str]:
    """The algorithms with a key, in :data:`ALGORITHMS` order."""
    algs = {key.alg for key in signing_keys()}
    return [alg for alg in ALGORITHMS if alg in algs]


def dot_signs_rs256() -> bool:
    """Whether DOT itself signs RS256 ID tokens (it has ``OIDC_RSA_PRIVATE_KEY``)."""
    return bool(oauth2_settings.OIDC_RSA_PRIVATE_KEY)


def available_algorithms() -> list[str]:
    """What ``id_token_signed_response_alg`` may be: RS256 when DOT or a key signs it, and every
    algorithm with a configured key."""
    algs = set(configured_algorithms())
    if dot_signs_rs256():
        algs.add("RS256")
    return [alg for alg in ALGORITHMS if alg in algs]


def public_jwks() -> list[dict[str, Any]]:
    """The public JWKs of every configured key (``kid``, ``use``, ``alg`` included)."""
    return [dict(key.public_jwk) for key in signing_keys()]


__all__ = [
    "ALGORITHMS",
    "SigningKey",
    "SigningKeyProblem",
    "active_key",
    "available_algorithms",
    "configured_algorithms",
    "parse_entry",
    "public_jwks",
    "signing_keys",
]
