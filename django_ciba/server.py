"""oauthlib server classes with the CIBA grant registered, for ``OAUTH2_SERVER_CLASS``."""

from __future__ import annotations

from typing import Any

from oauthlib.openid import Server as OpenIDServer

from .constants import CIBA_GRANT_TYPE
from .grants import OpenIDCibaGrant


class CibaServerMixin:
    """Registers the CIBA grant on any oauthlib token-endpoint server.

    Compose it in front of a host's own server class: ``class MyServer(CibaServerMixin, MyServer)``.
    DOT's ``server_kwargs`` (device-flow options such as ``pre_token``) are deliberately not passed
    to the CIBA grant.
    """

    grant_types: dict[str, Any]

    def __init__(self, request_validator: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(request_validator, *args, **kwargs)
        self.ciba_grant = OpenIDCibaGrant(request_validator)
        self.grant_types[CIBA_GRANT_TYPE] = self.ciba_grant


class Server(CibaServerMixin, OpenIDServer):
    """oauthlib's OpenID Connect server plus the CIBA grant."""
