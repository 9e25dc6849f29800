"""The CIBA grant (``urn:openid:params:grant-type:ciba``) for oauthlib, used by DOT's token endpoint.

All protocol checks of the token request (TOK-01..TOK-16) happen here or in the validator, never in
a view: client authentication first, then grant eligibility, then the auth_req_id's state.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Protocol, cast

from django.db import transaction
from oauthlib.common import Request
from oauthlib.oauth2.rfc6749 import errors
from oauthlib.oauth2.rfc6749.grant_types.base import GrantTypeBase, ValidatorsContainer
from oauthlib.oauth2.rfc8628 import errors as rfc8628_errors
from oauthlib.openid.connect.core.grant_types.base import GrantTypeBase as OpenIDGrantTypeBase

from django_ciba import assurance
from django_ciba.core.conf import ciba_settings
from django_ciba.core.constants import CIBA_GRANT_TYPE


# Statuses returned by ``validate_ciba_auth_req_id`` mapped to the token endpoint's errors (§11).
STATUS_ERRORS: dict[str, type[errors.OAuth2Error]] = {
    "authorization_pending": rfc8628_errors.AuthorizationPendingError,
    "slow_down": rfc8628_errors.SlowDownError,
    "expired_token": rfc8628_errors.ExpiredTokenError,
    "access_denied": rfc8628_errors.AccessDenied,
    "invalid_grant": errors.InvalidGrantError,
    "cancelled": errors.InvalidGrantError,
}

STATUS_DESCRIPTIONS = {
    "authorization_pending": "The user has not yet approved the request.",
    "slow_down": "Polling too fast; wait longer between requests.",
    "expired_token": "The auth_req_id has expired.",
    "access_denied": "The user denied the request.",
    "invalid_grant": "The auth_req_id is unknown, spent, or was issued to another client.",
    "cancelled": "The client cancelled the request.",
}

# Headers of every token response, errors included (RFC 6749 §5.1).
TOKEN_RESPONSE_HEADERS = {
    "Content-Type": "application/json",
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
}

# Parameters that may legitimately repeat (RFC 8707 resource indicators).
REPEATABLE_PARAMETERS = frozenset({"resource"})


class CibaRequestValidator(Protocol):
    """What the CIBA grant asks of its request validator (``CibaValidatorMixin`` over DOT's)."""

    def authenticate_client(self, request: Request, *args: Any, **kwargs: Any) -> bool: ...
    def is_confidential_client(self, application: Any) -> bool: ...
    def validate_ciba_auth_req_id(self, client: Any, auth_req_id: str, request: Request) -> str: ...
    def claim_ciba_request(self, request: Request) -> bool: ...
    def save_token(self, token: dict[str, Any], request: Request, *args: Any, **kwargs: Any) -> None: ...


class CibaGrant(GrantTypeBase):
    """OAuth 2.0 half of the CIBA grant: validates the poll and issues Bearer tokens."""

    custom_validators: ValidatorsContainer  # set by GrantTypeBase.__init__, missing from types-oauthlib

    def __init__(self, request_validator: Any = None, **kwargs: Any) -> None:
        #: The token modifiers registered on this grant (the OpenID wrapper's ID token), in order.
        self.token_modifiers: list[Callable[..., dict[str, Any]]] = []
        super().__init__(request_validator, **kwargs)

    def register_token_modifier(self, modifier: Callable[..., dict[str, Any]]) -> None:
        self.token_modifiers.append(modifier)
        super().register_token_modifier(modifier)

    def create_token_response(self, request: Any, token_handler: Any) -> tuple[dict[str, str], str, int]:
        headers = dict(TOKEN_RESPONSE_HEADERS)
        try:
            self.validate_token_request(request)
            # Claim and mint in one transaction: exactly one concurrent poll wins the claim
            # (TOK-12), and a failure while minting leaves the request redeemable. The claim is the
            # lifecycle's "tokens issued" transition (audited, signalled once this commits).
            with transaction.atomic():
                if not cast(CibaRequestValidator, self.request_validator).claim_ciba_request(request):
                    raise errors.InvalidGrantError(
                        description=STATUS_DESCRIPTIONS["invalid_grant"], request=request
                    )
                token = self.mint_tokens(request, token_handler)
        except errors.OAuth2Error as exc:
            headers.update(exc.headers)
            return headers, exc.json, exc.status_code
        return headers, json.dumps(token), 200

    def mint_tokens(self, request: Any, token_handler: Any) -> dict[str, Any]:
        """Create, sign and store the tokens with DOT's machinery (token endpoint and push alike).

        ``request`` must carry ``client``, ``user``, ``scopes`` and ``ciba_request``; the ID token
        gets ``at_hash`` from oauthlib and the CIBA claims from the validator mixin.
        """
        token = token_handler.create_token(request, refresh_token=self.issue_refresh_token(request))
        for modifier in self.token_modifiers:
            token = modifier(token, token_handler, request)
        cast(CibaRequestValidator, self.request_validator).save_token(token, request)
        assurance.remember_for_refresh(request.ciba_request, token)  # for the refresh grant's ID tokens
        return token

    def issue_refresh_token(self, request: Any) -> bool:
        scope = ciba_settings.REFRESH_TOKEN_SCOPE
        return scope is None or scope in (request.scopes or [])

    def validate_token_request(self, request: Any) -> None:
        for validator in self.custom_validators.pre_token:
            validator(request)
        if request.grant_type != CIBA_GRANT_TYPE:
            raise errors.UnsupportedGrantTypeError(request=request)
        repeated = sorted(set(request.duplicate_params) - REPEATABLE_PARAMETERS)
        if repeated:
            raise errors.InvalidRequestError(
                description=f"Repeated parameter: {', '.join(repeated)}.", request=request
            )
        ciba_validator = cast(CibaRequestValidator, self.request_validator)
        # TOK-02: client authentication exactly as for DOT's other grants; public clients refused.
        if not ciba_validator.authenticate_client(request) or not ciba_validator.is_confidential_client(
            request.client
        ):
            raise errors.InvalidClientError(request=request)
        request.client_id = request.client_id or request.client.client_id
        # TOK-04 / TOK-05: no enabled CibaClient, or a push client -> unauthorized_client.
        self.validate_grant_type(request)
        auth_req_id = getattr(request, "auth_req_id", None)
        if not auth_req_id:
            raise errors.InvalidRequestError(description="Missing auth_req_id parameter.", request=request)
        status = ciba_validator.validate_ciba_auth_req_id(request.client, auth_req_id, request)
        if status != "approved":
            error_class = STATUS_ERRORS.get(status, errors.InvalidGrantError)
            raise error_class(description=STATUS_DESCRIPTIONS.get(status), request=request)
        for validator_fn in self.custom_validators.post_token:
            validator_fn(request)


class OpenIDCibaGrant(OpenIDGrantTypeBase):
    """OpenID Connect wrapper: adds the ID token through DOT's ``finalize_id_token``."""

    def __init__(self, request_validator: Any = None, **kwargs: Any) -> None:
        self.proxy_target = CibaGrant(request_validator=request_validator, **kwargs)
        self.register_token_modifier(self.add_id_token)
