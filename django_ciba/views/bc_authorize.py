"""``POST /bc-authorize``: the backchannel authentication endpoint (CIBA Core §7). HTTP only."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_post_parameters
from rest_framework import exceptions as drf_exceptions
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from django_ciba.bc_authorize.cancel import cancel_request
from django_ciba.bc_authorize.params import parse_form
from django_ciba.bc_authorize.service import acknowledge, start_authentication
from django_ciba.checks.serving import misconfigured_response
from django_ciba.clients.authentication import authenticate_client
from django_ciba.exceptions import CibaError, InvalidRequest, MethodNotAllowed


NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class JSONOnlyNegotiation(BaseContentNegotiation):
    """Always answer JSON, whatever the Accept header says (errors included)."""

    def select_parser(self, request: Any, parsers: Any) -> Any:
        return parsers[0] if parsers else None

    def select_renderer(self, request: Any, renderers: Any, format_suffix: Any = None) -> Any:
        return renderers[0], renderers[0].media_type


class AcknowledgedResponse(Response):
    """A response that calls ``on_close`` after the server has written it out and closed it."""

    def __init__(self, data: Any, *, on_close: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(data, **kwargs)
        self.on_close = on_close

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.on_close()


def error_response(error: CibaError) -> Response:
    return Response(error.payload, status=error.status_code, headers={**NO_STORE, **error.headers})


if TYPE_CHECKING:
    _ViewBase = APIView  # the mixin always comes before APIView
else:
    _ViewBase = object


class ProtocolErrorMixin(_ViewBase):
    """Render every failure as the protocol's error JSON, never as HTML or a 500 for bad input."""

    authentication_classes: tuple = ()
    permission_classes: tuple = ()
    parser_classes: tuple = ()
    renderer_classes = (JSONRenderer,)
    content_negotiation_class = JSONOnlyNegotiation

    def initialize_request(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        """Keep Django's own request in ``self.http_request``: the services read the raw body."""
        self.http_request = request
        return super().initialize_request(request, *args, **kwargs)

    # DRF finalizes any HttpResponseBase: the 503 answer is a plain Django response.
    def handle_exception(self, exc: Exception) -> HttpResponseBase:  # type: ignore[override]
        if isinstance(exc, CibaError):
            return error_response(exc)
        if isinstance(exc, drf_exceptions.MethodNotAllowed):
            response = error_response(MethodNotAllowed())
            response["Allow"] = ", ".join(self.allowed_methods)
            return response
        if isinstance(exc, drf_exceptions.APIException | RequestDataTooBig):
            return error_response(InvalidRequest("The request is malformed."))
        # Invalid settings (a check error): 503 temporarily_unavailable JSON, not a 500.
        unavailable = misconfigured_response(self.request, exc)
        if unavailable is not None:
            return unavailable
        return super().handle_exception(exc)


@method_decorator(
    sensitive_post_parameters(
        "client_secret",
        "client_assertion",
        "client_notification_token",
        "id_token_hint",
        "login_hint_token",
        "user_code",
        "request",
    ),
    name="dispatch",
)
class BackchannelAuthenticationView(ProtocolErrorMixin, APIView):
    """Authenticate the client, validate the request, answer ``{auth_req_id, expires_in, interval}``."""

    http_method_names = ["post"]

    def post(self, request: Any, *args: Any, **kwargs: Any) -> Response:
        django_request = self.http_request
        form = parse_form(django_request.META.get("CONTENT_TYPE", ""), django_request.body)
        application, ciba, oauthlib_request = authenticate_client(django_request, form)
        ack = start_authentication(
            application, ciba, form, request=django_request, oauthlib_request=oauthlib_request
        )
        auth_request = ack.auth_request
        # Acknowledged when the server closes the response, i.e. after the answer was written out.
        return AcknowledgedResponse(
            ack.as_dict(), status=200, headers=NO_STORE, on_close=lambda: acknowledge(auth_request)
        )


@method_decorator(
    sensitive_post_parameters("client_secret", "client_assertion", "auth_req_id"), name="dispatch"
)
class BackchannelCancelView(ProtocolErrorMixin, APIView):
    """Authenticate the client as at bc-authorize, cancel its request, answer ``{"status": "cancelled"}``."""

    http_method_names = ["post"]

    def post(self, request: Any, *args: Any, **kwargs: Any) -> Response:
        django_request = self.http_request
        form = parse_form(django_request.META.get("CONTENT_TYPE", ""), django_request.body)
        application, _ciba, _oauthlib_request = authenticate_client(django_request, form)
        cancel_request(application, form)
        return Response({"status": "cancelled"}, status=200, headers=NO_STORE)
