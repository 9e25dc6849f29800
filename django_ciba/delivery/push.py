"""Push mode (CIBA Core §10.3): mint the tokens outside any HTTP request, and take them back.

Tokens are minted by the worker just before the first push attempt, through the same oauthlib
server, grant and validator as the token endpoint (so DOT stores them, signs the ID token and adds
``at_hash``; the validator adds the ``auth_req_id`` and ``rt_hash`` claims, PUSH-03..05). The token
response is kept sealed on the outbox row so that a retried push resends the very same tokens.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from django.db import transaction
from django.utils import timezone
from oauth2_provider.models import get_access_token_model
from oauth2_provider.settings import oauth2_settings
from oauthlib.common import Request as OAuthlibRequest

from django_ciba import lifecycle
from django_ciba.core.constants import CIBA_GRANT_TYPE
from django_ciba.core.sealing import seal, unseal
from django_ciba.models import AuthenticationRequest, Delivery
from django_ciba.tokens import issued
from django_ciba.tokens import rules as grant_rules


logger = logging.getLogger(__name__)


class MintingFailed(Exception):
    """Tokens could not be minted for an approved push request (reported as transaction_failed)."""


class NotAllowed(Exception):
    """The registration was disabled, or its scope narrowed below the approved scopes, since then."""


class UserInactive(Exception):
    """The user was deactivated after approving: no tokens (as at the token endpoint)."""


def _server() -> Any:
    return oauth2_settings.OAUTH2_SERVER_CLASS(
        oauth2_settings.OAUTH2_VALIDATOR_CLASS(), **oauth2_settings.server_kwargs
    )


def _oauthlib_request(auth_request: AuthenticationRequest, auth_req_id: str) -> OAuthlibRequest:
    issuer = oauth2_settings.OIDC_ISS_ENDPOINT or ""
    request = OAuthlibRequest(f"{issuer.rstrip('/')}/token/", http_method="POST", body="", headers={})
    request.grant_type = CIBA_GRANT_TYPE
    request.client = auth_request.client
    request.client_id = auth_request.client.client_id
    request.user = auth_request.user
    request.scopes = auth_request.granted_scopes
    # oauthlib's Request takes any attribute; its stubs only declare the OAuth parameters.
    request.ciba_request = auth_request  # type: ignore[attr-defined]
    request.ciba_auth_req_id = auth_req_id  # type: ignore[attr-defined]
    request.ciba_push = True  # type: ignore[attr-defined]
    return request


def mint_for_push(delivery: Delivery) -> bool:
    """Spend the approved request and seal its token response onto ``delivery``.

    Returns False when the request is no longer approved (expired, or minted by someone else).
    Raises :class:`UserInactive` for a deactivated user and :class:`MintingFailed` when DOT could
    not mint, or when the client's registration no longer allows it (disabled, or its registered
    ``scope`` narrowed below the approved scopes: the same rules as at the token endpoint); nothing
    is stored in these cases.
    """
    auth_request = delivery.auth_request
    now = timezone.now()
    if not auth_request.user.is_active:
        raise UserInactive()
    try:
        client = auth_request.client
        if grant_rules.is_disabled(client) or not grant_rules.scopes_allowed(
            client, auth_request.granted_scopes
        ):
            raise NotAllowed()
        with transaction.atomic():
            if not lifecycle.issue_tokens(auth_request, now=now):  # audited, signalled after commit
                return False
            auth_req_id = unseal(auth_request.auth_req_id_sealed)
            server = _server()
            request = _oauthlib_request(auth_request, auth_req_id)
            token = server.ciba_grant.mint_tokens(request, server.default_token_type)
            body = {**token, "auth_req_id": auth_req_id}
            delivery.payload_sealed = seal(json.dumps(body, separators=(",", ":")))
            Delivery.objects.filter(pk=delivery.pk).update(payload_sealed=delivery.payload_sealed)
            access_token = issued.access_token_of(token, request)
            AuthenticationRequest.objects.filter(pk=auth_request.pk).update(access_token=access_token)
            auth_request.access_token = access_token
    except Exception as exc:
        # The transaction rolled back: no token exists and the request is still approved.
        logger.error("Minting push tokens for request #%s failed: %s", auth_request.pk, type(exc).__name__)
        raise MintingFailed(type(exc).__name__) from exc
    return True


def revoke_pushed_tokens(auth_request: AuthenticationRequest) -> None:
    """Revoke what was minted for a push that never arrived (access, refresh and ID token)."""
    AccessToken = get_access_token_model()
    access_token = AccessToken.objects.filter(pk=auth_request.access_token_id).first()
    if access_token is None:
        return
    refresh_token = getattr(access_token, "refresh_token", None)
    id_token = access_token.id_token
    if refresh_token is not None:
        refresh_token.revoke()  # revokes the access token too
    else:
        access_token.revoke()
    if id_token is not None:
        id_token.revoke()


def pushed_payload(delivery: Delivery) -> bytes:
    """The sealed token response of a push, opened for sending."""
    return unseal(delivery.payload_sealed).encode("utf-8")
