"""Errors raised by django-ciba.

Protocol errors (:class:`CibaError` and subclasses) become the error JSON of the backchannel
authentication endpoint (CIBA Core §13). Decision errors are raised by the authentication-device
side. Configuration errors are never swallowed.
"""

from __future__ import annotations

import re

from django.core.exceptions import ImproperlyConfigured


# error_description may only hold %x20-21 / %x23-5B / %x5D-7E (RFC 6749 §5.2).
_UNSAFE_DESCRIPTION = re.compile(r"[^\x20-\x21\x23-\x5b\x5d-\x7e]")


class CibaConfigurationError(ImproperlyConfigured):
    """django-ciba is misconfigured (a setting, a resolver, a verifier)."""


class CibaError(Exception):
    """A protocol error answered by the backchannel authentication endpoint."""

    error: str = "invalid_request"
    status_code: int = 400
    description: str = ""

    def __init__(self, description: str | None = None) -> None:
        if description is not None:
            self.description = description
        super().__init__(self.description or self.error)

    @property
    def payload(self) -> dict[str, str]:
        body = {"error": self.error}
        description = _UNSAFE_DESCRIPTION.sub("", self.description or "")
        if description:
            body["error_description"] = description
        return body

    @property
    def headers(self) -> dict[str, str]:
        return {}


class InvalidRequest(CibaError):
    """AERR-01: a parameter is missing, invalid, repeated, or the request is malformed."""

    error = "invalid_request"


class InvalidScope(CibaError):
    """AERR-02: the requested scope is invalid, unknown or malformed."""

    error = "invalid_scope"


class ExpiredLoginHintToken(CibaError):
    """AERR-03: the login_hint_token has expired."""

    error = "expired_login_hint_token"


class UnknownUserId(CibaError):
    """AERR-04: the hint does not identify a (usable) user."""

    error = "unknown_user_id"
    description = "The hint does not identify a known user."


class UnauthorizedClient(CibaError):
    """AERR-05: the client is not authorized to use CIBA."""

    error = "unauthorized_client"
    description = "The client is not authorized to use CIBA."


class MissingUserCode(CibaError):
    """AERR-06: a user_code is required but was not sent."""

    error = "missing_user_code"
    description = "A user_code is required."


class InvalidUserCode(CibaError):
    """AERR-07: the user_code is wrong."""

    error = "invalid_user_code"
    description = "The user_code is invalid."


class InvalidBindingMessage(CibaError):
    """AERR-08: the binding_message cannot be accepted or shown."""

    error = "invalid_binding_message"


class InvalidAuthorizationDetails(CibaError):
    """RFC 9396 §5: ``authorization_details`` is malformed, too large, of an unknown type, of a type
    the client may not use, or refused by its type's validator."""

    error = "invalid_authorization_details"


class InvalidGrant(CibaError):
    """The auth_req_id sent to the cancel endpoint is unknown, another client's, or no longer
    cancellable (decided, expired, or its tokens issued)."""

    error = "invalid_grant"


class InvalidClient(CibaError):
    """AERR-09: client authentication failed (HTTP 401)."""

    error = "invalid_client"
    status_code = 401
    description = "Client authentication failed."

    @property
    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Basic realm="ciba"'}


class AccessDenied(CibaError):
    """AERR-10: the OP or resource owner refused the request (HTTP 403)."""

    error = "access_denied"
    status_code = 403


class MethodNotAllowed(InvalidRequest):
    """BC-02: only POST is accepted (HTTP 405 with the error JSON)."""

    status_code = 405
    description = "Only POST is allowed."


class InvalidClientMetadata(CibaError):
    """Registration (RFC 7591 §3.2.2): a metadata value is invalid (or the request body is malformed)."""

    error = "invalid_client_metadata"


class InvalidRedirectUri(InvalidClientMetadata):
    """Registration (RFC 7591 §3.2.2): a redirect_uris value is invalid."""

    error = "invalid_redirect_uri"


class InvalidSoftwareStatement(InvalidClientMetadata):
    """Registration (RFC 7591 §3.2.2): software statements are not supported."""

    error = "invalid_software_statement"


class InvalidToken(CibaError):
    """The initial access token or registration access token is missing, unknown or spent (401)."""

    error = "invalid_token"
    status_code = 401
    description = "The access token is missing, invalid or expired."

    @property
    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Bearer error="invalid_token"'}


class DecisionError(Exception):
    """An approval or denial cannot be recorded (authentication-device side)."""

    code = "invalid_decision"
    status_code = 409

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.__doc__ or self.code)


class RequestNotFound(DecisionError):
    """No such authentication request for this user."""

    code = "not_found"
    status_code = 404


class RequestNotPending(DecisionError):
    """The authentication request has already been decided."""

    code = "not_pending"


class RequestExpired(DecisionError):
    """The authentication request has expired."""

    code = "expired"


class InvalidDecision(DecisionError):
    """The decision asks for scopes that were not requested."""

    code = "invalid_scope"
    status_code = 400


class InsufficientAssurance(DecisionError):
    """This sign-in does not meet the authentication the client asked for (acr_values)."""

    code = "insufficient_assurance"
    status_code = 403
