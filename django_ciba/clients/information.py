"""A registered client rendered back as metadata (RFC 7591 §3.2.1, RFC 7592 §3), without any
credential: what the registration and management endpoints answer (the credentials are added by
:mod:`django_ciba.clients.registration`)."""

from __future__ import annotations

from typing import Any

from oauth2_provider.models import AbstractApplication

from django_ciba.clients.details_metadata import information as details_information
from django_ciba.clients.metadata import (
    AUTHORIZATION_CODE,
    CLIENT_CREDENTIALS,
    INFORMATIONAL_STRINGS,
    INFORMATIONAL_URLS,
    REFRESH_TOKEN,
    SECRET_METHODS,
)
from django_ciba.clients.tls_metadata import information as tls_information
from django_ciba.core.constants import CIBA_GRANT_TYPE
from django_ciba.models import AuthMethod, CibaClient, DeliveryMode


def registered_grant_types(application: Any, ciba: CibaClient) -> list[str]:
    """grant_types as requested, narrowed to what the rows still allow (an operator may edit them)."""
    dot_grant = {
        AbstractApplication.GRANT_AUTHORIZATION_CODE: AUTHORIZATION_CODE,
        AbstractApplication.GRANT_CLIENT_CREDENTIALS: None if ciba.ciba_only else CLIENT_CREDENTIALS,
    }.get(application.authorization_grant_type)
    stored = (ciba.metadata or {}).get("grant_types") or []
    grants = [grant for grant in stored if grant in (CIBA_GRANT_TYPE, REFRESH_TOKEN) or grant == dot_grant]
    if dot_grant and dot_grant not in grants:
        grants.append(dot_grant)
    if ciba.delivery_mode != DeliveryMode.PUSH and CIBA_GRANT_TYPE not in grants:
        grants.insert(0, CIBA_GRANT_TYPE)
    return grants


def client_information(application: Any, ciba: CibaClient) -> dict[str, Any]:
    """The registered metadata of a client (RFC 7591 §3.2.1), without any credential."""
    info: dict[str, Any] = {
        "client_id": application.client_id,
        "client_id_issued_at": int(application.created.timestamp()),
    }
    if application.name:
        info["client_name"] = application.name
    info["grant_types"] = registered_grant_types(application, ciba)
    code_flow = application.authorization_grant_type == AbstractApplication.GRANT_AUTHORIZATION_CODE
    info["response_types"] = ["code"] if code_flow else []
    info["redirect_uris"] = application.redirect_uris.split()
    info["token_endpoint_auth_method"] = ciba.token_endpoint_auth_method or AuthMethod.CLIENT_SECRET_BASIC
    if info["token_endpoint_auth_method"] in SECRET_METHODS:
        info["client_secret_expires_at"] = 0  # never expires
    optional = {
        "token_endpoint_auth_signing_alg": ciba.token_endpoint_auth_signing_alg,
        "jwks": ciba.jwks,
        "jwks_uri": ciba.jwks_uri,
        "subject_type": ciba.subject_type,
        "sector_identifier_uri": ciba.sector_identifier_uri,
        "scope": ciba.scope,
        "id_token_signed_response_alg": ciba.id_token_signed_response_alg or application.algorithm,
        "backchannel_token_delivery_mode": ciba.delivery_mode,
        "backchannel_client_notification_endpoint": ciba.notification_endpoint,
        "backchannel_authentication_request_signing_alg": ciba.request_signing_alg,
    }
    info.update({key: value for key, value in optional.items() if value})
    info["backchannel_user_code_parameter"] = bool(ciba.user_code_parameter)
    info.update(tls_information(ciba))  # RFC 8705 §2.1.2, §3.4
    info["dpop_bound_access_tokens"] = bool(ciba.dpop_bound_access_tokens)  # RFC 9449 §5.2
    info.update(details_information(ciba))  # RFC 9396 §10
    for key, value in (ciba.metadata or {}).items():
        if key in INFORMATIONAL_URLS or key in INFORMATIONAL_STRINGS or key == "contacts":
            info[key] = value
    return info
