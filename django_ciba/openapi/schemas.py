"""Documentation-only serializers: the shapes of the CIBA requests, answers and callbacks.

Nothing here validates input (the endpoints do that themselves, see :mod:`django_ciba.bc_authorize.params`);
these classes only tell drf-spectacular what goes over the wire.
"""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from django_ciba.core.constants import CIBA_GRANT_TYPE


def error_serializer(name: str, codes: list[str]) -> type[serializers.Serializer]:
    """``{error, error_description}`` with ``error`` one of ``codes``."""
    fields: dict[str, Any] = {
        "error": serializers.ChoiceField(choices=codes),
        "error_description": serializers.CharField(required=False),
        "Meta": type("Meta", (), {"ref_name": name}),
    }
    return type(name, (serializers.Serializer,), fields)


class ClientAuthenticationFields(serializers.Serializer):
    """client_secret_post and private_key_jwt travel in the form (client_secret_basic in a header)."""

    client_id = serializers.CharField(required=False)
    client_secret = serializers.CharField(required=False, help_text="client_secret_post only.")
    client_assertion_type = serializers.ChoiceField(
        choices=["urn:ietf:params:oauth:client-assertion-type:jwt-bearer"], required=False
    )
    client_assertion = serializers.CharField(required=False, help_text="private_key_jwt: a signed JWT.")


class BackchannelRequest(ClientAuthenticationFields):
    """CIBA §7.1: exactly one of login_hint, id_token_hint, login_hint_token."""

    scope = serializers.CharField(help_text="Space-separated; must include openid.")
    login_hint = serializers.CharField(required=False, help_text="Username, then e-mail address.")
    id_token_hint = serializers.CharField(required=False, help_text="An ID token this OP issued.")
    login_hint_token = serializers.CharField(required=False, help_text="A signed JWT naming the user.")
    client_notification_token = serializers.CharField(
        required=False, max_length=1024, help_text="Required for ping and push clients."
    )
    binding_message = serializers.CharField(required=False, help_text="Shown on both devices.")
    user_code = serializers.CharField(required=False, help_text="Clients registered for user codes.")
    acr_values = serializers.CharField(required=False)
    requested_expiry = serializers.IntegerField(required=False, min_value=1)
    dpop_jkt = serializers.RegexField(
        r"^[A-Za-z0-9_-]{43}$",
        required=False,
        help_text="The RFC 7638 thumbprint of the client's DPoP key: the tokens are bound to it.",
    )
    authorization_details = serializers.CharField(
        required=False,
        help_text="RFC 9396: a JSON array of objects with a type offered in "
        "authorization_details_types_supported (a JSON array claim in a signed request).",
    )
    request = serializers.CharField(
        required=False, help_text="A signed request object carrying the parameters above (CIBA §7.1.1)."
    )


class BackchannelAcknowledgement(serializers.Serializer):
    """CIBA §7.3."""

    auth_req_id = serializers.CharField(help_text="Opaque, single use; the client presents it later.")
    expires_in = serializers.IntegerField(help_text="Seconds until the request expires.")
    interval = serializers.IntegerField(
        required=False, help_text="Minimum seconds between polls (poll and ping clients)."
    )


class TokenRequest(ClientAuthenticationFields):
    """CIBA §10.1: the CIBA grant at DOT's token endpoint (DOT's other grants work as usual)."""

    grant_type = serializers.ChoiceField(choices=[CIBA_GRANT_TYPE])
    auth_req_id = serializers.CharField()


class TokenResponse(serializers.Serializer):
    """CIBA §10.1.1 (and the body of a successful push, with ``auth_req_id``)."""

    access_token = serializers.CharField()
    token_type = serializers.ChoiceField(choices=["Bearer"])
    expires_in = serializers.IntegerField()
    refresh_token = serializers.CharField(required=False, help_text="With the offline_access scope.")
    id_token = serializers.CharField(
        help_text="Carries urn:openid:params:jwt:claim:auth_req_id (and at_hash, rt_hash in pushes)."
    )
    scope = serializers.CharField(required=False)
    authorization_details = serializers.ListField(
        child=serializers.DictField(), required=False, help_text="RFC 9396 §7: the granted details."
    )
    approval_receipt = serializers.CharField(
        required=False,
        help_text="Extension: the signed approval receipt (a JWS, typ ciba-approval-receipt+jwt) of the "
        "approval, when the OP issues one; CIBA grant only (not refresh).",
    )


class PingCallback(serializers.Serializer):
    """CIBA §10.2: the result is ready; poll the token endpoint once."""

    auth_req_id = serializers.CharField()


