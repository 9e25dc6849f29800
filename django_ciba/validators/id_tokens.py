"""The ID token half of the validator: claims of CIBA ID tokens (OIDC Core, CIBA Core §10.1.1)."""

from __future__ import annotations

import base64
import hashlib
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from oauth2_provider.oauth2_validators import OAuth2Validator as DOTOAuth2Validator

from django_ciba import assurance
from django_ciba.clients.subjects import pairwise_sector, subject_for
from django_ciba.core.constants import AUTH_REQ_ID_CLAIM, RT_HASH_CLAIM
from django_ciba.tokens import id_token_signing


if TYPE_CHECKING:
    from oauthlib.common import Request
    from oauthlib.oauth2.rfc6749.tokens import TokenBase

    _ValidatorBase = DOTOAuth2Validator
else:
    _ValidatorBase = object


def token_hash(value: str) -> str:
    """Left half of SHA-256, base64url without padding (at_hash / rt_hash for *S256 algorithms)."""
    digest = hashlib.sha256(value.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).decode("ascii").rstrip("=")


class IdTokenValidatorMixin(_ValidatorBase):
    """ID token claims for :class:`~django_ciba.validators.CibaValidatorMixin`."""

    def get_id_token_dictionary(
        self, token: dict[str, Any], token_handler: TokenBase, request: Request
    ) -> tuple[dict[str, Any], datetime]:
        """DOT's claims, with the approval's ``auth_time``, ``acr`` and ``amr`` (IDT-04): at the CIBA
        grant from the request, at the refresh grant from what was kept for the refresh token's
        family (OIDC Core 12.2); no ``auth_time`` when nobody authenticated."""
        claims, expiration = super().get_id_token_dictionary(token, token_handler, request)
        auth = getattr(request, "ciba_request", None)
        if auth is None:
            kept = assurance.for_refresh(request)
            if kept is not None:
                assurance.add_claims(claims, acr=kept.acr, amr=kept.amr, auth_time=kept.auth_time)
            return claims, expiration
        assurance.add_claims(claims, acr=auth.acr, amr=auth.amr, auth_time=auth.auth_time)
        auth_req_id = getattr(request, "ciba_auth_req_id", None)
        if auth_req_id:
            claims[AUTH_REQ_ID_CLAIM] = auth_req_id
        if token.get("refresh_token"):
            claims[RT_HASH_CLAIM] = token_hash(token["refresh_token"])
        return claims, expiration

    def finalize_id_token(
        self, id_token: dict[str, Any], token: dict[str, Any], token_handler: Any, request: Request
    ) -> str:
        """DOT's ID token, signed with the client's ``id_token_signed_response_alg`` when that is
        one of ``CIBA["ID_TOKEN_SIGNING_KEYS"]`` (PS256, ES256; IDT-06, FAPI-CIBA): the same claims
        and the same IDToken row as DOT (:mod:`django_ciba.tokens.id_token_signing`)."""
        key = id_token_signing.key_for(request.client)
        if key is None:
            return cast(str, super().finalize_id_token(id_token, token, token_handler, request))
        claims, expiration = self.get_id_token_dictionary(token, token_handler, request)
        id_token.update(**claims)
        if "nonce" not in id_token and request.nonce:  # as DOT does (oauthlib issue 746)
            id_token["nonce"] = request.nonce
        signed = id_token_signing.sign(id_token, key)
        row = id_token_signing.store(id_token["jti"], request, expiration)
        # As DOT: Django REST framework reads these.
        request.access_token = row
        request.id_token = row  # type: ignore[attr-defined]  # oauthlib's Request takes any attribute
        return signed

    def save_bearer_token(self, token: Any, request: Request, *args: Any, **kwargs: Any) -> Any:
        """DOT's, then the link from the access token to an ID token signed by
        :meth:`finalize_id_token` (DOT cannot make it: it re-verifies the ID token with its key)."""
        saved = super().save_bearer_token(token, request, *args, **kwargs)
        id_token_signing.link_to_access_token(token, request)
        return saved

    def get_claim_dict(self, request: Request) -> dict[str, Any]:
        """DOT's claims, with the pairwise ``sub`` for a pairwise client (OIDC Core §8.1).

        Both the ID token (every grant, push included) and the userinfo response read this dict.
        DOT gives ``sub`` as a value, or as a callable when ``get_additional_claims`` takes no
        request; the pairwise one follows the same form.
        """
        claims: dict[str, Any] = super().get_claim_dict(request)
        client, user = getattr(request, "client", None), getattr(request, "user", None)
        if client is None or getattr(user, "pk", None) is None or pairwise_sector(client) is None:
            return claims
        if callable(claims.get("sub")):
            claims["sub"] = lambda r: subject_for(r.user, r.client)
        else:
            claims["sub"] = subject_for(user, client)
        return claims
