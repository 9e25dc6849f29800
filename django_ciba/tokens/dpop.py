"""DPoP proofs (RFC 9449): check the proof a request carries, and name the key it proves.

:func:`check_proof` runs the checks of RFC 9449 §4.3 on the ``DPoP`` header values of one request
and returns the proof's public key thumbprint (``jkt``, RFC 7638), to which the tokens are then bound
(``cnf.jkt``, §6.1). What it refuses raises :class:`InvalidProof` (error ``invalid_dpop_proof``, §5,
§7.1) or, when the server demands a nonce that the proof lacks or gets wrong, :class:`NonceRequired`
(error ``use_dpop_nonce``, §8). The messages name the failed check, never the proof's content.

This module is the protocol core only: it knows nothing of HTTP frameworks or settings. The caller
gives it the request's method and URL, the time, the nonces it accepts, and the access token when a
protected resource checks the ``ath`` claim (§7.1).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import jwt

from django_ciba.core.jwk import (
    SIGNATURE_ONLY,
    InvalidClientKeys,
    is_asymmetric,
    key_fits,
    parse_key,
    thumbprint,
)


#: The JWS algorithms accepted in a proof (asymmetric only: §4.3 check 5, never ``none`` or HMAC).
SIGNING_ALGORITHMS: tuple[str, ...] = ("ES256", "ES384", "ES512", "PS256", "PS384", "PS512", "RS256", "EdDSA")
#: How old a proof may be (seconds since its ``iat``) and how far ahead of our clock (§4.3 check 11).
MAX_AGE = 60
LEEWAY = 5
#: Longest proof accepted (characters): a proof is a few hundred bytes; this only bounds the work.
MAX_LENGTH = 8192


class InvalidProof(Exception):
    """The proof fails a check of RFC 9449 §4.3; ``error`` is the protocol error to answer."""

    error = "invalid_dpop_proof"


class NonceRequired(InvalidProof):
    """The server demands a nonce and the proof has none, or a wrong one (§8, §9)."""

    error = "use_dpop_nonce"


@dataclass(frozen=True)
class Proof:
    """A checked proof: the key's thumbprint (``jkt``), the proof's ``jti`` and ``iat``."""

    jkt: str
    jti: str
    iat: int


def access_token_hash(access_token: str) -> str:
    """The ``ath`` claim for ``access_token``: base64url of its ASCII SHA-256, no padding (§4.2)."""
    digest = hashlib.sha256(access_token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def normalize_htu(url: str) -> str:
    """``url`` without query and fragment, scheme and host in lower case, the default port dropped
    and an empty path as ``/`` (§4.3 check 9 with RFC 3986 §6.2.2 and §6.2.3)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"  # an IPv6 literal
    try:
        port = parts.port
    except ValueError as exc:
        raise InvalidProof("htu is not a valid URL.") from exc
    default = {"https": 443, "http": 80}.get(scheme)
    authority = host if port in (None, default) else f"{host}:{port}"
    return f"{scheme}://{authority}{parts.path or '/'}"


def check_proof(
    values: Sequence[str],
    *,
    method: str,
    url: str,
    now: float,
    nonces: Collection[str] = (),
    access_token: str | None = None,
    remember_jti: Callable[[str, int], bool] | None = None,
    max_age: int = MAX_AGE,
    leeway: int = LEEWAY,
    algorithms: Collection[str] = SIGNING_ALGORITHMS,
) -> Proof:
    """Check the ``DPoP`` header values of one request (RFC 9449 §4.3) and return the proof.

    ``nonces``: the server nonces accepted now; when not empty, the proof must carry one of them
    (§8). ``access_token``: the token presented with the proof at a protected resource, whose hash
    the proof must carry as ``ath`` (§4.3 check 12, §7.1). ``remember_jti(key, seconds)``: records
    a proof id and answers False when it was already recorded within its lifetime (replay, §11.1).
    ``algorithms``: the accepted ``alg`` values, within :data:`SIGNING_ALGORITHMS`.
    """
    if len(values) != 1:
        raise InvalidProof("Exactly one DPoP header is required.")  # check 1
    token = values[0]
    if not isinstance(token, str) or not token or len(token) > MAX_LENGTH or token.count(".") != 2:
        raise InvalidProof("The DPoP proof is not a compact JWS.")  # check 2
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise InvalidProof("The DPoP proof's header cannot be read.") from exc
    if header.get("typ") != "dpop+jwt":
        raise InvalidProof('The DPoP proof\'s typ must be "dpop+jwt".')  # check 4
    algorithm = header.get("alg")
    if (
        not isinstance(algorithm, str)
        or not is_asymmetric(algorithm)
        or algorithm not in SIGNING_ALGORITHMS
        or algorithm not in algorithms
    ):
        raise InvalidProof("The DPoP proof's alg is not an accepted asymmetric algorithm.")  # check 5
    member = header.get("jwk")
    try:
        key = parse_key(member)  # check 7: public keys only
        jkt = thumbprint(member)
    except InvalidClientKeys as exc:
        raise InvalidProof("The DPoP proof's jwk is not a usable public key.") from exc
    if not key_fits(key, algorithm):
        raise InvalidProof("The DPoP proof's jwk does not fit its alg.")
    try:
        claims = jwt.decode(
            token,
            key=key.key,
            algorithms=[algorithm],
            options=SIGNATURE_ONLY,
        )
    except jwt.PyJWTError as exc:
        raise InvalidProof("The DPoP proof's signature does not verify.") from exc  # check 6
    jti, htm, htu, iat = (claims.get(name) for name in ("jti", "htm", "htu", "iat"))
    if not (isinstance(jti, str) and jti and isinstance(htm, str) and isinstance(htu, str)):
        raise InvalidProof("The DPoP proof lacks jti, htm or htu.")  # check 3
    if not isinstance(iat, int) or isinstance(iat, bool):
        raise InvalidProof("The DPoP proof lacks a numeric iat.")
    if htm != method.upper():
        raise InvalidProof("The DPoP proof's htm is not this request's method.")  # check 8
    if normalize_htu(htu) != normalize_htu(url):
        raise InvalidProof("The DPoP proof's htu is not this request's URL.")  # check 9
    if nonces and claims.get("nonce") not in nonces:
        raise NonceRequired("The DPoP proof must carry the server's current nonce.")  # check 10
    if iat < now - max_age - leeway or iat > now + leeway:
        raise InvalidProof("The DPoP proof's iat is outside the accepted window.")  # check 11
    if access_token is not None and claims.get("ath") != access_token_hash(access_token):
        raise InvalidProof("The DPoP proof's ath is not the access token's hash.")  # check 12
    if remember_jti is not None:
        replay_key = hashlib.sha256(f"{jkt}\n{jti}".encode()).hexdigest()
        if not remember_jti(replay_key, max_age + 2 * leeway):
            raise InvalidProof("The DPoP proof was used before.")  # §11.1
    return Proof(jkt=jkt, jti=jti, iat=iat)


def cache_jti_recorder(cache: Any, prefix: str = "ciba:dpop:jti:") -> Callable[[str, int], bool]:
    """A ``remember_jti`` over a Django cache shared by every server (``add`` writes only a new key)."""

    def remember(key: str, seconds: int) -> bool:
        return bool(cache.add(f"{prefix}{key}", 1, timeout=seconds))

    return remember
