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

:class:`MalformedBodyMiddleware` answers a ``POST`` whose ``application/x-www-form-urlencoded``
body declares any charset but ``utf-8`` (``charset=utf-16``, ``charset=latin-1``, ``charset=utf8``,
an unknown ``charset=bogus``) with a 400 ``invalid_request`` before anything reads the form.
Form bodies are UTF-8 (the media type defines no charset; CIBA's BC-02, RFC 6749 Appendix B).
Django refuses every other declared charset with ``BadRequest`` whenever ``request.POST`` is read
(it compares the name, so ``utf8`` too) and reads an unknown one as UTF-8; with ``DEBUG`` on, the
error page of any exception reads ``request.POST`` again, turning the answer into a 500: DOT's
introspection, revocation and userinfo views, the CSRF check of the approval pages, or any
earlier error (a ``DisallowedHost`` from ``CommonMiddleware``). Put it first in ``MIDDLEWARE``,
so that nothing before it can fail on such a request. Check ``django_ciba.W090`` warns when it is
not installed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse


logger = logging.getLogger(__name__)

#: The dotted path to put in ``MIDDLEWARE``.
MIDDLEWARE_PATH = "django_ciba.middleware.DatabaseUnavailableMiddleware"
#: The dotted path of :class:`MalformedBodyMiddleware`.
MALFORMED_BODY_MIDDLEWARE_PATH = "django_ciba.middleware.MalformedBodyMiddleware"

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


class OutageAlreadyLogged(logging.Filter):
    """Drops ``django.request``'s line for an outage answer: the middleware's own line names the cause."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(getattr(record, "request", None), "ciba_outage_logged", False)


def install_log_filter() -> None:
    """Give the ``django.request`` logger :class:`OutageAlreadyLogged` (once; called at start-up)."""
    request_logger = logging.getLogger("django.request")
    if not any(isinstance(existing, OutageAlreadyLogged) for existing in request_logger.filters):
        request_logger.addFilter(OutageAlreadyLogged())


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
        request.ciba_outage_logged = True  # type: ignore[attr-defined]  # read by OutageAlreadyLogged
        return unavailable_response(request)


FORM = "application/x-www-form-urlencoded"
CHARSET_DESCRIPTION = "A form body must be UTF-8 encoded."
BAD_REQUEST_HTML = (
    "<!DOCTYPE html>\n"
    '<html lang="en"><head><meta charset="utf-8">'
    '<meta name="viewport" content="width=device-width, initial-scale=1">'
    "<title>Bad request</title></head>\n"
    "<body><h1>Bad request</h1><p>The form was not sent as UTF-8.</p></body></html>\n"
)


def form_charset_refused(request: HttpRequest) -> bool:
    """True for a form ``POST`` declaring a charset other than ``utf-8`` (any case)."""
    if request.method != "POST" or request.content_type != FORM:
        return False
    charset = (request.content_params or {}).get("charset")
    # Django's own rule for form bodies (an alias such as utf8 is refused too), plus unknown names,
    # which Django would silently read as UTF-8.
    return charset is not None and charset.lower() != "utf-8"


def bad_request_response(request: HttpRequest, description: str) -> HttpResponse:
    """A 400 ``invalid_request`` (JSON, or HTML for a browser page), never cached."""
    response: HttpResponse
    if wants_html(request):
        response = HttpResponse(BAD_REQUEST_HTML, status=400, content_type="text/html; charset=utf-8")
    else:
        response = JsonResponse({"error": "invalid_request", "error_description": description}, status=400)
    response["Cache-Control"] = "no-store"
    response["Pragma"] = "no-cache"
    return response


class MalformedBodyMiddleware:
    """Answer a form ``POST`` in a charset other than UTF-8 with 400 ``invalid_request``, before
    anything reads it (see the module docstring)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if form_charset_refused(request):
            logger.info("Refused a form body not in UTF-8: %s %s", request.method, request.path)
            return bad_request_response(request, CHARSET_DESCRIPTION)
        return self.get_response(request)
