"""Client metadata of dynamic registration (RFC 7591 §2, OIDC Registration §2, CIBA Core §4).

:func:`validate_metadata` checks a registration request's JSON object field by field and returns
the values for DOT's ``Application`` and for :class:`~django_ciba.models.CibaClient`;
:func:`django_ciba.clients.sectors.check_sector_identifier` fetches a ``sector_identifier_uri`` (kept for
last: it is the only check that goes to the network). :mod:`django_ciba.clients.information`
renders a registered client back as metadata. Every refusal is an :class:`InvalidClientMetadata`
(or :class:`InvalidRedirectUri`) whose description starts with the name of the offending metadata
field (RFC 7591 §3.2.2).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from oauth2_provider.models import AbstractApplication
from oauth2_provider.scopes import get_scopes_backend
from oauth2_provider.settings import oauth2_settings

from django_ciba.clients import details_metadata, sectors, tls_metadata
from django_ciba.clients import keys as client_keys
from django_ciba.core import outbound
from django_ciba.core.conf import ciba_settings
from django_ciba.core.constants import CIBA_GRANT_TYPE
from django_ciba.core.id_token_keys import available_algorithms
from django_ciba.exceptions import InvalidClientMetadata, InvalidRedirectUri, InvalidSoftwareStatement
from django_ciba.models import AuthMethod, DeliveryMode, SubjectType


REFRESH_TOKEN = "refresh_token"
CLIENT_CREDENTIALS = "client_credentials"
AUTHORIZATION_CODE = "authorization_code"
#: grant_types values a CIBA client may register (anything else is refused).
GRANT_TYPES = (CIBA_GRANT_TYPE, REFRESH_TOKEN, CLIENT_CREDENTIALS, AUTHORIZATION_CODE)
SECRET_METHODS = (AuthMethod.CLIENT_SECRET_BASIC.value, AuthMethod.CLIENT_SECRET_POST.value)
#: Informational RFC 7591 §2 fields, kept as sent (after a type check) and returned as registered.
INFORMATIONAL_URLS = ("client_uri", "logo_uri", "tos_uri", "policy_uri")
INFORMATIONAL_STRINGS = ("software_id", "software_version")
MAX_CONTACTS = 20
MAX_STRING = 255
MAX_URL = 2000
MAX_REDIRECT_URIS = 20
#: CibaClient / Application field -> the metadata name it came from (for error descriptions).
FIELD_NAMES = {
    "delivery_mode": "backchannel_token_delivery_mode",
    "notification_endpoint": "backchannel_client_notification_endpoint",
    "request_signing_alg": "backchannel_authentication_request_signing_alg",
    "user_code_parameter": "backchannel_user_code_parameter",
    "name": "client_name",
    "authorization_grant_type": "grant_types",
    "algorithm": "id_token_signed_response_alg",
    "id_token_signed_response_alg": "id_token_signed_response_alg",
    "client_type": "token_endpoint_auth_method",
    "client_secret": "token_endpoint_auth_method",
    "hash_client_secret": "token_endpoint_auth_method",
}


def _invalid(name: str, message: str) -> InvalidClientMetadata:
    return InvalidClientMetadata(f"{name}: {message}")


@dataclass
class ClientMetadata:
    """Validated metadata: what goes into the ``Application`` and the ``CibaClient`` rows."""

    name: str = ""
    authorization_grant_type: str = AbstractApplication.GRANT_CLIENT_CREDENTIALS
    redirect_uris: str = ""
    delivery_mode: str = DeliveryMode.POLL
    notification_endpoint: str = ""
    request_signing_alg: str = ""
    user_code_parameter: bool = False
    token_endpoint_auth_method: str = AuthMethod.CLIENT_SECRET_BASIC
    token_endpoint_auth_signing_alg: str = ""
    jwks: dict[str, Any] | None = None
    jwks_uri: str = ""
    subject_type: str = SubjectType.PUBLIC
    sector_identifier_uri: str = ""
    scope: str = ""
    ciba_only: bool = True
    #: RFC 8705: tls_client_auth_* and tls_client_certificate_bound_access_tokens (clients.tls_metadata).
    tls: dict[str, Any] = field(default_factory=dict)
    id_token_signed_response_alg: str = ""
    #: RFC 9449 §5.2: every token request must carry a DPoP proof.
    dpop_bound_access_tokens: bool = False
    #: RFC 9396 §10: the authorization details types the client may request (empty: every one).
    authorization_details_types: list[str] = field(default_factory=list)
    #: grant_types as requested plus the informational fields (``CibaClient.metadata``).
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def uses_secret(self) -> bool:
        return self.token_endpoint_auth_method in SECRET_METHODS

    def application_fields(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "authorization_grant_type": self.authorization_grant_type,
            "redirect_uris": self.redirect_uris,
        }

    def ciba_fields(self) -> dict[str, Any]:
        return {
            "delivery_mode": self.delivery_mode,
            "notification_endpoint": self.notification_endpoint,
            "request_signing_alg": self.request_signing_alg,
            "user_code_parameter": self.user_code_parameter,
            "token_endpoint_auth_method": self.token_endpoint_auth_method,
            "token_endpoint_auth_signing_alg": self.token_endpoint_auth_signing_alg,
            "jwks": self.jwks,
            "jwks_uri": self.jwks_uri,
            "subject_type": self.subject_type,
            "sector_identifier_uri": self.sector_identifier_uri,
            "scope": self.scope,
            "ciba_only": self.ciba_only,
            "id_token_signed_response_alg": self.id_token_signed_response_alg,
            "dpop_bound_access_tokens": self.dpop_bound_access_tokens,
            "authorization_details_types": self.authorization_details_types,
            "metadata": self.extra,
            **self.tls,
        }


# --------------------------------------------------------------------------------------------
# Field readers: JSON null counts as absent.


def _string(data: dict[str, Any], name: str, *, max_length: int = MAX_URL) -> str:
    value = data.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _invalid(name, "must be a string.")
    if len(value) > max_length:
        raise _invalid(name, f"must be at most {max_length} characters long.")
    if "\x00" in value:
        raise _invalid(name, "must not contain NUL characters.")
    return value


def _string_list(data: dict[str, Any], name: str, *, max_items: int = MAX_REDIRECT_URIS) -> list[str] | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise _invalid(name, "must be an array of strings.")
    if len(value) > max_items:
        raise _invalid(name, f"must hold at most {max_items} values.")
    return list(dict.fromkeys(value))


def _https_url(data: dict[str, Any], name: str) -> str:
    url = _string(data, name)
    if url:
        try:
            outbound.validate_endpoint_url(url)  # SEC-01, SEC-05: https, public host
        except outbound.UnsafeDestination as exc:
            raise _invalid(name, str(exc))
    return url


def _algorithm(data: dict[str, Any], name: str) -> str:
    """A JWS algorithm the OP accepts from clients: asymmetric, never ``none`` or HS* (REG-04)."""
    value = _string(data, name, max_length=16)
    if value and value not in client_keys.supported_algorithms():
        raise _invalid(
            name, f"unsupported algorithm; use one of {', '.join(client_keys.supported_algorithms())}."
        )
    return value


# --------------------------------------------------------------------------------------------
# The rules


def validate_metadata(data: dict[str, Any]) -> ClientMetadata:
    """Check a registration request (RFC 7591 §2, CIBA Core §4); raise :class:`InvalidClientMetadata`.

    Checks every field that can be checked locally. The caller still runs the models' ``full_clean``
    (:func:`field_error` maps their errors) and :func:`django_ciba.clients.sectors.check_sector_identifier`.
    """
    if not isinstance(data, dict):
        raise InvalidClientMetadata("The request body must be a JSON object.")
    if data.get("software_statement") is not None:
        raise InvalidSoftwareStatement("software_statement: software statements are not supported.")
    result = ClientMetadata()
    _delivery(data, result)
    _grants(data, result)
    _redirects(data, result)
    _authentication(data, result)
    _subject(data, result)
    _other(data, result)
    result.authorization_details_types = details_metadata.read(data)
    result.extra.update(_informational(data))
    return result


def _delivery(data: dict[str, Any], result: ClientMetadata) -> None:
    name = "backchannel_token_delivery_mode"
    mode = _string(data, name, max_length=16)
    if not mode:
        raise _invalid(name, "is required to register a CIBA client (poll, ping or push).")  # REG-01
    offered = [value for value in ciba_settings.DELIVERY_MODES if value in DeliveryMode.values]
    if mode not in offered:
        raise _invalid(name, f"must be one of {', '.join(offered)}.")  # REG-01, REG-11
    result.delivery_mode = mode
    endpoint_name = "backchannel_client_notification_endpoint"
    endpoint = _string(data, endpoint_name)
    if mode in (DeliveryMode.PING, DeliveryMode.PUSH) and not endpoint:
        raise _invalid(endpoint_name, f"is required for {mode} mode.")  # REG-02
    if endpoint and not endpoint.lower().startswith("https://"):
        raise _invalid(endpoint_name, "must be an https URL.")  # REG-02
    result.notification_endpoint = _https_url(data, endpoint_name)
    result.request_signing_alg = _algorithm(data, "backchannel_authentication_request_signing_alg")
    user_code = data.get("backchannel_user_code_parameter")
    if user_code is not None and not isinstance(user_code, bool):
        raise _invalid("backchannel_user_code_parameter", "must be a boolean.")  # REG-05
    # REG-05, RFC 7591 §3.2.1: an OP without user codes grants false instead of refusing; the
    # client information response tells the client what it got.
    result.user_code_parameter = bool(user_code) and bool(ciba_settings.USER_CODE_SUPPORTED)


def _grants(data: dict[str, Any], result: ClientMetadata) -> None:
    name = "grant_types"
    requested = _string_list(data, name)
    if requested is None:
        # Unlike RFC 7591's default (authorization_code), a CIBA registration defaults to CIBA.
        requested = [] if result.delivery_mode != DeliveryMode.PUSH else [CIBA_GRANT_TYPE]
    unsupported = [grant for grant in requested if grant not in GRANT_TYPES]
    if unsupported:
        raise _invalid(name, f"unsupported grant type {unsupported[0][:64]!r}.")
    if result.delivery_mode in (DeliveryMode.POLL, DeliveryMode.PING) and CIBA_GRANT_TYPE not in requested:
        raise _invalid(name, f"{result.delivery_mode} clients must register {CIBA_GRANT_TYPE}.")  # REG-03
    if CLIENT_CREDENTIALS in requested and AUTHORIZATION_CODE in requested:
        raise _invalid(name, "only one of client_credentials and authorization_code can be registered.")
    if AUTHORIZATION_CODE in requested:
        result.authorization_grant_type = AbstractApplication.GRANT_AUTHORIZATION_CODE
        result.ciba_only = False
    else:
        result.authorization_grant_type = AbstractApplication.GRANT_CLIENT_CREDENTIALS
        result.ciba_only = CLIENT_CREDENTIALS not in requested
    result.extra["grant_types"] = requested


def _redirects(data: dict[str, Any], result: ClientMetadata) -> None:
    code_flow = result.authorization_grant_type == AbstractApplication.GRANT_AUTHORIZATION_CODE
    response_types = _string_list(data, "response_types")
    expected = ["code"] if code_flow else []
    if response_types is not None and response_types != expected:
        # REG-08: a CIBA-only client sends [] (or nothing); "code" goes with authorization_code.
        raise _invalid(
            "response_types",
            'must be ["code"] with the authorization_code grant.' if code_flow else "must be empty.",
        )
    uris = _string_list(data, "redirect_uris")
    if uris is None:
        uris = []
    for uri in uris:
        if not uri or len(uri) > MAX_URL or any(char.isspace() for char in uri) or "#" in uri:
            raise InvalidRedirectUri("redirect_uris: each value must be an absolute URL without fragment.")
    if code_flow and not uris:
        raise InvalidRedirectUri("redirect_uris: required with the authorization_code grant.")
    result.redirect_uris = " ".join(uris)  # DOT's Application.clean() checks the schemes


def _authentication(data: dict[str, Any], result: ClientMetadata) -> None:
    name = "token_endpoint_auth_method"
    method = _string(data, name, max_length=64) or AuthMethod.CLIENT_SECRET_BASIC.value
    if method not in AuthMethod.values:
        # CIBA clients are confidential: "none" is refused, and so are the methods DOT lacks.
        raise _invalid(name, f"must be one of {', '.join(AuthMethod.values)}.")
    result.token_endpoint_auth_method = method
    if data.get("jwks") is not None and data.get("jwks_uri") is not None:
        raise _invalid("jwks", "register either jwks or jwks_uri, not both.")
    keys: list[Any] | None = None
    if data.get("jwks") is not None:
        try:
            keys = client_keys.parse_jwks(data["jwks"], strict=True)
        except client_keys.InvalidClientKeys as exc:
            raise _invalid("jwks", str(exc))
        result.jwks = data["jwks"]
    result.jwks_uri = _https_url(data, "jwks_uri")
    has_keys = keys is not None or bool(result.jwks_uri)
    if method == AuthMethod.PRIVATE_KEY_JWT and not has_keys:
        raise _invalid(name, "private_key_jwt needs jwks or jwks_uri.")
    if method == AuthMethod.PRIVATE_KEY_JWT and not oauth2_settings.OIDC_RSA_PRIVATE_KEY:
        # Without an RSA key DOT signs ID tokens HS256 with the client secret, which such a
        # client never receives.
        raise _invalid(name, "private_key_jwt needs an OP that signs ID tokens with RS256.")
    result.token_endpoint_auth_signing_alg = _algorithm(data, "token_endpoint_auth_signing_alg")
    if result.token_endpoint_auth_signing_alg and not has_keys:
        raise _invalid("token_endpoint_auth_signing_alg", "needs jwks or jwks_uri.")
    for alg_name, alg in (
        ("token_endpoint_auth_signing_alg", result.token_endpoint_auth_signing_alg),
        ("backchannel_authentication_request_signing_alg", result.request_signing_alg),
    ):
        # REG-04: a request signing algorithm may come before the keys (added later with RFC 7592);
        # until then request_object refuses the client's requests. Keys sent now must fit it.
        if alg and keys is not None and not any(client_keys.key_fits(key, alg) for key in keys):
            raise _invalid(alg_name, f"jwks holds no key for {alg}.")
    result.tls = tls_metadata.read(data, method=method, has_keys=has_keys)  # RFC 8705
    result.dpop_bound_access_tokens = _dpop_bound(data)


def _dpop_bound(data: dict[str, Any]) -> bool:
    """``dpop_bound_access_tokens`` (RFC 9449 §5.2): a boolean, true only where DPoP is on."""
    name = "dpop_bound_access_tokens"
    value = data.get(name)
    if value is not None and not isinstance(value, bool):
        raise _invalid(name, "must be a boolean.")
    if value and not ciba_settings.DPOP_ENABLED:
        raise _invalid(name, "DPoP is not offered by this server.")
    return bool(value)


def _subject(data: dict[str, Any], result: ClientMetadata) -> None:
    name = "subject_type"
    supported = [value for value in ciba_settings.SUBJECT_TYPES_SUPPORTED if value in SubjectType.values]
    subject_type = _string(data, name, max_length=16)
    if not subject_type:
        subject_type = (
            SubjectType.PUBLIC if SubjectType.PUBLIC in supported or not supported else supported[0]
        )
    elif subject_type not in supported:
        raise _invalid(name, f"must be one of {', '.join(supported)}.")
    result.subject_type = subject_type
    result.sector_identifier_uri = _https_url(data, "sector_identifier_uri")
    sectors.require_sector(result)  # REG-06, DISC-09: a sector the client proves


def _other(data: dict[str, Any], result: ClientMetadata) -> None:
    name = "id_token_signed_response_alg"
    alg = _string(data, name, max_length=16)
    offered = available_algorithms()  # IDT-06: RS256 (DOT's key) and CIBA["ID_TOKEN_SIGNING_KEYS"]
    if alg and alg not in offered:
        raise _invalid(
            name, f"must be one of {', '.join(offered)}." if offered else "no algorithm is offered."
        )
    result.id_token_signed_response_alg = alg
    if data.get("id_token_encrypted_response_alg") is not None:
        raise _invalid("id_token_encrypted_response_alg", "encrypted ID tokens are not supported.")
    result.name = _string(data, "client_name", max_length=MAX_STRING)
    scope = _string(data, "scope", max_length=4000)
    tokens = list(dict.fromkeys(scope.split(" ")))
    tokens = [token for token in tokens if token]
    offered = get_scopes_backend().get_all_scopes()
    unknown = [token for token in tokens if token not in offered]
    if unknown:
        raise _invalid("scope", f"unknown scope {unknown[0][:64]!r}.")
    result.scope = " ".join(tokens)


def _informational(data: dict[str, Any]) -> dict[str, Any]:
    kept: dict[str, Any] = {}
    url_validator = URLValidator(schemes=["https", "http"])
    for name in INFORMATIONAL_URLS:
        value = _string(data, name)
        if value:
            try:
                url_validator(value)
            except ValidationError:
                raise _invalid(name, "must be an http or https URL.")
            kept[name] = value
    for name in INFORMATIONAL_STRINGS:
        value = _string(data, name, max_length=MAX_STRING)
        if value:
            kept[name] = value
    contacts = _string_list(data, "contacts", max_items=MAX_CONTACTS)
    if contacts:
        if any(not contact or len(contact) > MAX_STRING for contact in contacts):
            raise _invalid("contacts", f"each value must be 1 to {MAX_STRING} characters long.")
        kept["contacts"] = contacts
    return kept


def field_error(exc: ValidationError) -> InvalidClientMetadata:
    """A model ``ValidationError`` as the registration error naming the metadata field."""
    if hasattr(exc, "error_dict"):
        model_field, errors = next(iter(exc.message_dict.items()))
        message = " ".join(errors)
    else:
        model_field, message = "", " ".join(exc.messages)
    if model_field == "redirect_uris":
        return InvalidRedirectUri(f"redirect_uris: {message}")
    name = FIELD_NAMES.get(model_field, model_field)
    if not name or name == "__all__":
        return InvalidClientMetadata(message)
    return _invalid(name, message)
