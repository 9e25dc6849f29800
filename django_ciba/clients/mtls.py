"""Mutual-TLS client authentication (RFC 8705 §2) for DOT's validator, behind a TLS-terminating proxy.

:class:`~django_ciba.validators.CibaValidatorMixin` routes here every request whose form
``client_id`` names a client registered for ``tls_client_auth`` or ``self_signed_tls_client_auth``,
at the backchannel endpoint and at the token endpoint for every grant (BC-03, TOK-02, REG-07; two of
the methods FAPI-12 allows, public-key methods as SEC-11 recommends). The form parameter
``client_id`` names the client, also with a signed request (SR-10). The
client certificate is the one the trusted proxy passed on (:mod:`django_ciba.core.certificates`).
The client is authenticated when:

* it is a confidential application and the request carries no other credentials (no Basic header,
  ``client_secret`` or client assertion: one method per request, RFC 6749 §2.3);
* ``tls_client_auth`` (§2.1): the proxy verified the certificate chain (``VERIFIED_HEADER`` said
  ``SUCCESS``) and the certificate carries the one registered ``tls_client_auth_*`` value;
* ``self_signed_tls_client_auth`` (§2.2): the certificate's public key is one of the client's
  registered keys (``jwks`` or ``jwks_uri``, refetched once, throttled, for a key it lacks); the
  chain is not checked.

On success the certificate is kept on the oauthlib request as ``request.ciba_certificate`` (tokens
bound to it, RFC 8705 §3, read it there). Failures are logged with the reason and the client,
never the certificate, and the caller answers ``invalid_client``.
"""

from __future__ import annotations

import logging
from typing import Any

from oauth2_provider.models import AbstractApplication

from django_ciba.clients import keys as client_keys
from django_ciba.core import tls_client_auth as rules
from django_ciba.core.certificates import ClientCertificate, presented_certificate
from django_ciba.models import CibaClient


logger = logging.getLogger(__name__)


class MtlsAuthenticationError(Exception):
    """Why a certificate did not authenticate the client (safe to log: no certificate data)."""


def registered_method(application: Any) -> str | None:
    """The RFC 8705 method ``application``'s CIBA registration (enabled or not, REG-07) names, or None."""
    ciba = CibaClient.objects.registration_of(application)
    method = ciba.token_endpoint_auth_method if ciba is not None else None
    return method if method in rules.MTLS_METHODS else None


def authenticate(request: Any, application: Any, *, other_method: bool = False) -> bool:
    """Authenticate ``application`` (registered for an RFC 8705 method) by the request's certificate.

    ``other_method``: the request also carries a secret or an assertion (refused). Sets
    ``request.ciba_certificate`` on success.
    """
    try:
        if other_method:
            raise MtlsAuthenticationError("other client credentials came along with the certificate")
        certificate = verify(request, application)
    except MtlsAuthenticationError as exc:
        logger.info("Mutual-TLS client authentication failed (client %r): %s", _client_id(application), exc)
        return False
    request.ciba_certificate = certificate
    return True


def verify(request: Any, application: Any) -> ClientCertificate:
    """The certificate that authenticates ``application``; :class:`MtlsAuthenticationError` if none."""
    if getattr(application, "client_type", None) != AbstractApplication.CLIENT_CONFIDENTIAL:
        raise MtlsAuthenticationError("the client is not confidential")
    ciba = CibaClient.objects.registration_of(application)
    method = registered_method(application)
    if ciba is None or method is None:
        raise MtlsAuthenticationError("the client is not registered for mutual-TLS authentication")
    certificate = presented_certificate(getattr(request, "headers", None) or {})
    if certificate is None:
        raise MtlsAuthenticationError("no client certificate came through a trusted proxy")
    if method == rules.TLS_CLIENT_AUTH:
        _check_pki(certificate, ciba)
    else:
        _check_self_signed(certificate, ciba)
    return certificate


def _check_pki(certificate: ClientCertificate, ciba: CibaClient) -> None:
    """RFC 8705 §2.1: a chain the proxy verified, and the registered subject DN or SAN."""
    if not certificate.verified:
        raise MtlsAuthenticationError("the proxy did not verify the certificate chain")
    registered = rules.registered_value(ciba)
    if registered is None:
        raise MtlsAuthenticationError("the client registered no single tls_client_auth_* value")
    field, value = registered
    if not rules.value_matches(certificate, field, value):
        raise MtlsAuthenticationError(f"the certificate does not carry the registered {field}")


def _check_self_signed(certificate: ClientCertificate, ciba: CibaClient) -> None:
    """RFC 8705 §2.2: the certificate's public key is a registered key (chain not checked)."""
    for refresh in (False, True):
        if refresh and not ciba.jwks_uri:
            break
        try:
            keys = client_keys.registered_keys(ciba, refresh=refresh)
        except client_keys.ClientJwtError as exc:
            raise MtlsAuthenticationError(str(exc)) from exc
        if certificate.has_public_key(key.key for key in keys):
            return
    raise MtlsAuthenticationError("the certificate's public key is not one of the client's registered keys")


def _client_id(application: Any) -> str:
    return str(getattr(application, "client_id", "") or "?")[:64]
