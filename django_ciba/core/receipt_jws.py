"""Approval receipts as JWS: their media type, and their verification against a JWK set.

Pure functions over PyJWT, without models or Django settings, so that a receipt can be checked
anywhere the OP's published JWK set is at hand (``manage.py ciba_verify_receipt``, or the snippet
on the authorization details page). Issuing is :mod:`django_ciba.receipts`.
"""

from __future__ import annotations

import json
from typing import Any

import jwt


#: The ``typ`` header of every receipt (RFC 7515 §4.1.9, media type without ``application/``).
RECEIPT_TYPE = "ciba-approval-receipt+jwt"
#: The algorithms a receipt may be signed with (those of the ID tokens).
ALGORITHMS = ("RS256", "PS256", "ES256")
#: Claims every receipt has.
REQUIRED_CLAIMS = ("iss", "jti", "iat", "aud", "sub", "client_id", "approved_at", "approved_by")


class ReceiptInvalid(ValueError):
    """A receipt that does not verify; :attr:`kind` names the problem (``malformed``, ``typ``,
    ``alg``, ``kid``, ``jwks``, ``signature``, ``claims``), the message explains it."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def is_receipt_type(typ: Any) -> bool:
    """Whether a ``typ`` header names a receipt: compared without case, ``application/`` optional
    (RFC 7515 §4.1.9)."""
    if not isinstance(typ, str):
        return False
    typ = typ.lower()
    return typ.removeprefix("application/") == RECEIPT_TYPE if "/" in typ else typ == RECEIPT_TYPE


def _header(receipt: str) -> dict[str, Any]:
    try:
        return dict(jwt.get_unverified_header(receipt))
    except (jwt.PyJWTError, ValueError, TypeError) as exc:
        raise ReceiptInvalid("malformed", "not a compact JWS.") from exc


def _key(jwks: Any, kid: str, alg: str) -> Any:
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
        raise ReceiptInvalid("jwks", 'the JWK set must be a JSON object with a "keys" array.')
    for member in jwks["keys"]:
        if isinstance(member, dict) and member.get("kid") == kid:
            if member.get("alg") not in (None, alg):
                raise ReceiptInvalid(
                    "alg", f"key {kid!r} is for {member.get('alg')}, the receipt says {alg}."
                )
            try:
                return jwt.PyJWK(member, algorithm=alg).key
            except (jwt.PyJWTError, ValueError, TypeError, KeyError) as exc:
                raise ReceiptInvalid("jwks", f"key {kid!r} of the JWK set is not usable for {alg}.") from exc
    raise ReceiptInvalid(
        "kid", f"no key {kid!r} in the JWK set (unknown, or retired and no longer published)."
    )


def verify(receipt: str, jwks: Any, *, issuer: str | None = None) -> dict[str, Any]:
    """The claims of ``receipt`` once its header, signature (with the key its ``kid`` names in
    ``jwks``, a JWK set as a dict) and required claims check out; :class:`ReceiptInvalid` else.
    ``issuer``, when given, must equal ``iss``. The audience is not checked (the receipt is the
    client's, shown to anyone it chooses)."""
    if not isinstance(receipt, str) or receipt.count(".") != 2:
        raise ReceiptInvalid("malformed", "not a compact JWS (three base64url parts).")
    header = _header(receipt.strip())
    if not is_receipt_type(header.get("typ")):
        raise ReceiptInvalid(
            "typ", f"typ is {header.get('typ')!r}, not {RECEIPT_TYPE!r}: not an approval receipt."
        )
    alg, kid = header.get("alg"), header.get("kid")
    if alg not in ALGORITHMS:
        raise ReceiptInvalid("alg", f"alg {alg!r} is not one of {', '.join(ALGORITHMS)}.")
    if not isinstance(kid, str) or not kid:
        raise ReceiptInvalid("kid", "the header names no kid.")
    key = _key(jwks, kid, alg)
    try:
        claims = jwt.decode(
            receipt.strip(),
            key,
            algorithms=[alg],
            options={"verify_aud": False, "verify_exp": False, "require": list(REQUIRED_CLAIMS)},
        )
    except jwt.InvalidSignatureError as exc:
        raise ReceiptInvalid(
            "signature", "the signature does not verify: altered, or not signed by this key."
        ) from exc
    except jwt.MissingRequiredClaimError as exc:
        raise ReceiptInvalid("claims", f"the claim {exc.claim} is missing.") from exc
    except jwt.PyJWTError as exc:
        raise ReceiptInvalid("malformed", f"unreadable ({type(exc).__name__}).") from exc
    if issuer is not None and claims.get("iss") != issuer:
        raise ReceiptInvalid("claims", f"iss is {claims.get('iss')!r}, not {issuer!r}.")
    return dict(claims)


def read_jwks(text: str) -> Any:
    """A JWK set from its JSON text; :class:`ReceiptInvalid` (``jwks``) when it is not JSON."""
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ReceiptInvalid("jwks", "the JWK set is not JSON.") from exc


__all__ = [
    "ALGORITHMS",
    "RECEIPT_TYPE",
    "REQUIRED_CLAIMS",
    "ReceiptInvalid",
    "is_receipt_type",
    "read_jwks",
    "verify",
]
