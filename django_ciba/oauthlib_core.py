"""``OAUTH2_BACKEND_CLASS`` that keeps repeated parameters of CIBA token requests visible.

DOT's ``OAuthLibCore.extract_body`` keeps only the last value of a repeated parameter, which hides
a repeated ``auth_req_id`` from the grant. For CIBA token requests every value is passed on, so the
grant can answer ``invalid_request`` (RFC 6749 §3.2: parameters must not be repeated).
"""

from __future__ import annotations

from typing import Any

from oauth2_provider.oauth2_backends import OAuthLibCore as DOTOAuthLibCore

from django_ciba.core.constants import CIBA_GRANT_TYPE


class CibaOAuthLibCoreMixin:
    def extract_body(self, request: Any) -> list[tuple[str, str]]:
        if request.POST.get("grant_type") == CIBA_GRANT_TYPE:
            return [(key, value) for key, values in request.POST.lists() for value in values]
        return super().extract_body(request)  # type: ignore[misc]


class OAuthLibCore(CibaOAuthLibCoreMixin, DOTOAuthLibCore):
    """DOT's OAuthLibCore with :class:`CibaOAuthLibCoreMixin`."""
