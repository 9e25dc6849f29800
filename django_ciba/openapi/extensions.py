"""drf-spectacular view extensions: what each django-ciba DRF view takes and answers.

Imported by :class:`django_ciba.apps.DjangoCibaConfig` when ``drf_spectacular`` is installed;
defining the classes registers them with drf-spectacular.
"""

from __future__ import annotations

from typing import Any, cast

from drf_spectacular.extensions import OpenApiViewExtension
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import serializers

from django_ciba.approval.serializers import ApproveSerializer, AuthenticationRequestSerializer
from django_ciba.openapi import schemas


FORM = "application/x-www-form-urlencoded"
CLIENT_AUTH: list[dict[str, list[str]]] = [{"clientSecretBasic": []}, {}]
UNAVAILABLE = "The database is unreachable (temporarily_unavailable, with Retry-After)."


def replace(extension: OpenApiViewExtension, **methods: Any) -> Any:
    """A subclass of the target view with ``extend_schema`` applied per HTTP method."""
    target = cast(type, extension.target_class)  # the import path is resolved by now
    view = type(target.__name__, (target,), {})
    return extend_schema_view(**methods)(view)


def errors(serializer: Any, **by_status: str) -> dict[int, OpenApiResponse]:
    return {
        int(status[1:]): OpenApiResponse(serializer, description=text) for status, text in by_status.items()
    }


class BackchannelAuthenticationSchema(OpenApiViewExtension):
    target_class = "django_ciba.views.bc_authorize.BackchannelAuthenticationView"

    def view_replacement(self) -> Any:
        return replace(
            self,
            post=extend_schema(
                operation_id="bc_authorize",
                tags=["ciba"],
                summary="Start a backchannel authentication (CIBA §7)",
                description="The client names a user; the OP answers at once with an auth_req_id and "
                "reaches the user's authentication device. No auth_req_id is created unless every "
                "check passed.",
                request={FORM: schemas.BackchannelRequest},
                responses={
                    200: OpenApiResponse(
                        schemas.BackchannelAcknowledgement, description="Accepted (CIBA §7.3)."
                    ),
                    **errors(
                        schemas.BackchannelError,
                        s400="Malformed or refused request (CIBA §13).",
                        s401="invalid_client: client authentication failed.",
                        s403="access_denied: a rate limit or an abuse control refused it.",
                        s405="invalid_request: only POST.",
                        s503=UNAVAILABLE,
                    ),
                },
                auth=CLIENT_AUTH,  # type: ignore[arg-type]  # drf-spectacular takes security requirements, not only names
            ),
        )


class BackchannelCancelSchema(OpenApiViewExtension):
    target_class = "django_ciba.views.bc_authorize.BackchannelCancelView"

    def view_replacement(self) -> Any:
        return replace(
            self,
            post=extend_schema(
                operation_id="bc_cancel",
                tags=["ciba"],
                summary="Cancel a backchannel authentication (django-ciba extension)",
                description="The client that started a request cancels it while it is pending, or "
                "approved with no tokens issued yet. Cancelling a cancelled request succeeds again; "
                "an unknown auth_req_id and another client's get the same invalid_grant answer.",
                request={FORM: schemas.CancelRequest},
                responses={
                    200: OpenApiResponse(schemas.CancelAnswer, description="Cancelled (or was already)."),
                    **errors(
                        schemas.CancelError,
                        s400="invalid_request: no auth_req_id; invalid_grant: unknown, another "
                        "client's, decided, expired or redeemed.",
                        s401="invalid_client: client authentication failed.",
                        s405="invalid_request: only POST.",
                        s503=UNAVAILABLE,
                    ),
                },
                auth=CLIENT_AUTH,  # type: ignore[arg-type]  # drf-spectacular takes security requirements, not only names
            ),
        )


class ClientRegistrationSchema(OpenApiViewExtension):
    target_class = "django_ciba.views.registration.ClientRegistrationView"

    def view_replacement(self) -> Any:
        return replace(
            self,
            post=extend_schema(
                operation_id="register_client",
                tags=["registration"],
                summary="Register a client (RFC 7591)",
                request=schemas.ClientMetadata,
                responses={
                    201: OpenApiResponse(schemas.ClientInformation, description="Registered."),
                    **errors(
                        schemas.RegistrationError,
                        s400="The metadata was refused.",
                        s401="invalid_token: a missing or unusable initial access token.",
                        s503=UNAVAILABLE,
                    ),
                },
                auth=[{"registrationBearer": []}, {}],  # type: ignore[list-item]  # drf-spectacular takes security requirements, not only names
            ),
        )


def _management(operation: str, summary: str, **kwargs: Any) -> Any:
    return extend_schema(
        operation_id=operation,
        tags=["registration"],
        summary=summary,
        auth=[{"registrationBearer": []}],  # type: ignore[list-item]  # drf-spectacular takes security requirements, not only names
        **kwargs,
    )


