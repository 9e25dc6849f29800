"""The client console's pages (DEMO CLIENT, see :mod:`example_project.console`).

* ``GET /console/``: the start form and the requests; ``POST`` starts a request, then redirects.
* ``GET /console/requests/``: the requests as an HTML fragment (the page's script reloads it).
* ``GET /console/api/requests/``: the same as JSON; ``POST`` (form fields ``mode``, ``login_hint``,
  ``binding_message``) starts a request and answers it as JSON (201).

Every GET moves the pending requests on (:func:`.client.advance_all`). POSTs need Django's CSRF
token (cookie ``csrftoken`` and the ``csrfmiddlewaretoken`` field or ``X-CSRFToken`` header).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.template.backends.django import DjangoTemplates
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_GET, require_http_methods

from . import client, state


# The console's templates, without making it an app of INSTALLED_APPS.
_templates = DjangoTemplates(
    {
        "NAME": "ciba-console",
        "DIRS": [Path(__file__).resolve().parent / "templates"],
        "APP_DIRS": False,
        "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
    }
)


def _render(request: HttpRequest, name: str, context: dict[str, Any], status: int = 200) -> HttpResponse:
    html = _templates.get_template(name).render(context, request)
    return HttpResponse(html, status=status)


def _form(request: HttpRequest, config: dict[str, Any] | None) -> dict[str, str]:
    default_hint = (config or {}).get("username", "")
    return {
        "mode": request.POST.get("mode", "poll"),
        "login_hint": request.POST.get("login_hint", "").strip() or default_hint,
        "binding_message": request.POST.get("binding_message", "").strip(),
    }


def _shown(st: dict[str, Any]) -> dict[str, Any]:
    """A request as the templates show it: JSON pretty-printed (secrets are already shortened)."""
    shown = state.public(st)
    shown["events"] = [
        {**e, "detail_json": json.dumps(e["detail"], indent=2, ensure_ascii=False) if "detail" in e else ""}
        for e in shown["events"]
    ]
    shown["claims_json"] = (
        json.dumps(shown["claims"], indent=2, ensure_ascii=False) if shown["claims"] else ""
    )
    return shown


def _context(config: dict[str, Any] | None, error: str = "") -> dict[str, Any]:
    clients = (config or {}).get("clients", {})
    return {
        "config": config,
        "client_options": [(mode, clients[mode]["client_id"]) for mode in client.MODES if mode in clients],
        "requests": [_shown(st) for st in client.advance_all()],
        "error": error,
    }


@never_cache
@ensure_csrf_cookie
@require_http_methods(["GET", "POST"])
def console(request: HttpRequest) -> HttpResponse:
    config = state.load_config()
    if request.method == "POST":
        form = _form(request, config)
        try:
            client.start(**form)
        except client.ConsoleError as exc:
            context = _context(config, str(exc))
            return _render(request, "console/console.html", {**context, "form": form}, status=400)
        return redirect("console:console")
    context = _context(config)
    form = {"mode": "poll", "login_hint": (config or {}).get("username", ""), "binding_message": ""}
    return _render(request, "console/console.html", {**context, "form": form})


@never_cache
@require_GET
def requests_fragment(request: HttpRequest) -> HttpResponse:
    return _render(request, "console/_requests.html", _context(state.load_config()))


@never_cache
@ensure_csrf_cookie
@require_http_methods(["GET", "POST"])
def api_requests(request: HttpRequest) -> JsonResponse:
    config = state.load_config()
    if request.method == "POST":
        try:
            st = client.start(**_form(request, config))
        except client.ConsoleError as exc:
            return JsonResponse({"error": str(exc)}, status=400)
        return JsonResponse(state.public(st), status=201)
    return JsonResponse(
        {
            "configured": config is not None,
            "issuer": (config or {}).get("issuer"),
            "requests": [state.public(st) for st in client.advance_all()],
        }
    )
