"""oauthlib server classes with the CIBA grant registered, for ``OAUTH2_SERVER_CLASS``."""

from __future__ import annotations

from typing import Any

from oauthlib.oauth2.rfc6749 import errors
from oauthlib.oauth2.rfc6749.request_validator import RequestValidator
from oauthlib.openid import Server as OpenIDServer

from django_ciba.core.constants import CIBA_GRANT_TYPE
from django_ciba.tokens import authorization_details, resource, sender_constraint
from django_ciba.tokens.grant import OpenIDCibaGrant
from django_ciba.tokens.rules import check_registered_scopes


# Token-endpoint grants that never ask the validator's validate_scopes: their scopes come from an
# earlier grant, so the registered scope is checked once they are settled (post_token).
SCOPE_CHECKED_AFTER = ("refresh_token", CIBA_GRANT_TYPE)


class CibaServerMixin:
    """Registers the CIBA grant on any oauthlib token-endpoint server.

    Compose it in front of a host's own server class: ``class MyServer(CibaServerMixin, MyServer)``.
    DOT's ``server_kwargs`` (device-flow options such as ``pre_token``) are deliberately not passed
    to the CIBA grant. The refresh_token and CIBA grants also check the scopes they are about to
    grant against the client's registered ``scope``
    (:func:`~django_ciba.tokens.rules.check_registered_scopes`).
    """

    grant_types: dict[str, Any]
    tokens: dict[str, Any]
    bearer: Any

    def __init__(self, request_validator: RequestValidator, *args: Any, **kwargs: Any) -> None:
        # Cooperative: the next class in the MRO is the host's oauthlib server.
        super().__init__(request_validator, *args, **kwargs)  # type: ignore[call-arg]
        self.ciba_grant = OpenIDCibaGrant(request_validator)
        self.grant_types[CIBA_GRANT_TYPE] = self.ciba_grant
        for name in SCOPE_CHECKED_AFTER:
            validators = getattr(self.grant_types.get(name), "custom_validators", None)
            if validators is not None:
                # A new list: one passed in server_kwargs may be shared by every grant and server.
                validators.post_token = [*validators.post_token, check_registered_scopes]
        # RFC 9396 §6: the refresh grant answers with the granted authorization details, or a part.
        refresh_validators = getattr(self.grant_types.get("refresh_token"), "custom_validators", None)
        if refresh_validators is not None:
            refresh_validators.post_token = [
                *refresh_validators.post_token,
                authorization_details.check_refresh,
            ]
        # Sender-constrained tokens (DPoP, certificates) for every grant of the token endpoint.
        for validators in token_grant_validators(self.grant_types):
            validators.pre_token = [sender_constraint.check_proof, *validators.pre_token]
            validators.post_token = [*validators.post_token, sender_constraint.check_binding]
        # Protected resources (ResourceEndpoint) and userinfo validate DPoP-bound tokens too.
        checking = resource.SenderConstrainedToken(request_validator)
        if "Bearer" in getattr(self, "tokens", {}):
            self.tokens["Bearer"] = checking
        if hasattr(self, "bearer"):
            self.bearer = checking  # the userinfo endpoint's token type

    def validate_userinfo_request(self, request: Any) -> None:
        """oauthlib's check, answering a refused sender-constrained token with its own challenge."""
        try:
            super().validate_userinfo_request(request)  # type: ignore[misc]
        except errors.InvalidTokenError:
            refusal = resource.refusal_for(request)
            if refusal is None:
                raise
            raise refusal from None


def token_grant_validators(grant_types: dict[str, Any]) -> list[Any]:
    """The distinct ``custom_validators`` of the token endpoint's grants, dispatchers unwrapped."""
    found: dict[int, Any] = {}
    for grant in grant_types.values():
        candidates = [grant, getattr(grant, "default_grant", None), getattr(grant, "oidc_grant", None)]
        for candidate in candidates:
            validators = getattr(candidate, "custom_validators", None) if candidate is not None else None
            if validators is not None:
                found.setdefault(id(validators), validators)
    return list(found.values())


class Server(CibaServerMixin, OpenIDServer):
    """oauthlib's OpenID Connect server plus the CIBA grant."""
