"""DOT's token view, answering wrong methods with the OAuth error JSON instead of an empty 405.

Everything else, including the CIBA grant, is DOT's own ``TokenView`` with the server, validator and
backend classes from ``OAUTH2_PROVIDER``.
"""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpResponse
from oauth2_provider.views import TokenView as DOTTokenView


class TokenView(DOTTokenView):
    http_method_names = ["post"]

    def http_method_not_allowed(self, request: Any, *args: Any, **kwargs: Any) -> HttpResponse:
        body = {"error": "invalid_request", "error_description": "Only POST is allowed."}
        response = HttpResponse(json.dumps(body), status=405, content_type="application/json")
        response["Allow"] = "POST"
        response["Cache-Control"] = "no-store"
        return response