class PushCallback(TokenResponse):
    """CIBA §10.3.1: the tokens themselves."""

    auth_req_id = serializers.CharField()


class PushErrorCallback(serializers.Serializer):
    """CIBA §12: the request was denied, expired or could not be completed."""

    auth_req_id = serializers.CharField()
    error = serializers.ChoiceField(choices=["access_denied", "expired_token", "transaction_failed"])
    error_description = serializers.CharField(required=False)


class ClientMetadata(serializers.Serializer):
    """RFC 7591 §2 with the CIBA registration parameters (CIBA §4). Unknown members are ignored."""

    client_name = serializers.CharField(required=False)
    grant_types = serializers.ListField(child=serializers.CharField(), required=False)
    redirect_uris = serializers.ListField(child=serializers.URLField(), required=False)
    token_endpoint_auth_method = serializers.ChoiceField(
        choices=["client_secret_basic", "client_secret_post", "private_key_jwt"], required=False
    )
    token_endpoint_auth_signing_alg = serializers.CharField(required=False)
    jwks = serializers.DictField(required=False)
    jwks_uri = serializers.URLField(required=False)
    subject_type = serializers.ChoiceField(choices=["public", "pairwise"], required=False)
    sector_identifier_uri = serializers.URLField(required=False)
    scope = serializers.CharField(required=False)
    id_token_signed_response_alg = serializers.ChoiceField(
        choices=["RS256", "PS256", "ES256"], required=False
    )
    backchannel_token_delivery_mode = serializers.ChoiceField(choices=["poll", "ping", "push"])
    backchannel_client_notification_endpoint = serializers.URLField(
        required=False, help_text="https; required for ping and push."
    )
    backchannel_authentication_request_signing_alg = serializers.CharField(required=False)
    backchannel_user_code_parameter = serializers.BooleanField(required=False)
    contacts = serializers.ListField(child=serializers.EmailField(), required=False)
    authorization_details_types = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        help_text="RFC 9396 §10: the types the client may request; none: every offered type.",
    )


class CancelRequest(ClientAuthenticationFields):
    """A django-ciba extension: the client cancels one of its requests."""

    auth_req_id = serializers.CharField(help_text="The auth_req_id of the request to cancel.")


class CancelAnswer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["cancelled"])


class ClientInformation(ClientMetadata):
    """RFC 7591 §3.2.1 / RFC 7592 §3: the metadata as registered, with the credentials."""

    client_id = serializers.CharField()
    client_id_issued_at = serializers.IntegerField()
    client_secret = serializers.CharField(required=False, help_text="Only for client_secret_* methods.")
    client_secret_expires_at = serializers.IntegerField(required=False)
    registration_access_token = serializers.CharField()
    registration_client_uri = serializers.URLField()
    response_types = serializers.ListField(child=serializers.CharField())


BACKCHANNEL_ERRORS = [
    "invalid_request",
    "invalid_scope",
    "expired_login_hint_token",
    "unknown_user_id",
    "unauthorized_client",
    "missing_user_code",
    "invalid_user_code",
    "invalid_binding_message",
    "invalid_authorization_details",
    "invalid_client",
    "access_denied",
    "temporarily_unavailable",
]
TOKEN_ERRORS = [
    "authorization_pending",
    "slow_down",
    "expired_token",
    "access_denied",
    "invalid_grant",
    "invalid_request",
    "invalid_client",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_dpop_proof",
    "use_dpop_nonce",
    "invalid_authorization_details",
    "temporarily_unavailable",
]
CANCEL_ERRORS = [
    "invalid_request",
    "invalid_grant",
    "invalid_client",
    "unauthorized_client",
    "temporarily_unavailable",
]
REGISTRATION_ERRORS = [
    "invalid_client_metadata",
    "invalid_redirect_uri",
    "invalid_software_statement",
    "invalid_token",
    "temporarily_unavailable",
]
DEVICE_ERRORS = [
    "not_found",
    "not_pending",
    "expired",
    "invalid_decision",
    "invalid_scope",
    "insufficient_assurance",
    "invalid",
    "parse_error",
    "not_authenticated",
    "permission_denied",
    "method_not_allowed",
    "temporarily_unavailable",
]

BackchannelError = error_serializer("BackchannelError", BACKCHANNEL_ERRORS)
TokenError = error_serializer("TokenError", TOKEN_ERRORS)
CancelError = error_serializer("CancelError", CANCEL_ERRORS)
RegistrationError = error_serializer("RegistrationError", REGISTRATION_ERRORS)
DeviceError = error_serializer("DeviceError", DEVICE_ERRORS)
