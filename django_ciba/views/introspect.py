"""DOT's introspection endpoint (RFC 7662), answering ``active: false`` for a disabled client's tokens.

An operator who disables a client's CIBA registration expects its tokens to stop working: the
validator refuses them at DOT's protected resources (userinfo included), and this view makes
introspection agree, so resource servers that introspect refuse them too. Re-enabling the
registration makes the same tokens valid again until they expire; to kill them for good, revoke
them (the admin, or DOT's revocation endpoint).

A sender-constrained token is reported with its ``cnf`` claim (``jkt`` for a DPoP key,
``x5t#S256`` for a TLS client certificate) and, when DPoP-bound, ``token_type: DPoP``, so that the
resource server can hold the presenter to it. A token issued with authorization details
(RFC 9396 §9.2) is reported with them, and one issued for an approval with a signed receipt with
``approval_receipt_id`` (the receipt's ``jti``), so that a resource server can refuse a second use
of one approval.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from django.http import HttpResponse, JsonResponse
from oauth2_provider.models import get_access_token_model
from oauth2_provider.views import IntrospectTokenView as DOTIntrospectTokenView

from django_ciba.models import TokenBinding
from django_ciba.tokens.authorization_details import for_access_token as granted_details
from django_ciba.tokens.authorization_details import receipt_id_of
from django_ciba.tokens.rules import is_disabled
from django_ciba.tokens.sender_constraint import DPOP_TOKEN_TYPE


class IntrospectTokenView(DOTIntrospectTokenView):
    @staticmethod
    def get_token_response(token_value: Any = None) -> HttpResponse:
        token = None
        if isinstance(token_value, str):
            checksum = hashlib.sha256(token_value.encode("utf-8")).hexdigest()
            found = get_access_token_model().objects.select_related(
                "application__ciba", "ciba_binding", "ciba_authorization_details"
            )
            token = found.filter(token_checksum=checksum).first()
            if token is not None and is_disabled(token.application):
                return JsonResponse({"active": False}, status=200)
        response = DOTIntrospectTokenView.get_token_response(token_value)
        if token is None or response.status_code != 200:
            return response
        binding = getattr(token, "ciba_binding", None)
        details = granted_details(token)
        receipt_id = receipt_id_of(token)
        if not isinstance(binding, TokenBinding) and details is None and receipt_id is None:
            return response
        body = json.loads(response.content)
        if not body.get("active"):
            return response
        if isinstance(binding, TokenBinding):
            # RFC 9449 §6.2, RFC 8705 §3.2: what the token is bound to, for the resource server.
            body["cnf"] = binding.confirmation
            if binding.jkt:
                body["token_type"] = DPOP_TOKEN_TYPE
        if details is not None:
            body["authorization_details"] = details  # RFC 9396 §9.2
        if receipt_id is not None:
            body["approval_receipt_id"] = receipt_id  # the approval it spends: single-use
        return JsonResponse(body, status=200)
