"""Registration metadata of mutual TLS (RFC 8705 §2.1.2, §2.2, §3.4), for
:func:`django_ciba.clients.metadata.validate_metadata`.

* ``token_endpoint_auth_method`` ``tls_client_auth`` needs exactly one ``tls_client_auth_*`` value
  (the subject DN in RFC 4514 form, or a SAN: DNS name, URI, IP address, e-mail address) and an OP
  whose proxy verifies certificate chains (``CIBA["MTLS"]["VERIFIED_HEADER"]``);
  ``self_signed_tls_client_auth`` needs ``jwks`` or ``jwks_uri``. Both need a trusted proxy
  (``CIBA["MTLS"]["TRUSTED_PROXIES"]``): without one no certificate ever reaches the OP.
* ``tls_client_certificate_bound_access_tokens`` (a boolean, RFC 8705 §3.4) needs a trusted proxy
  as well.

REG-09: the FAPI-CIBA suite registers ``self_signed_tls_client_auth`` clients with bound tokens.
:func:`discovery_metadata` is the server side (DISC-08: ``mtls_endpoint_aliases``).

The rules shared with ``CibaClient.clean()`` live in :mod:`django_ciba.core.tls_client_auth`.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from oauth2_provider.settings import oauth2_settings

from django_ciba.core import tls_client_auth as rules
from django_ciba.core.conf import ciba_settings
from django_ciba.exceptions import InvalidClientMetadata


BOUND_TOKENS = "tls_client_certificate_bound_access_tokens"


def _invalid(name: str, message: str) -> InvalidClientMetadata:
    return InvalidClientMetadata(f"{name}: {message}")


def mtls_offered() -> bool:
    """Whether certificates can reach the OP: a trusted proxy is configured."""
    return bool(ciba_settings.MTLS_TRUSTED_PROXIES)


def read(data: dict[str, Any], *, method: str, has_keys: bool) -> dict[str, Any]:
    """The ``CibaClient`` fields of the RFC 8705 metadata in ``data``; raise
    :class:`~django_ciba.exceptions.InvalidClientMetadata` naming the field at fault."""
    fields: dict[str, Any] = {}
    for name in rules.VALUE_FIELDS:
        value = data.get(name)
        if value is None:
            continue
        try:
            fields[name] = rules.check_value(name, value)
        except ValueError as exc:
            raise _invalid(name, str(exc)) from exc
    if method in rules.MTLS_METHODS and not mtls_offered():
        raise _invalid("token_endpoint_auth_method", f"{method} is not offered by this server.")
    if method in rules.MTLS_METHODS and not oauth2_settings.OIDC_RSA_PRIVATE_KEY:
        # Without an RSA key DOT signs ID tokens HS256 with the client secret, which such a client
        # never receives.
        raise _invalid("token_endpoint_auth_method", f"{method} needs an OP that signs ID tokens with RS256.")
    if method == rules.TLS_CLIENT_AUTH and not ciba_settings.MTLS_VERIFIED_HEADER:
        raise _invalid(
            "token_endpoint_auth_method",
            "tls_client_auth is not offered: this server does not verify certificate chains.",
        )
    candidate = SimpleNamespace(token_endpoint_auth_method=method, jwks=has_keys, jwks_uri="", **fields)
    problem = rules.registration_problem(candidate)
    if problem is not None:
        raise _invalid(*problem)
    bound = data.get(BOUND_TOKENS)
    if bound is not None and not isinstance(bound, bool):
        raise _invalid(BOUND_TOKENS, "must be a boolean.")
    if bound and not mtls_offered():
        raise _invalid(BOUND_TOKENS, "certificate-bound tokens are not offered by this server.")
    return {**{name: fields.get(name, "") for name in rules.VALUE_FIELDS}, BOUND_TOKENS: bool(bound)}


def information(ciba: Any) -> dict[str, Any]:
    """The RFC 8705 metadata of a registered client, for the client information response."""
    info: dict[str, Any] = {name: getattr(ciba, name) for name in rules.VALUE_FIELDS if getattr(ciba, name)}
    info[BOUND_TOKENS] = bool(ciba.tls_client_certificate_bound_access_tokens)
    return info


def discovery_metadata(auth_methods: list[str]) -> dict[str, Any]:
    """The RFC 8705 server metadata when a trusted proxy is configured (§2.1, §2.2, §3.3, §5):
    ``auth_methods`` (token_endpoint_auth_methods_supported) gains the mTLS methods it can offer
    (``tls_client_auth`` needs a proxy that verifies chains)."""
    if not mtls_offered():
        return {}
    offered = [rules.SELF_SIGNED_TLS_CLIENT_AUTH]
    if ciba_settings.MTLS_VERIFIED_HEADER:
        offered.insert(0, rules.TLS_CLIENT_AUTH)
    auth_methods.extend(method for method in offered if method not in auth_methods)
    data: dict[str, Any] = {BOUND_TOKENS: True}
    aliases = ciba_settings.MTLS_ENDPOINT_ALIASES
    if aliases and isinstance(aliases, dict):
        data["mtls_endpoint_aliases"] = dict(aliases)
    return data
