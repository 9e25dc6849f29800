"""``POST /register`` (RFC 7591) and ``GET/PUT/DELETE /register/<client_id>`` (RFC 7592).

Thin DRF views over :mod:`django_ciba.clients.registration`: every failure is the protocol's error JSON
(``invalid_client_metadata``, ``invalid_redirect_uri``, ``invalid_software_statement`` or a 401
``invalid_token``), never HTML or a 500 for a bad request.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.http.response import HttpResponseBase
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_post_parameters
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response
from rest_framework.views import APIView

from django_ciba.clients import registration
from django_ciba.core.conf import ciba_settings
from django_ciba.exceptions import InvalidClientMetadata, MethodNotAllowed
from django_ciba.views.bc_authorize import NO_STORE, ProtocolErrorMixin, error_response
from django_ciba.views.discovery import absolute_url


def client_uri(request: Any, client_id: str) -> str:
    """The client's ``registration_client_uri`` (absolute, on the issuer's host)."""
    return absolute_url(request, reverse("django_ciba:register-client", kwargs={"client_id": client_id}))


class RegistrationErrorMixin(ProtocolErrorMixin):
    """:class:`ProtocolErrorMixin`, with a malformed request reported as ``invalid_client_metadata``."""

    def handle_exception(self, exc: Exception) -> HttpResponseBase:  # type: ignore[override]  # as its base
        if isinstance(exc, drf_exceptions.MethodNotAllowed):
            methods = ", ".join(self.allowed_methods)
            response = error_response(MethodNotAllowed(f"Allowed methods: {methods}."))
            response["Allow"] = methods
            return response
        if isinstance(exc, drf_exceptions.APIException | RequestDataTooBig):
            return error_response(InvalidClientMetadata("The request is malformed."))
        return super().handle_exception(exc)


@method_decorator(sensitive_post_parameters(), name="dispatch")
class ClientRegistrationView(RegistrationErrorMixin, APIView):
    """RFC 7591 §3: register a CIBA client; 201 with its credentials and metadata."""

    http_method_names = ["post"]

    def post(self, request: Any, *args: Any, **kwargs: Any) -> Response:
        django_request = self.http_request
        token = registration.bearer_token(django_request)
        if not ciba_settings.REGISTRATION_OPEN and token is None:
            raise registration.InvalidToken()  # before reading the body
        data = registration.parse_json_body(django_request)
        client = registration.register(data, initial_access_token=token)
        body = client.as_dict(client_uri(django_request, client.application.client_id))
        return Response(body, status=201, headers=NO_STORE)


@method_decorator(sensitive_post_parameters(), name="dispatch")
class ClientConfigurationView(RegistrationErrorMixin, APIView):
    """RFC 7592 §2: read, replace or delete a registration with its registration access token."""

    http_method_names = ["get", "put", "delete"]

    def _authenticate(self, request: Any, client_id: str) -> tuple[Any, str]:
        token = registration.bearer_token(self.http_request)
        return registration.authenticate(client_id, token), token or ""

    def get(self, request: Any, client_id: str) -> Response:
        ciba, token = self._authenticate(request, client_id)
        client = registration.RegisteredClient(ciba.application, ciba, token)
        return Response(client.as_dict(client_uri(self.http_request, client_id)), headers=NO_STORE)

    def put(self, request: Any, client_id: str) -> Response:
        ciba, token = self._authenticate(request, client_id)
        data = registration.parse_json_body(self.http_request)
        client = registration.update(ciba, data, registration_access_token=token)
        return Response(client.as_dict(client_uri(self.http_request, client_id)), headers=NO_STORE)

    def delete(self, request: Any, client_id: str) -> Response:
        ciba, _ = self._authenticate(request, client_id)
        registration.delete(ciba)
        return Response(status=204, headers=NO_STORE)
