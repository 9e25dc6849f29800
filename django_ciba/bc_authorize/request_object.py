"""Signed authentication requests: the ``request`` parameter of ``/bc-authorize`` (CIBA Core §7.1.1).

:func:`unpack_signed_request` runs right after client authentication (VAL-01) and before any
other parameter is looked at (VAL-02). It returns the parameters the rest of the validation uses:
the form itself for an unsigned request, or the claims of the verified JWT converted to form
values. Every refusal is :class:`~django_ciba.exceptions.InvalidRequest` (AERR-01).

Checks, in order: ``request_uri`` is refused; a client that must sign (``REQUIRE_SIGNED_REQUESTS``
or a registered ``request_signing_alg``) is refused without ``request``; only client-authentication
parameters may accompany ``request`` (SR-10); the signature is checked with the client's own keys
and algorithm (SR-02, SR-08, SR-09, SR-13); the JWS ``typ`` (SR-15); the required claims and their
types (SR-03); ``aud`` and ``iss`` (SR-04, SR-05); times (SR-06, SR-07, FAPI-09); the parameter
claims (SR-11, SR-12); and last, once everything else passed, the one-time use of ``jti`` (SR-14).

Under FAPI-CIBA (:mod:`django_ciba.core.profiles`) every request must be signed (FAPI-06), with
PS256 or ES256 (FAPI-13), live at most 60 minutes with ``nbf`` at most 60 minutes old (FAPI-09), and
carry a ``binding_message`` unless it holds another unique authorization context (FAPI-02).
"""

from __future__ import annotations

import base64
import math
import time
from datetime import UTC, datetime
from typing import Any

from oauth2_provider.settings import oauth2_settings

from django_ciba.clients.keys import ClientJwtError, supported_algorithms, verify_client_jwt
from django_ciba.clients.replay import use_jti
from django_ciba.core import profiles, strict_json
from django_ciba.core.conf import ciba_settings
from django_ciba.exceptions import InvalidAuthorizationDetails, InvalidRequest
from django_ciba.models import CibaClient, JwtUse


#: Form parameters allowed next to ``request``: client authentication only (SR-10).
CLIENT_AUTH_PARAMETERS = frozenset(
    {"client_id", "client_secret", "client_assertion", "client_assertion_type"}
)
#: CIBA parameters that are JSON strings in the JWT (SR-12); other claims are ignored (BC-14).
STRING_PARAMETERS = (
    "scope",
    "client_notification_token",
    "acr_values",
    "login_hint_token",
    "id_token_hint",
    "login_hint",
    "binding_message",
    "user_code",
    "dpop_jkt",  # the key the tokens are bound to (docs/sender-constrained.rst)
)
#: Claims kept as the JSON value they are (RFC 9396 §3: a JSON array in a signed request).
JSON_PARAMETERS = ("authorization_details",)
#: ``typ`` values accepted in the JWS header, compared case-insensitively (SR-15).
ACCEPTED_TYPES = frozenset({"oauth-authz-req+jwt", "jwt"})
REQUIRED_CLAIMS = ("aud", "iss", "exp", "iat", "nbf", "jti")
MAX_JTI_LENGTH = 256
#: SR-08: a client that registered a signing algorithm (or signs) before registering its keys.
NO_KEYS = (
    "Signed authentication requests cannot be verified: the client has registered no keys. "
    "Register jwks or jwks_uri first (client configuration update, RFC 7592)."
)


def signing_required(ciba: CibaClient) -> bool:
    """Whether this client may only send signed requests (FAPI-CIBA 5.2.2-6, FAPI-06, REG-04)."""
    return bool(
        ciba_settings.REQUIRE_SIGNED_REQUESTS or ciba.request_signing_alg or profiles.fapi_applies(ciba)
    )


