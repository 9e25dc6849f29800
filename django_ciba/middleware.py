"""Answer a database outage in the protocol's own format instead of a 500.

While the database is unreachable (restarted, failed over, out of connections), every endpoint
that touches it raises :class:`django.db.OperationalError` or :class:`django.db.InterfaceError`.
Django would answer those with a bare 500 (and, with ``DEBUG`` on, a traceback).
:class:`DatabaseUnavailableMiddleware` answers them instead with::

    HTTP/1.1 503 Service Unavailable
    Retry-After: 5
    Cache-Control: no-store
    Content-Type: application/json

    {"error": "temporarily_unavailable",
     "error_description": "The service is temporarily unavailable. Retry later."}

``temporarily_unavailable`` is the OAuth 2.0 error code for this case (RFC 6749 §4.1.2.1), so
clients of the backchannel, token, registration and device endpoints keep parsing JSON and retry.
A request that explicitly accepts ``text/html`` but not JSON (a browser on the approval pages)
gets a minimal HTML page with the same status and headers instead. Nothing from the exception
(its message may quote SQL, parameters or the server's address) reaches the client or the log:
one WARNING line names the exception class and the request path.

Only exceptions raised by views reach the middleware (``process_exception``): DOT's token view,
django-ciba's views and every other view of the project, so its place in ``MIDDLEWARE`` does not
matter. Other exceptions are left alone. Check ``django_ciba.W070`` warns when it is not installed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse


logger = logging.getLogger("django_ciba.middleware")

#: The dotted path to put in ``MIDDLEWARE``.
MIDDLEWARE_PATH = "django_ciba.middleware.DatabaseUnavailableMiddleware"

#: Seconds a client is asked to wait before retrying.
RETRY_AFTER = 5

ERROR = "temporarily_unavailable"
DESCRIPTION = "The service is temporarily unavailable. Retry later."
HTML = (
    "<!DOCTYPE html>\n"
    '<html lang="en"><head><meta charset="utf-8">'
    '<meta name="viewport" content="width=device-width, initial-scale=1">'
    "<title>Temporarily unavailable</title></head>\n"
    "<body><h1>Temporarily unavailable</h1>"
    "<p>The service is temporarily unavailable. Please try again in a moment.</p></body></html>\n"
)

#: Connection-level database failures (Django's wrappers of the driver's exceptions).
DATABASE_UNAVAILABLE: tuple[type[Exception], ...] = (OperationalError, InterfaceError)


def wants_html(request: HttpRequest) -> bool:
    """True when ``Accept`` names ``text/html`` explicitly and no JSON type (``*/*`` is not HTML)."""
    types = {f"{media.main_type}/{media.sub_type}".lower() for media in request.accepted_types}
    return "text/html" in types and not any(
        name == "application/json" or name.endswith("+json") for name in types
    )


def unavailable_response(request: HttpRequest) -> HttpResponse:
    """The 503 ``temporarily_unavailable`` answer (JSON, or HTML for a browser page)."""
    response: HttpResponse
    if wants_html(request):
        response = HttpResponse(HTML, status=503, content_type="text/html; charset=utf-8")
    else:
        response = JsonResponse({"error": ERROR, "error_description": DESCRIPTION}, status=503)
    response["Retry-After"] = str(RETRY_AFTER)
    response["Cache-Control"] = "no-store"
    response["Pragma"] = "no-cache"
    return response


class DatabaseUnavailableMiddleware:
    """Turn ``OperationalError`` / ``InterfaceError`` raised by a view into a 503
    ``temporarily_unavailable`` answer (see the module docstring)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, DATABASE_UNAVAILABLE):
            return None
        # The class only: the message may quote SQL, parameters or connection details.
        logger.warning(
            "Database unavailable (%s): answered 503 temporarily_unavailable to %s %s",
            type(exception).__name__,
            request.method,
            request.path,
        )
        response = unavailable_response(request)
        # This line is the log of the answer: Django's django.request logger need not repeat it.
        response._has_been_logged = True  # type: ignore[attr-defined]
        return response
