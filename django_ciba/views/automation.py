"""``POST ciba/test-automation/?secret=...&auth_req_id=...&action=allow|deny``: the automated
approval URL of the OpenID conformance suite (:mod:`django_ciba.approval.automation`), test deployments only.

Switched off, misconfigured, refused as production, or called with a wrong secret, it is a 404
like any unknown URL. The secret and the auth_req_id travel in the query string, so Django's
request log (which names the path of every 4xx answer) never records them; nothing here logs.
"""

from __future__ import annotations

import json
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt

from django_ciba.approval import automation
from django_ciba.exceptions import DecisionError


def json_response(body: dict[str, str], status: int = 200) -> HttpResponse:
    response = HttpResponse(json.dumps(body), status=status, content_type="application/json")
    response["Cache-Control"] = "no-store"
    return response


def error(status: int, code: str, description: str) -> HttpResponse:
    return json_response({"error": code, "error_description": description}, status)


def single(request: HttpRequest, name: str) -> str | None:
    """The one value of query parameter ``name``; None when missing or repeated."""
    values = request.GET.getlist(name)
    return values[0] if len(values) == 1 else None


@method_decorator(csrf_exempt, name="dispatch")
class AutomatedApprovalView(View):
    """Approve (``allow``) or deny (``deny``) the request named by ``auth_req_id``."""

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        config = automation.available()
        if config is None or not automation.secret_matches(config, single(request, "secret")):
            raise Http404()
        if request.method != "POST":
            response = error(405, "invalid_request", "Only POST is allowed.")
            response["Allow"] = "POST"
            return response
        action = single(request, "action")
        if action not in automation.ACTIONS:
            return error(400, "invalid_request", "action must be allow or deny.")
        auth_req_id = single(request, "auth_req_id")
        if not auth_req_id:
            return error(400, "invalid_request", "auth_req_id is missing or repeated.")
        try:
            auth_request = automation.decide(auth_req_id, action)
        except DecisionError as exc:
            return error(exc.status_code, exc.code, str(exc))
        return json_response({"status": auth_request.status})
