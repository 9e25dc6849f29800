"""Sender-constrained tokens at protected resources: DOT's userinfo and resource views (RFC 9449 §7,
RFC 8705 §3).

:class:`SenderConstrainedToken` replaces oauthlib's Bearer token type for validation: it reads
``Authorization: Bearer <token>`` as before and also ``Authorization: DPoP <token>`` with its
``DPoP`` proof (checked with ``ath``, §7.1). :func:`check_presented` then holds a bound token to its
binding: a DPoP-bound token only with the DPoP scheme and a proof of its key (§7.1, §7.2), a
certificate-bound token only with its certificate (RFC 8705 §3, FAPI-16). What failed is kept on the request
as a :class:`ResourceError`, which the server turns into the ``401`` with the right
``WWW-Authenticate`` challenge (and a ``DPoP-Nonce`` when a nonce is missing).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, cast

from oauthlib.oauth2.rfc6749 import errors
from oauthlib.oauth2.rfc6749.tokens import BearerToken

from django_ciba.core.certificates import presented_certificate
from django_ciba.core.conf import ciba_settings
from django_ciba.models import TokenBinding
from django_ciba.tokens import dpop, dpop_nonces
from django_ciba.tokens.sender_constraint import request_url, verify


@dataclass(frozen=True)
class ResourceError:
    error: str
    description: str
    scheme: str = "Bearer"
    nonce: bool = False


def authorization(request: Any) -> tuple[str, str | None]:
    """``(scheme, token)`` of the Authorization header (scheme in lower case), or ``("", None)``."""
    header = (getattr(request, "headers", None) or {}).get("Authorization")
    if not isinstance(header, str):
        return "", None
    parts = header.split()
    if len(parts) != 2:
        return "", None
    return parts[0].lower(), parts[1]


def _fail(request: Any, error: ResourceError) -> bool:
    request.ciba_resource_error = error
    request.oauth2_error = {"error": error.error, "error_description": error.description}
    return False


class SenderConstrainedToken(BearerToken):
    """oauthlib's Bearer token type that also validates DPoP-bound tokens (validation only)."""

    def estimate_type(self, request: Any) -> Literal[9, 5, 0]:
        scheme, _ = authorization(request)
        if scheme in ("bearer", "dpop"):
            return 9
        return 5 if getattr(request, "access_token", None) is not None else 0

    def validate_request(self, request: Any) -> bool:
        scheme, token = authorization(request)
        request.ciba_token_scheme = scheme or "bearer"
        request.ciba_dpop_jkt = ""
        if scheme == "dpop":
            if not ciba_settings.DPOP_ENABLED or not token:
                return _fail(request, ResourceError("invalid_token", "DPoP is not accepted here.", "DPoP"))
            try:
                proof = verify(
                    request.headers, method=request.http_method, url=request_url(request), access_token=token
                )
            except dpop.NonceRequired as exc:
                return _fail(request, ResourceError("use_dpop_nonce", str(exc), "DPoP", nonce=True))
            except dpop.InvalidProof as exc:
                return _fail(request, ResourceError("invalid_dpop_proof", str(exc), "DPoP"))
            request.ciba_dpop_jkt = proof.jkt
        elif scheme and scheme != "bearer":
            return False  # another scheme: not ours
        elif not scheme:
            token = getattr(request, "access_token", None)  # a form or query parameter (RFC 6750 §2)
        if not token:
            return False
        validator = cast(Any, self.request_validator)
        return bool(validator.validate_bearer_token(token, request.scopes, request))


def check_presented(request: Any, access_token: Any) -> bool:
    """Whether a valid ``access_token`` was presented as its binding requires (see the module)."""
    scheme = getattr(request, "ciba_token_scheme", "bearer")
    binding = TokenBinding.objects.filter(access_token_id=access_token.pk).first()
    if binding is None:
        if scheme == "dpop":
            return _fail(
                request, ResourceError("invalid_token", "The access token is not DPoP-bound.", "DPoP")
            )
        return True
    if binding.jkt and scheme != "dpop":
        message = "The access token is DPoP-bound: send it with the DPoP scheme and a proof."
        return _fail(request, ResourceError("invalid_token", message, "DPoP"))
    if binding.jkt and getattr(request, "ciba_dpop_jkt", "") != binding.jkt:
        message = "The DPoP proof is not made with the key the access token is bound to."
        return _fail(request, ResourceError("invalid_token", message, "DPoP"))
    if binding.x5t_s256:
        certificate = getattr(request, "ciba_certificate", None) or presented_certificate(request.headers)
        if certificate is None or certificate.x5t_s256 != binding.x5t_s256:
            return _fail(
                request,
                ResourceError(
                    "invalid_token", "The access token is bound to another TLS client certificate."
                ),
            )
    return True


class ResourceRefused(errors.OAuth2Error):
    """The ``401`` of a protected resource, with the challenge of RFC 6750 §3 or RFC 9449 §7.1."""

    error = "invalid_token"
    status_code = 401

    def __init__(self, refusal: ResourceError, **kwargs: Any) -> None:
        self.refusal = refusal
        self.error = refusal.error
        super().__init__(description=refusal.description, **kwargs)

    @property
    def headers(self) -> dict[str, str]:
        params = [f'error="{self.error}"', f'error_description="{self.description}"']
        if self.refusal.scheme == "DPoP":
            params.append(f'algs="{" ".join(ciba_settings.DPOP_SIGNING_ALGORITHMS)}"')
        headers = {"WWW-Authenticate": f"{self.refusal.scheme} {', '.join(params)}"}
        if self.refusal.nonce:
            headers["DPoP-Nonce"] = dpop_nonces.current()
        return headers


def refusal_for(request: Any) -> errors.OAuth2Error | None:
    """The error a failed resource request should answer, when one was recorded."""
    refusal = getattr(request, "ciba_resource_error", None)
    if refusal is None:
        return None
    return ResourceRefused(refusal, request=request)
