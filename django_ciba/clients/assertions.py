"""``private_key_jwt`` client authentication (RFC 7523 §2.2, OIDC Core §9) for DOT's validator.

A client authenticates by sending ``client_assertion_type`` (the RFC 7523 JWT bearer URN) and
``client_assertion``, a JWT it signed with one of its registered keys (``jwks`` or ``jwks_uri``).
:class:`~django_ciba.validators.CibaValidatorMixin` routes every request carrying either parameter
here, at the backchannel endpoint and at the token endpoint alike (REG-07, DISC-06, BC-03, TOK-02),
so DOT's own grants (client_credentials, refresh_token) accept the method too.

The assertion names its client in ``iss`` (and ``sub``). It is accepted when:

* the client is a confidential application with a CIBA registration (enabled or not) whose
  ``token_endpoint_auth_method`` is ``private_key_jwt`` and which has keys;
* a registered key verifies the signature, with the registered ``token_endpoint_auth_signing_alg``
  or else any asymmetric algorithm of ``SIGNING_ALGORITHMS`` (``none`` and HS* never; under
  FAPI-CIBA, PS256 and ES256 only: FAPI-13);
* ``aud`` names the issuer, the token endpoint or the backchannel endpoint (BC-04);
* ``exp`` is present, not past, and at most ``CLIENT_ASSERTION_MAX_LIFETIME`` seconds ahead;
  ``nbf`` and ``iat``, if present, are not in the future (``JWT_LEEWAY`` of skew everywhere);
* its ``jti`` was not used before by the same client (recorded once everything else passed).

Any failure is logged (the reason and the claimed client, never the assertion) and the caller
answers ``invalid_client``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeGuard
from urllib.parse import urlsplit

import jwt
from django.core.exceptions import SuspiciousOperation
from django.urls import NoReverseMatch, reverse
from oauth2_provider.models import AbstractApplication
from oauth2_provider.settings import oauth2_settings

from django_ciba.clients import keys as client_keys
from django_ciba.clients.replay import use_jti
from django_ciba.core import profiles
from django_ciba.core.conf import ciba_settings
from django_ciba.models import AuthMethod, CibaClient, JwtUse


logger = logging.getLogger(__name__)

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
PARAMETERS = ("client_assertion_type", "client_assertion")
# Endpoints whose URL an assertion may name as its audience, besides the issuer (BC-04).
AUDIENCE_ENDPOINTS = (
    "django_ciba:token",
    "oauth2_provider:token",
    "django_ciba:bc-authorize",
    "django_ciba:bc-cancel",
)

LoadApplication = Callable[[str, Any], Any]


class ClientAssertionError(Exception):
    """Why an assertion was refused; the message is safe to log (no token, no key material)."""


def presented(request: Any) -> bool:
    """Whether the oauthlib ``request`` attempts client-assertion authentication."""
    # getattr: oauthlib 3 raises AttributeError for absent parameters, later versions may not.
    return any(getattr(request, name, None) for name in PARAMETERS)


def authenticate(request: Any, load_application: LoadApplication, *, other_method: bool = False) -> Any:
    """The application the assertion in ``request`` authenticates, or None (logged at INFO).

    ``load_application(client_id, request)`` is the validator's lookup (it sets ``request.client``).
    ``other_method`` says the request also carries a secret (Basic header or ``client_secret``):
    RFC 6749 §2.3 allows one authentication method per request, so it is refused.
    """
    try:
        if other_method:
            raise ClientAssertionError("a client secret was presented along with the assertion")
        return verify(request, load_application)
    except ClientAssertionError as exc:
        logger.info("private_key_jwt authentication failed (client %r): %s", _claimed_client_id(request), exc)
        return None


def verify(request: Any, load_application: LoadApplication) -> Any:
    """Check the assertion in ``request``; return its application or raise :class:`ClientAssertionError`."""
    if getattr(request, "client_assertion_type", None) != ASSERTION_TYPE:
        raise ClientAssertionError("client_assertion_type is missing or not the JWT bearer type")
    token = getattr(request, "client_assertion", None)
    if not token or not isinstance(token, str):
        raise ClientAssertionError("client_assertion is missing")
    try:
        client_keys.unverified_header(token)
        unverified = jwt.decode(token, options={"verify_signature": False})
    except (client_keys.ClientJwtError, jwt.PyJWTError, ValueError, TypeError) as exc:
        raise ClientAssertionError("client_assertion is not a compact JWS") from exc
    client_id = unverified.get("iss") if isinstance(unverified, dict) else None
    if not client_id or not isinstance(client_id, str):
        raise ClientAssertionError("the assertion has no iss")
    form_client_id = getattr(request, "client_id", None)
    if form_client_id and form_client_id != client_id:
        raise ClientAssertionError("client_id differs from the assertion's iss")

    application = load_application(client_id, request)
    if application is None:
        raise ClientAssertionError("unknown or unusable client")
    if getattr(application, "client_type", None) != AbstractApplication.CLIENT_CONFIDENTIAL:
        raise ClientAssertionError("the client is not confidential")
    ciba = CibaClient.objects.registration_of(application)  # enabled or not: the grant decides (REG-07)
    if ciba is None or ciba.token_endpoint_auth_method != AuthMethod.PRIVATE_KEY_JWT:
        raise ClientAssertionError("the client is not registered for private_key_jwt")
    if not ciba.has_keys:
        raise ClientAssertionError("the client has registered no keys")

    try:
        _header, claims = client_keys.verify_client_jwt(token, ciba, algorithms=_algorithms(ciba))
    except client_keys.ClientJwtError as exc:
        raise ClientAssertionError(str(exc)) from exc
    expires = _check_claims(claims, client_id, request)
    if not use_jti(application, JwtUse.Kind.CLIENT_ASSERTION, claims["jti"], expires):
        raise ClientAssertionError("the assertion's jti was already used (replay)")
    return application


def _algorithms(ciba: Any) -> list[str]:
    """The registered ``token_endpoint_auth_signing_alg`` if still supported, else every supported one;
    PS256 and ES256 only under FAPI-CIBA (FAPI-13)."""
    supported = profiles.allowed_algorithms(ciba, client_keys.supported_algorithms())
    registered = ciba.token_endpoint_auth_signing_alg
    if registered:
        return [registered] if registered in supported else []
    return supported


def _check_claims(claims: dict[str, Any], client_id: str, request: Any) -> datetime:
    """Validate the verified claims; return until when the ``jti`` must be remembered."""
    if claims.get("iss") != client_id or claims.get("sub") != client_id:
        raise ClientAssertionError("iss and sub must both be the client_id")
    audience = claims.get("aud")
    audiences = [audience] if isinstance(audience, str) else audience
    if not isinstance(audiences, list) or not audiences:
        raise ClientAssertionError("the assertion has no aud")
    accepted = accepted_audiences(request)
    if not any(isinstance(value, str) and value in accepted for value in audiences):
        raise ClientAssertionError("aud names neither the issuer nor an endpoint of this server")
    now = time.time()
    leeway = float(ciba_settings.JWT_LEEWAY)
    exp = claims.get("exp")
    if not _is_number(exp):
        raise ClientAssertionError("the assertion has no numeric exp")
    if exp <= now - leeway:
        raise ClientAssertionError("the assertion has expired")
    if exp - now > float(ciba_settings.CLIENT_ASSERTION_MAX_LIFETIME) + leeway:
        raise ClientAssertionError("the assertion's exp is too far ahead")
    for name in ("nbf", "iat"):
        if name in claims:
            if not _is_number(claims[name]):
                raise ClientAssertionError(f"{name} is not numeric")
            if claims[name] > now + leeway:
                raise ClientAssertionError(f"{name} is in the future")
    jti = claims.get("jti")
    if not jti or not isinstance(jti, str):
        raise ClientAssertionError("the assertion has no jti")
    return datetime.fromtimestamp(exp + leeway, tz=UTC)


def accepted_audiences(request: Any) -> set[str]:
    """The issuer and the URLs of the token and backchannel endpoints, as discovery publishes them.

    ``request`` may be an oauthlib or a Django request (DOT's ``oidc_issuer`` takes either).
    """
    try:
        issuer = oauth2_settings.oidc_issuer(request)
    except (SuspiciousOperation, KeyError, TypeError) as exc:  # e.g. DisallowedHost
        raise ClientAssertionError("the issuer cannot be determined for this request") from exc
    parsed = urlsplit(issuer)
    origin = f"{parsed.scheme}://{parsed.netloc}"
    accepted = {issuer}
    for name in AUDIENCE_ENDPOINTS:
        try:
            accepted.add(origin + reverse(name))
        except NoReverseMatch:
            continue
    return accepted


def _is_number(value: Any) -> TypeGuard[int | float]:
    """A finite JSON number (``NaN`` would slip through every comparison)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _claimed_client_id(request: Any) -> str:
    """The client an assertion claims to come from, for log lines only (shortened, unverified)."""
    token = getattr(request, "client_assertion", None)
    value: Any = getattr(request, "client_id", None)
    if not value and isinstance(token, str):
        try:
            value = jwt.decode(token, options={"verify_signature": False}).get("iss")
        except (jwt.PyJWTError, ValueError, TypeError, AttributeError):
            value = None
    return str(value)[:64] if value else "?"
