"""DOT's token view, answering wrong methods with the OAuth error JSON instead of an empty 405.

Everything else, including the CIBA grant, is DOT's own ``TokenView`` with the server, validator and
backend classes from ``OAUTH2_PROVIDER``. Error bodies are always labelled as JSON (TOK-15).
"""

from __future__ import annotations

import json
from typing import Any

from django.core.exceptions import BadRequest, SuspiciousOperation
from django.http import HttpResponse
from django.http.multipartparser import MultiPartParserError
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_post_parameters
from oauth2_provider.views import TokenView as DOTTokenView


DEVICE_CODE_GRANT_TYPE = "urn:ietf:params:oauth:grant-type:device_code"


def error_response(status: int, error: str, description: str) -> HttpResponse:
    body = {"error": error, "error_description": description}
    response = HttpResponse(json.dumps(body), status=status, content_type="application/json")
    response["Cache-Control"] = "no-store"
    return response


@method_decorator(
    # DOT marks password and client_secret; error reports must not show these either.
    sensitive_post_parameters(
        "password", "client_secret", "client_assertion", "auth_req_id", "refresh_token"
    ),
    name="dispatch",
)
class TokenView(DOTTokenView):
    http_method_names = ["post"]

    def http_method_not_allowed(self, request: Any, *args: Any, **kwargs: Any) -> HttpResponse:
        response = error_response(405, "invalid_request", "Only POST is allowed.")
        response["Allow"] = "POST"
        return response

    def post(self, request: Any, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            grant_types = request.POST.getlist("grant_type")
        except (BadRequest, SuspiciousOperation, MultiPartParserError):
            # Non-UTF-8 charset, too many fields, body too large, broken multipart: Django's HTML 400.
            return error_response(400, "invalid_request", "The request body is malformed.")
        # RFC 6749 §3.2: DOT's backend keeps only the last grant_type, which would pick the grant.
        if len(grant_types) > 1:
            return error_response(400, "invalid_request", "Repeated parameter: grant_type.")
        # DOT reads request.POST["device_code"] unguarded (KeyError -> 500).
        if request.POST.get("grant_type") == DEVICE_CODE_GRANT_TYPE and not request.POST.get("device_code"):
            return error_response(400, "invalid_request", "Missing device_code parameter.")
        response = super().post(request, *args, **kwargs)
        # Some oauthlib errors (e.g. query parameters on the POST) come without a Content-Type.
        if response.status_code >= 400 and not response.get("Content-Type", "").startswith(
            "application/json"
        ):
            try:
                json.loads(response.content)
            except ValueError:
                return response
            response["Content-Type"] = "application/json"
            if not response.has_header("Cache-Control"):
                response["Cache-Control"] = "no-store"
        return response
