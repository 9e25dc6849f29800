"""oauthlib server classes with the CIBA grant registered, for ``OAUTH2_SERVER_CLASS``."""

from __future__ import annotations

from typing import Any

from oauthlib.oauth2.rfc6749.request_validator import RequestValidator
from oauthlib.openid import Server as OpenIDServer

from django_ciba.core.constants import CIBA_GRANT_TYPE
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


class Server(CibaServerMixin, OpenIDServer):
    """oauthlib's OpenID Connect server plus the CIBA grant."""
