"""``OAUTH2_BACKEND_CLASS`` that keeps repeated parameters of CIBA token requests visible, and tells
oauthlib the request's absolute URL.

DOT's ``OAuthLibCore.extract_body`` keeps only the last value of a repeated parameter, which hides
a repeated ``auth_req_id`` from the grant. For CIBA token requests every value is passed on, so the
grant can answer ``invalid_request`` (RFC 6749 §3.2: parameters must not be repeated).

DOT hands oauthlib the request's path only; a DPoP proof names the absolute URL (``htu``, RFC 9449
§4.3), as Django sees it behind its proxy (``SECURE_PROXY_SSL_HEADER``, ``USE_X_FORWARDED_HOST``).
It is passed on with the headers, as :data:`ABSOLUTE_URL_HEADER`.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import DisallowedHost
from oauth2_provider.oauth2_backends import OAuthLibCore as DOTOAuthLibCore

from django_ciba.core.constants import ABSOLUTE_URL_HEADER, CIBA_GRANT_TYPE


class CibaOAuthLibCoreMixin:
    def extract_headers(self, request: Any) -> dict[str, Any]:
        headers: dict[str, Any] = super().extract_headers(request)  # type: ignore[misc]
        try:
            headers[ABSOLUTE_URL_HEADER] = request.build_absolute_uri(request.path)
        except (DisallowedHost, ValueError):
            pass  # the host is not allowed: no DPoP proof can match; DOT answers as before
        return headers

    def extract_body(self, request: Any) -> list[tuple[str, str]]:
        if request.POST.get("grant_type") == CIBA_GRANT_TYPE:
            return [(key, value) for key, values in request.POST.lists() for value in values]
        return super().extract_body(request)  # type: ignore[misc]


class OAuthLibCore(CibaOAuthLibCoreMixin, DOTOAuthLibCore):
    """DOT's OAuthLibCore with :class:`CibaOAuthLibCoreMixin`."""
