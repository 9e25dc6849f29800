"""DOT's OpenID discovery document plus the CIBA metadata (CIBA Core §4, DISC-01..07)."""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import urlparse

from django.http import HttpResponse, JsonResponse
from django.urls import reverse
from oauth2_provider.settings import oauth2_settings
from oauth2_provider.views import ConnectDiscoveryInfoView

from django_ciba.checks.serving import guarded
from django_ciba.clients.keys import supported_algorithms
from django_ciba.clients.tls_metadata import discovery_metadata as mtls_metadata
from django_ciba.core.authorization_types import supported_types
from django_ciba.core.conf import ciba_settings
from django_ciba.core.constants import CIBA_GRANT_TYPE
from django_ciba.core.id_token_keys import configured_algorithms
from django_ciba.core.profiles import discovery_metadata
from django_ciba.models import AuthMethod


logger = logging.getLogger(__name__)


def absolute_url(request: Any, path: str) -> str:
    """``path`` on the issuer's host (like DOT's ``_get_endpoint_url``), or the request's host."""
    issuer = oauth2_settings.OIDC_ISS_ENDPOINT
    if not issuer:
        return request.build_absolute_uri(path)
    parsed = urlparse(issuer)
    return f"{parsed.scheme}://{parsed.netloc}{path}"


def ciba_metadata(request: Any, base: dict[str, Any]) -> dict[str, Any]:
    """The CIBA keys to merge into a metadata document."""
    grant_types = list(base.get("grant_types_supported") or oauth2_settings.OAUTH2_GRANT_TYPES_SUPPORTED)
    for extra in ("refresh_token", CIBA_GRANT_TYPE):
        if extra not in grant_types:
            grant_types.append(extra)
    auth_methods = list(
        base.get("token_endpoint_auth_methods_supported")
        or oauth2_settings.OIDC_TOKEN_ENDPOINT_AUTH_METHODS_SUPPORTED
    )
    if AuthMethod.PRIVATE_KEY_JWT not in auth_methods:
        auth_methods.append(AuthMethod.PRIVATE_KEY_JWT.value)
    algorithms = supported_algorithms()
    data: dict[str, Any] = {
        "backchannel_authentication_endpoint": absolute_url(request, reverse("django_ciba:bc-authorize")),
        # A django-ciba extension (no standard name yet): where a client cancels its request.
        "backchannel_authentication_cancel_endpoint": absolute_url(request, reverse("django_ciba:bc-cancel")),
        "backchannel_token_delivery_modes_supported": list(ciba_settings.DELIVERY_MODES),
        "backchannel_user_code_parameter_supported": bool(ciba_settings.USER_CODE_SUPPORTED),
        # DISC-03 (signed requests, SR-*) and DISC-06 (private_key_jwt at both endpoints).
        "backchannel_authentication_request_signing_alg_values_supported": algorithms,
        "token_endpoint_auth_methods_supported": auth_methods,
        "token_endpoint_auth_signing_alg_values_supported": algorithms,
        "registration_endpoint": absolute_url(request, reverse("django_ciba:register")),
        "subject_types_supported": list(ciba_settings.SUBJECT_TYPES_SUPPORTED),
        "grant_types_supported": grant_types,
    }
    data.update(mtls_metadata(auth_methods))  # RFC 8705 §2.1, §2.2, §3.3, §5: with a trusted TLS proxy
    # IDT-06: the algorithms of CIBA["ID_TOKEN_SIGNING_KEYS"] next to DOT's (RS256, HS256).
    id_token_algs = list(base.get("id_token_signing_alg_values_supported") or [])
    data["id_token_signing_alg_values_supported"] = id_token_algs + [
        alg for alg in configured_algorithms() if alg not in id_token_algs
    ]
    if ciba_settings.ACR_VALUES_SUPPORTED:
        data["acr_values_supported"] = list(ciba_settings.ACR_VALUES_SUPPORTED)
    types = supported_types()
    if types:  # RFC 9396 §10
        data["authorization_details_types_supported"] = types
    if ciba_settings.DPOP_ENABLED:  # RFC 9449 §5.1
        data["dpop_signing_alg_values_supported"] = list(ciba_settings.DPOP_SIGNING_ALGORITHMS)
    return data


OIDC_DISABLED = "OpenID Connect is not enabled on this server."


class CibaConnectDiscoveryInfoView(ConnectDiscoveryInfoView):
    """Mount before DOT's URLs, on the same path, so this document is the one served.

    With ``OIDC_ENABLED`` off (check E001) there is no document: the answer is 503
    ``temporarily_unavailable`` JSON, whatever ``DEBUG`` says (DOT's view raises with ``DEBUG`` on,
    a 500, and answers an empty 404 with it off).
    """

    def dispatch(self, request: Any, *args: Any, **kwargs: Any) -> HttpResponse:
        if not oauth2_settings.OIDC_ENABLED:
            logger.error(
                "Answered 503 to %s: OAUTH2_PROVIDER['OIDC_ENABLED'] is off (check E001).", request.path
            )
            response = JsonResponse(
                {"error": "temporarily_unavailable", "error_description": OIDC_DISABLED}, status=503
            )
            response["Cache-Control"] = "no-store"
            return response
        return super().dispatch(request, *args, **kwargs)

    @guarded  # invalid settings (a check error): 503 JSON, not a 500
    def get(self, request: Any, *args: Any, **kwargs: Any) -> HttpResponse:
        response = super().get(request, *args, **kwargs)
        if response.status_code != 200:
            return response
        data = json.loads(response.content)
        data.update(ciba_metadata(request, data))
        data = discovery_metadata(data)  # last: FAPI-CIBA narrows the whole document (FAPI-03/-12/-13)
        response.content = json.dumps(data).encode("utf-8")
        return response