def accepted_algorithms(ciba: CibaClient) -> list[str]:
    """The registered algorithm (if the OP still supports it), else every supported one (SR-09);
    PS256 and ES256 only under FAPI-CIBA (FAPI-13)."""
    supported = profiles.allowed_algorithms(ciba, supported_algorithms())
    if ciba.request_signing_alg:
        return [ciba.request_signing_alg] if ciba.request_signing_alg in supported else []
    return supported


def unpack_signed_request(
    form: dict[str, str], *, application: Any, ciba: CibaClient, request: Any
) -> dict[str, Any]:
    """The effective request parameters: ``form`` when unsigned, else the verified JWT's claims.

    ``application`` and ``ciba`` are the already authenticated client; ``request`` is the Django
    request (for the issuer identifier). Raises :class:`InvalidRequest` for every refusal.
    """
    if "request_uri" in form:
        raise InvalidRequest("request_uri is not supported; send the signed request in request.")
    token = form.get("request")
    if token is None:
        if signing_required(ciba) and ciba.request_signing_alg and not ciba.has_keys:
            raise InvalidRequest(NO_KEYS)
        if signing_required(ciba):
            raise InvalidRequest("This client must send a signed authentication request (request parameter).")
        return form
    _check_form(form)
    if not ciba.has_keys:
        raise InvalidRequest(NO_KEYS)
    try:
        header, claims = verify_client_jwt(token, ciba, algorithms=accepted_algorithms(ciba))
    except ClientJwtError as exc:
        raise InvalidRequest(f"Invalid signed authentication request: {exc}") from exc
    _check_type(header)
    _check_claims(claims, application, request, ciba)
    _check_unique_members(token)  # SR-12: the JSON claims read as strictly as the form
    if (
        profiles.fapi_applies(ciba)
        and not claims.get("binding_message")
        and not profiles.has_unique_context(claims)
    ):
        # FAPI-02: no authorization_details or request_context, so a binding_message is required.
        raise InvalidRequest(
            "A binding_message is required (or an authorization_details or request_context)."
        )
    params = _parameters(claims, form, application)
    # Last: a JWT refused for another reason must not burn its jti (SR-14). It is remembered until
    # the end of the leeway after exp, as long as the JWT could be accepted.
    expires_at = datetime.fromtimestamp(claims["exp"] + _leeway(), tz=UTC)
    if not use_jti(application, JwtUse.Kind.REQUEST_OBJECT, claims["jti"], expires_at):
        raise InvalidRequest("The signed authentication request was already used (jti replayed).")
    return params


def _check_form(form: dict[str, str]) -> None:
    """SR-10: only client authentication may stay outside the JWT."""
    outside = sorted(name for name in form if name != "request" and name not in CLIENT_AUTH_PARAMETERS)
    if outside:
        names = ", ".join(name[:40] for name in outside[:5])
        raise InvalidRequest(
            f"With a signed request, parameters must be inside the JWT, not in the form: {names}."
        )


def _check_type(header: dict[str, Any]) -> None:
    """SR-15: no ``typ``, ``oauth-authz-req+jwt`` or ``JWT`` (any letter case)."""
    if "typ" not in header:
        return
    typ = header["typ"]
    if not isinstance(typ, str) or typ.lower() not in ACCEPTED_TYPES:
        raise InvalidRequest("The signed request has an unexpected typ header.")


