"""DOT's token view, answering wrong methods with the OAuth error JSON instead of an empty 405.

Everything else, including the CIBA grant, is DOT's own ``TokenView`` with the server, validator and
backend classes from ``OAUTH2_PROVIDER``. Error bodies are always labelled as JSON (TOK-15).

Issued tokens are never answered with an error: after the grant committed them, DOT reads the
access token back to send ``app_authorized``. Should the database go away in between (a restart),
that read fails; the tokens are answered all the same (the signal is not sent, a warning is
logged), since a retried poll would only get ``invalid_grant``: the auth_req_id is spent.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from django.core.exceptions import BadRequest, SuspiciousOperation
from django.db import InterfaceError, OperationalError, transaction
from django.http import HttpResponse
from django.http.multipartparser import MultiPartParserError
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_post_parameters
from oauth2_provider.views import TokenView as DOTTokenView

from django_ciba.checks.serving import guarded


DEVICE_CODE_GRANT_TYPE = "urn:ietf:params:oauth:grant-type:device_code"
ISSUED = "_ciba_issued_token_response"

logger = logging.getLogger(__name__)


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

    @guarded  # invalid settings (a check error, e.g. no signing key): 503 JSON, not a 500
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
        try:
            response = super().post(request, *args, **kwargs)
        except (OperationalError, InterfaceError) as exc:
            response = self._issued_response(request, exc)
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

    def create_token_response(self, request: Any) -> tuple[str, dict[str, str], str, int]:
        """DOT's, remembering a success: its tokens are stored (see :meth:`_issued_response`)."""
        url, headers, body, status = super().create_token_response(request)
        if status == 200:
            setattr(request, ISSUED, (headers, body))
        return url, headers, body, status

    def _issued_response(self, request: Any, exc: Exception) -> HttpResponse:
        """The token response after the database failed in DOT's bookkeeping that follows it.

        Only when the tokens are committed (no request-wide transaction, ``ATOMIC_REQUESTS``, that
        the failure rolls back); otherwise ``exc`` propagates (a 503 with the middleware).
        """
        issued = getattr(request, ISSUED, None)
        if issued is None or transaction.get_connection().in_atomic_block:
            raise exc
        logger.warning(
            "Tokens issued, but app_authorized was not sent: the database failed afterwards (%s).",
            type(exc).__name__,
        )
        headers, body = issued
        response = HttpResponse(content=body, status=200)
        for name, value in headers.items():
            response[name] = value
        return response
