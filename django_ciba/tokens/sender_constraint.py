"""Sender-constrained tokens at the token endpoint: DPoP (RFC 9449 §5) and TLS client certificates
(RFC 8705 §3), for every grant DOT serves (CIBA, refresh_token, client_credentials, ...).

Three steps, registered on every grant by :class:`~django_ciba.server.CibaServerMixin` and the
validator:

1. :func:`check_proof` (a ``pre_token`` validator): a ``DPoP`` header is checked (RFC 9449 §4.3)
   before anything else; a bad proof is ``invalid_dpop_proof``, a proof without the server's
   current nonce (when ``CIBA["DPOP"]["NONCE_REQUIRED"]``) is ``use_dpop_nonce`` with a fresh
   ``DPoP-Nonce`` header (§8).
2. :func:`check_binding` (a ``post_token`` validator, once the client is authenticated): what the
   client and the grant require: a proof for a client registered with ``dpop_bound_access_tokens``
   (§5.2), a certificate for one registered with ``tls_client_certificate_bound_access_tokens``
   (RFC 8705 §3.4; FAPI-15 under the profile), the key named at bc-authorize (``dpop_jkt``) or
   the certificate presented there,
   the key or certificate a refresh token is bound to, and any binding at all where the FAPI-CIBA
   profile requires sender-constrained tokens.
3. :func:`bind_issued` (from the validator's ``save_bearer_token``): the tokens just stored get their
   :class:`~django_ciba.models.TokenBinding`, and a DPoP-bound token response says
   ``token_type: DPoP`` (§5.1). Push mode mints through the same step, binding to what the client
   named at bc-authorize.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from django.core.cache import caches
from oauth2_provider.models import get_refresh_token_model
from oauthlib.oauth2.rfc6749 import errors

from django_ciba.core import profiles
from django_ciba.core.certificates import ClientCertificate, presented_certificate
from django_ciba.core.conf import ciba_settings
from django_ciba.core.constants import ABSOLUTE_URL_HEADER
from django_ciba.models import CibaClient, TokenBinding
from django_ciba.tokens import dpop, dpop_nonces, issued


DPOP_TOKEN_TYPE = "DPoP"


class InvalidDPoPProof(errors.OAuth2Error):
    """RFC 9449 §5: the token request's DPoP proof is missing where required, or invalid."""

    error = "invalid_dpop_proof"
    status_code = 400


class UseDPoPNonce(errors.OAuth2Error):
    """RFC 9449 §8: the proof must carry the server nonce sent in ``DPoP-Nonce``."""

    error = "use_dpop_nonce"
    status_code = 400

    @property
    def headers(self) -> dict[str, str]:
        return {"DPoP-Nonce": dpop_nonces.current()}


def header_values(headers: Mapping[str, Any]) -> list[str]:
    """The ``DPoP`` header's values: Django joins a repeated header with commas, which a compact
    JWS never contains, so more than one value means the header was sent more than once."""
    value = headers.get("HTTP_DPOP")
    if value is None:
        value = headers.get("DPoP")
    if not isinstance(value, str):
        return []
    return [part.strip() for part in value.split(",")]


def _remember_jti(key: str, seconds: int) -> bool:
    return dpop.cache_jti_recorder(caches[ciba_settings.CACHE_ALIAS])(key, seconds)


def verify(
    headers: Mapping[str, Any], *, method: str, url: str, access_token: str | None = None
) -> dpop.Proof:
    """Check one request's proof with the settings (raises :class:`dpop.InvalidProof`)."""
    return dpop.check_proof(
        header_values(headers),
        method=method,
        url=url,
        now=time.time(),
        nonces=dpop_nonces.accepted() if dpop_nonces.required() else (),
        access_token=access_token,
        remember_jti=_remember_jti,
        max_age=int(ciba_settings.DPOP_PROOF_MAX_AGE),
        # The OP-wide profile narrows them (FAPI-13); the client is not known yet.
        algorithms=tuple(profiles.allowed_algorithms(None, ciba_settings.DPOP_SIGNING_ALGORITHMS)),
    )


def request_url(request: Any) -> str:
    """The absolute URL of an oauthlib request (see :mod:`django_ciba.oauthlib_core`); without it,
    built from the WSGI environment."""
    headers = request.headers
    url = headers.get(ABSOLUTE_URL_HEADER)
    if isinstance(url, str) and url:
        return url
    uri = str(request.uri or "")
    if "://" in uri:
        return uri
    secure = headers.get("HTTPS") == "on" or headers.get("wsgi.url_scheme") == "https"
    host = headers.get("HTTP_HOST") or f"{headers.get('SERVER_NAME', '')}:{headers.get('SERVER_PORT', '')}"
    return f"{'https' if secure else 'http'}://{host}{uri}"


