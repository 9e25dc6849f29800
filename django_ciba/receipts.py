"""Signed approval receipts: what the user (or a policy) approved, signed by the OP at approval.

:func:`issue` is called by :func:`django_ciba.lifecycle.approve` inside the approval's transaction:
it signs a JWS (header ``typ`` :data:`~django_ciba.core.receipt_jws.RECEIPT_TYPE`, ``kid`` of the
key) with the OP's own keys, the ones published at the JWKS endpoint, and stores it on the request
(``approval_receipt``, ``approval_receipt_id`` = its ``jti``). Which requests get one:
``CIBA["RECEIPTS"]["ISSUE"]`` (``details``: those with authorization details; ``always``;
``never``). The key: the first ``CIBA["ID_TOKEN_SIGNING_KEYS"]`` key of the algorithm
(``CIBA["RECEIPTS"]["ALGORITHM"]``, else the client's ``id_token_signed_response_alg``, else
RS256), or DOT's own RSA key for RS256.

The claims hold nothing secret: no auth_req_id (its SHA-256, which its holder can compute), the
``sub`` the client knows (pairwise for a pairwise client, as in its ID tokens), and who decided as
the kind of the audit actor (``user``, ``policy``, ``operator``...), never an internal id.
"""

from __future__ import annotations

import json
import logging
import secrets
from datetime import datetime
from typing import Any

import jwt
from oauth2_provider.settings import oauth2_settings

from django_ciba.core.conf import ciba_settings
from django_ciba.core.id_token_keys import SigningKey, SigningKeyProblem, active_key, parse_entry
from django_ciba.core.receipt_jws import RECEIPT_TYPE
from django_ciba.models import AuthenticationRequest, CibaClient
from django_ciba.pairwise import subject_for


logger = logging.getLogger(__name__)

DETAILS, ALWAYS, NEVER = "details", "always", "never"
#: The values of ``CIBA["RECEIPTS"]["ISSUE"]``.
ISSUE_MODES = (DETAILS, ALWAYS, NEVER)
#: The audit event that keeps a receipt (its ``receipt_id`` and the ``receipt`` itself).
ISSUED = "receipt_issued"
#: The algorithm of receipts when neither the setting nor the client names one.
DEFAULT_ALGORITHM = "RS256"


def wanted(auth_request: AuthenticationRequest) -> bool:
    """Whether ``auth_request``, being approved, gets a receipt (``CIBA["RECEIPTS"]["ISSUE"]``)."""
    mode = ciba_settings.RECEIPTS_ISSUE
    if mode == ALWAYS:
        return True
    return mode == DETAILS and bool(auth_request.authorization_details)


def dot_key() -> SigningKey | None:
    """DOT's RSA key (``OIDC_RSA_PRIVATE_KEY``) as an RS256 key, with the kid DOT publishes
    (its RFC 7638 thumbprint); None when DOT has none or it is unusable (check E256)."""
    pem = oauth2_settings.OIDC_RSA_PRIVATE_KEY
    if not pem:
        return None
    try:
        return parse_entry(0, {"alg": "RS256", "key": pem})
    except SigningKeyProblem:
        return None


def key_for_algorithm(alg: str) -> SigningKey | None:
    """The key receipts are signed with for ``alg``: ours, else DOT's for RS256; None when none."""
    try:
        key = active_key(alg)
    except SigningKeyProblem:
        return None  # reported by the ID token checks (E200-E206)
    if key is None and alg == DEFAULT_ALGORITHM:
        key = dot_key()
    return key


def signing_key(application: Any) -> SigningKey | None:
    """The key of ``application``'s receipts: see the module's docstring."""
    configured = ciba_settings.RECEIPTS_ALGORITHM
    if configured:
        return key_for_algorithm(configured)
    ciba = CibaClient.objects.registration_of(application)
    registered = (ciba.id_token_signed_response_alg or "") if ciba is not None else ""
    key = key_for_algorithm(registered) if registered else None
    return key or key_for_algorithm(DEFAULT_ALGORITHM)


def issuer() -> str:
    """The ``iss`` of receipts: the OP's issuer as configured in DOT (``OIDC_ISS_ENDPOINT``)."""
    return str(oauth2_settings.OIDC_ISS_ENDPOINT or "")


def actor_kind(actor: str) -> str:
    """``user``, ``policy``, ``operator``... from an audit actor (``user:<pk>``): no internal id."""
    return actor.split(":", 1)[0]


def claims(auth_request: AuthenticationRequest, *, actor: str, jti: str, now: datetime) -> dict[str, Any]:
    """The claims of the receipt of ``auth_request``, just approved by ``actor``."""
    at = int(now.timestamp())
    body: dict[str, Any] = {
        "iss": issuer(),
        "jti": jti,
        "iat": at,
        "aud": auth_request.client.client_id,
        "sub": subject_for(auth_request.user, auth_request.client),
        "client_id": auth_request.client.client_id,
        "approved_at": at,
        "approved_by": actor_kind(actor),
        "auth_req_id_hash": auth_request.auth_req_id_hash,
        "scope": auth_request.granted_scope,
        "authorization_details": list(auth_request.granted_details),
    }
    if auth_request.binding_message:
        body["binding_message"] = auth_request.binding_message
    if auth_request.acr:
        body["acr"] = auth_request.acr
    if auth_request.amr:
        body["amr"] = list(auth_request.amr)
    if auth_request.auth_time is not None:
        body["auth_time"] = int(auth_request.auth_time.timestamp())
    return body


def sign(body: dict[str, Any], key: SigningKey) -> str:
    payload = json.loads(json.dumps(body, default=str))
    return jwt.encode(
        payload, key.private_key, algorithm=key.alg, headers={"typ": RECEIPT_TYPE, "kid": key.kid}
    )


def issue(auth_request: AuthenticationRequest, *, actor: str, now: datetime) -> str | None:
    """Sign and store the receipt of ``auth_request`` (approved, read back from the database), in
    the caller's transaction; its ``jti``, or None when it gets none (the setting, or no key: then
    an error is logged and check E257 reports the setting)."""
    if not wanted(auth_request):
        return None
    key = signing_key(auth_request.client)
    if key is None:
        logger.error("No key signs approval receipts (check E257): request #%s has none.", auth_request.pk)
        return None
    jti = secrets.token_urlsafe(32)
    receipt = sign(claims(auth_request, actor=actor, jti=jti, now=now), key)
    AuthenticationRequest.objects.filter(pk=auth_request.pk).update(
        approval_receipt=receipt, approval_receipt_id=jti
    )
    auth_request.approval_receipt = receipt
    auth_request.approval_receipt_id = jti
    return jti


__all__ = ["ISSUED", "ISSUE_MODES", "RECEIPT_TYPE", "claims", "issue", "signing_key", "wanted"]
