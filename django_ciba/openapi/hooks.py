"""Endpoints drf-spectacular cannot discover: DOT's token endpoint and discovery are plain Django
views, so documentation-only DRF views stand in for them in the schema (they are never routed)."""

from __future__ import annotations

import re
from typing import Any

from django.urls import NoReverseMatch, reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.views import APIView

from django_ciba.openapi import schemas
from django_ciba.openapi.extensions import CLIENT_AUTH, FORM, UNAVAILABLE, errors


class TokenEndpoint(APIView):
    """Stands for DOT's token endpoint running the CIBA grant (documentation only)."""

    authentication_classes = ()
    permission_classes = ()

    @extend_schema(
        operation_id="token_ciba",
        tags=["ciba"],
        summary="Redeem an auth_req_id (CIBA §10.1, poll and ping)",
        description="DOT's own token endpoint with the grant urn:openid:params:grant-type:ciba. "
        "Before the user decides: authorization_pending; polling faster than interval: slow_down "
        "(the interval grows); afterwards access_denied or expired_token; an auth_req_id is "
        "redeemed once. DOT's other grants (refresh_token, client_credentials, ...) are served here "
        "too and are not described.",
        request={FORM: schemas.TokenRequest},
        responses={
            200: OpenApiResponse(schemas.TokenResponse, description="The tokens (CIBA §10.1.1)."),
            **errors(
                schemas.TokenError,
                s400="Not yet, too fast, or not at all (CIBA §11).",
                s401="invalid_client: client authentication failed.",
                s503=UNAVAILABLE,
            ),
        },
        auth=CLIENT_AUTH,  # type: ignore[arg-type]  # drf-spectacular takes security requirements, not only names
    )
    def post(self, request: Any) -> Any:  # pragma: no cover - never routed
        raise NotImplementedError


class DiscoveryEndpoint(APIView):
    """Stands for DOT's discovery view with the CIBA metadata (documentation only)."""

    authentication_classes = ()
    permission_classes = ()

    @extend_schema(
        operation_id="openid_configuration",
        tags=["ciba"],
        summary="OpenID Provider metadata with the CIBA members",
        description="backchannel_authentication_endpoint, backchannel_token_delivery_modes_supported, "
        "backchannel_authentication_request_signing_alg_values_supported, "
        "backchannel_user_code_parameter_supported and the CIBA grant in grant_types_supported.",
        responses={200: OpenApiResponse(OpenApiTypes.OBJECT, description="The metadata document.")},
        auth=[{}],  # type: ignore[list-item]  # drf-spectacular takes security requirements, not only names
    )
    def get(self, request: Any) -> Any:  # pragma: no cover - never routed
        raise NotImplementedError


STAND_INS = (
    ("django_ciba:token", "POST", TokenEndpoint),
    ("django_ciba:oidc-connect-discovery-info", "GET", DiscoveryEndpoint),
)


def add_non_drf_endpoints(endpoints: list[tuple[Any, ...]], **kwargs: Any) -> list[tuple[Any, ...]]:
    """drf-spectacular preprocessing hook: add the stand-ins where the project mounted the views."""
    added = []
    for name, method, view in STAND_INS:
        try:
            path = reverse(name)
        except NoReverseMatch:
            continue
        added.append((path, "^" + re.escape(path.lstrip("/")) + "$", method, view.as_view()))
    return [*endpoints, *added]