def check_proof(request: Any) -> None:
    """``pre_token``: check a ``DPoP`` header when there is one; keep its key's thumbprint."""
    request.ciba_dpop_jkt = ""
    if not ciba_settings.DPOP_ENABLED or not header_values(request.headers):
        return  # RFC 9449 §5: without support the header is ignored, and the tokens are Bearer
    try:
        proof = verify(request.headers, method=request.http_method, url=request_url(request))
    except dpop.NonceRequired as exc:
        raise UseDPoPNonce(description=str(exc), request=request) from None
    except dpop.InvalidProof as exc:
        raise InvalidDPoPProof(description=str(exc), request=request) from None
    request.ciba_dpop_jkt = proof.jkt


def _certificate(request: Any) -> ClientCertificate | None:
    certificate = getattr(request, "ciba_certificate", None)
    if certificate is None:
        certificate = presented_certificate(request.headers)
    return certificate


def check_binding(request: Any) -> None:
    """``post_token``: the bindings the client, the grant and the profile require (see the module)."""
    jkt: str = getattr(request, "ciba_dpop_jkt", "") or ""
    ciba = CibaClient.objects.registration_of(getattr(request, "client", None))
    auth = getattr(request, "ciba_request", None)
    wants_certificate = bool(ciba and ciba.tls_client_certificate_bound_access_tokens) or bool(
        auth is not None and auth.binding_x5t
    )
    certificate = _certificate(request) if wants_certificate else None
    if auth is not None and auth.binding_jkt and auth.binding_jkt != jkt:
        raise InvalidDPoPProof(
            description="The DPoP proof's key is not the key named at bc-authorize (dpop_jkt).",
            request=request,
        )
    if (
        auth is not None
        and auth.binding_x5t
        and (certificate is None or certificate.x5t_s256 != auth.binding_x5t)
    ):
        raise errors.InvalidGrantError(
            description="The TLS client certificate is not the one presented at bc-authorize.",
            request=request,
        )
    _check_refresh_binding(request, jkt)
    if ciba is not None and ciba.dpop_bound_access_tokens and not jkt:
        raise InvalidDPoPProof(description="This client must send a DPoP proof.", request=request)
    if wants_certificate and certificate is None:
        raise errors.InvalidRequestError(
            description="A TLS client certificate is required to bind this client's tokens.", request=request
        )
    x5t = certificate.x5t_s256 if certificate is not None else ""
    # Applications without a CIBA registration keep DOT's rules under the profile too.
    if ciba is not None and profiles.requires_sender_constrained_tokens(ciba) and not (jkt or x5t):
        raise errors.InvalidRequestError(
            description="Sender-constrained tokens are required: send a DPoP proof or use mutual TLS.",
            request=request,
        )
    request.ciba_bound_x5t = x5t


def _check_refresh_binding(request: Any, jkt: str) -> None:
    """A refresh token bound to a key or certificate (public clients: RFC 9449 §5, RFC 8705 §4)."""
    refresh_token = getattr(request, "refresh_token_instance", None)
    if refresh_token is None or getattr(refresh_token, "pk", None) is None:
        return
    binding = TokenBinding.objects.filter(refresh_token_id=refresh_token.pk).first()
    if binding is None:
        return
    if binding.jkt and binding.jkt != jkt:
        raise InvalidDPoPProof(description="The refresh token is bound to another DPoP key.", request=request)
    if binding.x5t_s256:
        certificate = _certificate(request)
        if certificate is None or certificate.x5t_s256 != binding.x5t_s256:
            raise errors.InvalidGrantError(
                description="The refresh token is bound to another TLS client certificate.", request=request
            )


def bind_issued(token: dict[str, Any], request: Any) -> None:
    """Record what the tokens just stored are bound to; ``token_type: DPoP`` for a DPoP key."""
    auth = getattr(request, "ciba_request", None)
    jkt = getattr(request, "ciba_dpop_jkt", "") or (auth.binding_jkt if auth is not None else "")
    x5t = getattr(request, "ciba_bound_x5t", "") or (auth.binding_x5t if auth is not None else "")
    if not (jkt or x5t):
        if getattr(request, "grant_type", None) == "refresh_token":
            # DOT may reuse the access token row on refresh: a binding of the old token must go.
            access_token = issued.access_token_of(token, request)
            if access_token is not None:
                TokenBinding.objects.filter(access_token=access_token).delete()
        return
    access_token = issued.access_token_of(token, request)
    if access_token is None:
        return
    TokenBinding.objects.update_or_create(access_token=access_token, defaults={"jkt": jkt, "x5t_s256": x5t})
    if jkt:
        token["token_type"] = DPOP_TOKEN_TYPE
    refresh_value = token.get("refresh_token")
    client = getattr(request, "client", None)
    if isinstance(refresh_value, str) and getattr(client, "client_type", None) == "public":
        refresh_token = get_refresh_token_model().objects.filter(token=refresh_value).first()
        if refresh_token is not None:
            TokenBinding.objects.update_or_create(
                refresh_token=refresh_token, defaults={"jkt": jkt, "x5t_s256": x5t}
            )
