"""DOT's introspection endpoint (RFC 7662), answering ``active: false`` for a disabled client's tokens.

An operator who disables a client's CIBA registration expects its tokens to stop working: the
validator refuses them at DOT's protected resources (userinfo included), and this view makes
introspection agree, so resource servers that introspect refuse them too. Re-enabling the
registration makes the same tokens valid again until they expire; to kill them for good, revoke
them (the admin, or DOT's revocation endpoint).
"""

from __future__ import annotations

import hashlib
from typing import Any

from django.http import HttpResponse, JsonResponse
from oauth2_provider.models import get_access_token_model
from oauth2_provider.views import IntrospectTokenView as DOTIntrospectTokenView

from django_ciba.tokens.rules import is_disabled


class IntrospectTokenView(DOTIntrospectTokenView):
    @staticmethod
    def get_token_response(token_value: Any = None) -> HttpResponse:
        if isinstance(token_value, str):
            checksum = hashlib.sha256(token_value.encode("utf-8")).hexdigest()
            found = get_access_token_model().objects.select_related("application__ciba")
            token = found.filter(token_checksum=checksum).first()
            if token is not None and is_disabled(token.application):
                return JsonResponse({"active": False}, status=200)
        return DOTIntrospectTokenView.get_token_response(token_value)