def _leeway() -> float:
    return float(ciba_settings.JWT_LEEWAY)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _check_claims(claims: dict[str, Any], application: Any, request: Any, ciba: CibaClient) -> None:
    """SR-03 to SR-07 and FAPI-09 on the verified claims."""
    for name in REQUIRED_CLAIMS:
        if name not in claims:
            raise InvalidRequest(f"The signed request has no {name} claim.")
    for name in ("exp", "iat", "nbf"):
        if not _is_number(claims[name]):
            raise InvalidRequest(f"The {name} claim of the signed request must be a number.")
    jti = claims["jti"]
    if not isinstance(jti, str) or not jti or len(jti) > MAX_JTI_LENGTH:
        raise InvalidRequest(
            f"The jti claim must be a non-empty string of at most {MAX_JTI_LENGTH} characters."
        )

    aud = claims["aud"]
    audiences = [aud] if isinstance(aud, str) else aud
    if not isinstance(audiences, list) or not all(isinstance(item, str) for item in audiences):
        raise InvalidRequest("The aud claim of the signed request must be a string or a list of strings.")
    # SR-04: the exact issuer identifier (no normalisation of a trailing slash or letter case).
    if oauth2_settings.oidc_issuer(request) not in audiences:
        raise InvalidRequest("The aud claim of the signed request must be this OP's issuer identifier.")
    if claims["iss"] != application.client_id:
        raise InvalidRequest("The iss claim of the signed request must be the client's client_id.")

    now, leeway = time.time(), _leeway()
    exp, iat, nbf = claims["exp"], claims["iat"], claims["nbf"]
    if exp <= now - leeway:
        raise InvalidRequest("The signed request has expired (exp).")
    if nbf > now + leeway:
        raise InvalidRequest("The signed request is not valid yet (nbf is in the future).")
    if iat > now + leeway:
        raise InvalidRequest("The signed request was issued in the future (iat).")
    max_lifetime, max_age = profiles.request_limits(ciba)  # FAPI-09: 60 minutes under FAPI-CIBA
    if now - nbf > max_age:
        raise InvalidRequest(f"The signed request is too old: nbf is more than {max_age:g} s in the past.")
    if exp <= nbf:
        raise InvalidRequest("The exp claim of the signed request must be later than nbf.")
    if exp - nbf > max_lifetime:
        raise InvalidRequest(f"The signed request lives too long: exp - nbf is more than {max_lifetime:g} s.")


def _string(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidRequest(f"The {name} claim of the signed request must be a JSON string.")
    if "\x00" in value:
        raise InvalidRequest(f"The {name} claim of the signed request contains a NUL character.")
    return value


def _check_unique_members(token: str) -> None:
    """The payload as the form's JSON parameters are read (no repeated member): PyJWT keeps the last
    of repeated members, so the same document could mean two things to two parsers."""
    segment = token.split(".")[1]
    try:
        text = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)).decode("utf-8")
        repeating = strict_json.members_repeating(text)
    except (ValueError, RecursionError):  # PyJWT read it: cannot happen, refused all the same
        raise InvalidRequest("The signed authentication request is malformed.") from None
    if "authorization_details" in repeating:
        raise InvalidAuthorizationDetails(
            "authorization_details: must be a JSON array (valid JSON, no repeated member)."
        )
    if repeating:
        where = "the payload" if "" in repeating else f"the claim {sorted(repeating)[0]}"
        raise InvalidRequest(f"The signed authentication request repeats a member in {where}.")


def _parameters(claims: dict[str, Any], form: dict[str, str], application: Any) -> dict[str, Any]:
    """SR-11 / SR-12: the CIBA parameters of the JWT as form values (the JSON ones as they are,
    checked later); nothing from the form is kept."""
    params: dict[str, Any] = {}
    for name in STRING_PARAMETERS:
        if name in claims:
            params[name] = _string(name, claims[name])
    for name in JSON_PARAMETERS:
        if name in claims and claims[name] is not None:
            params[name] = claims[name]
    if "requested_expiry" in claims:
        expiry = claims["requested_expiry"]
        if _is_number(expiry) and float(expiry).is_integer():
            params["requested_expiry"] = str(int(expiry))
        elif isinstance(expiry, str):
            params["requested_expiry"] = _string("requested_expiry", expiry)
        else:
            raise InvalidRequest("The requested_expiry claim must be a JSON string or an integer.")
    if "client_id" in claims:
        client_id = claims["client_id"]
        if client_id != application.client_id or form.get("client_id", client_id) != client_id:
            raise InvalidRequest("The client_id claim of the signed request does not match the client.")
    # Like an empty form value, an empty string means the parameter was not sent.
    return {name: value for name, value in params.items() if value != ""}
