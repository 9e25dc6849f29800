"""Client authentication at the backchannel endpoint, through DOT's own validator (BC-03, DISC-06).

The same ``OAUTH2_VALIDATOR_CLASS.authenticate_client`` that guards DOT's token endpoint runs here
(client_secret_basic, client_secret_post, ``private_key_jwt`` from
:class:`~django_ciba.validators.CibaValidatorMixin`, and whatever else the host's validator adds), so
both endpoints accept exactly the same methods (REG-07). With ``private_key_jwt`` the form may omit
``client_id``: the assertion's ``iss`` names the client, and the validator sets ``request.client``.
Public clients are refused; under FAPI-CIBA so are push clients (FAPI-03, ``unauthorized_client``),
and the validator accepts only the FAPI client authentication methods (FAPI-12).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from oauth2_provider.views.mixins import OAuthLibMixin
from oauthlib.common import Request as OAuthlibRequest

from django_ciba.core import profiles
from django_ciba.core.conf import ciba_settings
from django_ciba.exceptions import InvalidClient, UnauthorizedClient
from django_ciba.models import CibaClient


class _CoreHolder(OAuthLibMixin):
    """Caches DOT's oauthlib core on its own class (honours ALWAYS_RELOAD_OAUTHLIB_CORE)."""


def authenticate_client(django_request: Any, form: dict[str, str]) -> tuple[Any, CibaClient, OAuthlibRequest]:
    """Return ``(application, ciba_client, oauthlib_request)`` or raise a protocol error."""
    core = _CoreHolder.get_oauthlib_core()
    headers = core.extract_headers(django_request)
    # Only the body carries parameters (BC-02): client credentials must not come from the URL query
    # (RFC 6749 §2.3.1), and a malformed query must not break oauthlib's parsing.
    oauthlib_request = OAuthlibRequest(
        django_request.build_absolute_uri(django_request.path),
        http_method="POST",
        body=urlencode(form),
        headers=headers,
    )
    validator = core.server.request_validator
    try:
        authenticated = validator.authenticate_client(oauthlib_request)
    except (ValueError, TypeError, UnicodeError):
        authenticated = False
    application = oauthlib_request.client if authenticated else None
    if application is None or getattr(application, "client_type", None) != "confidential":
        raise InvalidClient()
    ciba = CibaClient.objects.get_ciba_client(application)
    if ciba is None:
        raise UnauthorizedClient()  # AERR-05 / REG-03
    if ciba.delivery_mode not in (ciba_settings.DELIVERY_MODES or []):
        # A mode taken out of CIBA["DELIVERY_MODES"] is no longer offered to existing clients either.
        raise UnauthorizedClient("The client's token delivery mode is not offered.")
    if not profiles.delivery_mode_allowed(ciba, ciba.delivery_mode):
        raise UnauthorizedClient("Push mode is not allowed under FAPI-CIBA.")  # FAPI-03
    return application, ciba, oauthlib_request
