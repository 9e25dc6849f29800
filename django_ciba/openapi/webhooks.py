"""The callbacks the OP sends to ping and push clients, as OpenAPI webhooks (CIBA §10.2, §10.3)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, OpenApiWebhook, PolymorphicProxySerializer, extend_schema

from django_ciba.openapi import schemas


RECEIVED = {
    200: OpenApiResponse(description="Received."),
    204: OpenApiResponse(description="Received."),
}
NOTE = (
    " Sent to backchannel_client_notification_endpoint with Authorization: Bearer "
    "<client_notification_token>; the client must check that token. Retried with backoff on 5xx, "
    "429 and timeouts, never after another 4xx, never redirected; delivery is at least once, so "
    "deduplicate by auth_req_id."
)

PING = OpenApiWebhook(
    name="ping",
    decorator=extend_schema(
        summary="Ping: the result is ready (CIBA §10.2)",
        description="The client then calls the token endpoint once with the auth_req_id." + NOTE,
        request=schemas.PingCallback,
        responses=RECEIVED,
        auth=[{"clientNotificationToken": []}],  # type: ignore[list-item]  # drf-spectacular takes security requirements, not only names
    ),
)

PUSH = OpenApiWebhook(
    name="push",
    decorator=extend_schema(
        summary="Push: the tokens, or the error (CIBA §10.3)",
        description="A successful push carries the token response; its ID token binds it with the "
        "auth_req_id claim, at_hash and rt_hash (CIBA §10.3.1). A denied, expired or failed request "
        "is pushed as an error (CIBA §12)." + NOTE,
        request=PolymorphicProxySerializer(
            component_name="PushCallbackBody",
            serializers=[schemas.PushCallback, schemas.PushErrorCallback],
            resource_type_field_name=None,
        ),
        responses=RECEIVED,
        auth=[{"clientNotificationToken": []}],  # type: ignore[list-item]  # drf-spectacular takes security requirements, not only names
    ),
)