class ClientConfigurationSchema(OpenApiViewExtension):
    target_class = "django_ciba.views.registration.ClientConfigurationView"

    def view_replacement(self) -> Any:
        failures = errors(
            schemas.RegistrationError,
            s401="invalid_token: wrong registration access token, or no such client.",
            s503=UNAVAILABLE,
        )
        return replace(
            self,
            get=_management(
                "read_client",
                "Read a registration (RFC 7592 §2.1)",
                responses={200: schemas.ClientInformation, **failures},
            ),
            put=_management(
                "update_client",
                "Replace a registration (RFC 7592 §2.2)",
                request=schemas.ClientMetadata,
                responses={
                    200: schemas.ClientInformation,
                    400: OpenApiResponse(schemas.RegistrationError, description="The metadata was refused."),
                    **failures,
                },
            ),
            delete=_management(
                "delete_client",
                "Delete a registration (RFC 7592 §2.3)",
                responses={204: OpenApiResponse(description="Deleted."), **failures},
            ),
        )


def _device(
    operation: str,
    summary: str,
    ok: Any,
    *,
    s400: str = "A malformed decision.",
    s403: str = "Not signed in (session) or CSRF token missing.",
    **kwargs: Any,
) -> Any:
    failures = errors(
        schemas.DeviceError,
        s400=s400,
        s403=s403,
        s404="not_found: no such request for this user.",
        s409="not_pending or expired: the request was decided or expired already.",
        s503=UNAVAILABLE,
    )
    return extend_schema(
        operation_id=operation, tags=["device"], summary=summary, responses={200: ok, **failures}, **kwargs
    )


class DeviceListSchema(OpenApiViewExtension):
    target_class = "django_ciba.views.device_api.DeviceRequestListView"

    def view_replacement(self) -> Any:
        listed = AuthenticationRequestSerializer(many=True)
        return replace(self, get=_device("device_requests", "The signed-in user's pending requests", listed))


class DeviceDetailSchema(OpenApiViewExtension):
    target_class = "django_ciba.views.device_api.DeviceRequestDetailView"

    def view_replacement(self) -> Any:
        return replace(
            self, get=_device("device_request", "One of the user's requests", AuthenticationRequestSerializer)
        )


class DeviceApproveSchema(OpenApiViewExtension):
    target_class = "django_ciba.views.device_api.DeviceRequestApproveView"

    def view_replacement(self) -> Any:
        return replace(
            self,
            post=_device(
                "device_approve",
                "Approve (optionally fewer scopes); acr, amr and auth_time come from the session's sign-in",
                AuthenticationRequestSerializer,
                request=ApproveSerializer,
                s400="A malformed decision, or invalid: acr, amr or auth_time were sent (the server "
                "derives them).",
                s403="Not signed in (session) or CSRF token missing; or insufficient_assurance: this "
                "session's sign-in meets none of the request's acr_values.",
            ),
        )


class DeviceDenySchema(OpenApiViewExtension):
    target_class = "django_ciba.views.device_api.DeviceRequestDenyView"

    def view_replacement(self) -> Any:
        return replace(
            self,
            post=_device("device_deny", "Deny", AuthenticationRequestSerializer, request=None),
        )


class WebPushKeys(serializers.Serializer):
    p256dh = serializers.CharField(help_text="The browser's P-256 public key (base64url).")
    auth = serializers.CharField(help_text="The browser's auth secret (base64url).")


class WebPushSubscription(serializers.Serializer):
    endpoint = serializers.URLField(help_text="The push service URL (https, public address).")
    keys = WebPushKeys()
    device = serializers.CharField(required=False, help_text="A label; default: the User-Agent.")


class WebPushSubscribed(serializers.Serializer):
    subscribed = serializers.BooleanField()
    device = serializers.CharField()


class WebPushEndpoint(serializers.Serializer):
    endpoint = serializers.URLField()


WEBPUSH_FAILURES = errors(
    schemas.DeviceError,
    s400="invalid_request: a malformed subscription.",
    s403="Not signed in (session) or CSRF token missing.",
    s404="not_found: Web Push is not enabled (no VAPID key).",
    s503=UNAVAILABLE,
)


def _webpush(operation: str, summary: str, request: Any, responses: dict[int, Any]) -> Any:
    return extend_schema(
        operation_id=operation,
        tags=["device"],
        summary=summary,
        request=request,
        responses={**responses, **WEBPUSH_FAILURES},
    )


class WebPushSubscribeSchema(OpenApiViewExtension):
    target_class = "django_ciba.views.webpush.WebPushSubscribeView"

    def view_replacement(self) -> Any:
        return replace(
            self,
            post=_webpush(
                "webpush_subscribe",
                "Store this browser's push subscription",
                WebPushSubscription,
                {201: WebPushSubscribed, 200: WebPushSubscribed},
            ),
        )


class WebPushUnsubscribeSchema(OpenApiViewExtension):
    target_class = "django_ciba.views.webpush.WebPushUnsubscribeView"

    def view_replacement(self) -> Any:
        gone = {204: OpenApiResponse(description="Forgotten (also when it was not stored).")}
        return replace(
            self,
            post=_webpush("webpush_unsubscribe", "Forget this browser's subscription", WebPushEndpoint, gone),
            delete=_webpush(
                "webpush_unsubscribe_delete", "Forget this browser's subscription", WebPushEndpoint, gone
            ),
        )
