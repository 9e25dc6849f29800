"""ID tokens signed with the algorithm the client registered (``id_token_signed_response_alg``).

DOT signs every ID token with the application's algorithm (RS256 with its RSA key, or HS256). A
client whose :class:`~django_ciba.models.CibaClient` names PS256 or ES256 (or RS256 while
``CIBA["ID_TOKEN_SIGNING_KEYS"]`` has an RS256 key) gets its ID tokens signed here instead, with the
first configured key of that algorithm (OIDC Core §2, OIDC Registration §2; IDT-06, FAPI-13:
PS256/ES256).
Every grant that makes ID tokens goes through DOT's ``finalize_id_token``, so the CIBA grant at the
token endpoint, push delivery and the refresh grant all honour it.

``at_hash`` (oauthlib) and ``rt_hash`` (the validator) are the left half of SHA-256 whatever the
algorithm: RS256, PS256 and ES256 all hash with SHA-256 (OIDC Core §3.1.3.6).

DOT stores the ID token row itself and links it to the access token by re-verifying the signed ID
token with the application's own key, which fails for a token signed here. :func:`store` creates the
row through DOT's public model, and :func:`link_to_access_token` sets the access token's
``id_token`` once DOT has saved it (revoking a pushed token revokes its ID token through that link).
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

import jwt
from django.db import router, transaction
from oauth2_provider.models import get_access_token_model, get_id_token_model

from django_ciba.core.id_token_keys import SigningKey, active_key, dot_signs_rs256
from django_ciba.exceptions import CibaConfigurationError
from django_ciba.models import CibaClient


#: The request attribute that holds the ID token row made here, until the access token is saved.
SIGNED_ROW = "ciba_signed_id_token"


def registered_algorithm(application: Any) -> str:
    """The client's ``id_token_signed_response_alg``, "" when it registered none."""
    ciba = CibaClient.objects.registration_of(application)
    return (ciba.id_token_signed_response_alg or "") if ciba is not None else ""


def key_for(application: Any) -> SigningKey | None:
    """The key that signs ``application``'s ID tokens, or None when DOT signs them as it always did
    (no registered algorithm, or RS256 without an RS256 key of ours while DOT has its RSA key).

    Raises :class:`~django_ciba.exceptions.CibaConfigurationError` when the registered algorithm
    has no key any more (check W200 lists such clients): an ID token signed otherwise would be
    refused by the client anyway.
    """
    alg = registered_algorithm(application)
    if not alg:
        return None
    key = active_key(alg)
    if key is None and alg == "RS256" and dot_signs_rs256():
        return None
    if key is None:
        raise CibaConfigurationError(
            f"A client registered id_token_signed_response_alg {alg}, and CIBA['ID_TOKEN_SIGNING_KEYS'] "
            "has no key for it (check W200)."
        )
    return key


def sign(claims: dict[str, Any], key: SigningKey) -> str:
    """The compact JWS of ``claims`` (read as DOT reads them: non-JSON values as strings)."""
    payload = json.loads(json.dumps(claims, default=str))
    return jwt.encode(payload, key.private_key, algorithm=key.alg, headers={"typ": "JWT", "kid": key.kid})


def store(jti: str, request: Any, expires: datetime) -> Any:
    """The ID token row, with the fields DOT gives it, in the IDToken model's database."""
    IDToken = get_id_token_model()
    with transaction.atomic(using=router.db_for_write(IDToken)):
        row = IDToken.objects.create(
            user=request.user,
            scope=request.scope or " ".join(request.scopes),
            expires=expires,
            jti=jti,
            application=request.client,
        )
    setattr(request, SIGNED_ROW, row)
    return row


def link_to_access_token(token: dict[str, Any], request: Any) -> None:
    """Point the access token DOT just saved at the ID token signed here (no-op otherwise).

    Only an access token still without an ID token is updated: when DOT hands back a token it
    issued before (a refresh within its grace period), that token keeps what it had.
    """
    row = getattr(request, SIGNED_ROW, None)
    access_token = token.get("access_token")
    if row is None or not access_token or not token.get("id_token"):
        return
    checksum = hashlib.sha256(access_token.encode("utf-8")).hexdigest()
    get_access_token_model().objects.filter(
        token_checksum=checksum, application=request.client, id_token__isnull=True
    ).update(id_token=row)
    setattr(request, SIGNED_ROW, None)


__all__ = ["key_for", "link_to_access_token", "registered_algorithm", "sign", "store"]
