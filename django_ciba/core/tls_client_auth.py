"""The registration rules of the mutual-TLS client authentication methods (RFC 8705 §2.1.2, §2.2).

Shared by dynamic registration (:mod:`django_ciba.clients.tls_metadata`) and
``CibaClient.clean()`` (the admin, the management command), so both refuse the same things:

* ``tls_client_auth`` needs exactly one of the ``tls_client_auth_*`` values: the certificate
  subject DN or one subjectAltName (DNS name, URI, IP address or e-mail address) that the client's
  certificate must carry;
* ``self_signed_tls_client_auth`` needs registered keys (``jwks`` or ``jwks_uri``): the
  certificate's public key must be one of them;
* the ``tls_client_auth_*`` values go with ``tls_client_auth`` only.

:func:`value_matches` says whether a presented certificate carries a registered value.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from django_ciba.core.certificates import ClientCertificate, parse_dn


TLS_CLIENT_AUTH = "tls_client_auth"
SELF_SIGNED_TLS_CLIENT_AUTH = "self_signed_tls_client_auth"
#: The client authentication methods of RFC 8705 §2.
MTLS_METHODS = (TLS_CLIENT_AUTH, SELF_SIGNED_TLS_CLIENT_AUTH)
#: The registered certificate values of tls_client_auth (the metadata names are the field names).
VALUE_FIELDS = (
    "tls_client_auth_subject_dn",
    "tls_client_auth_san_dns",
    "tls_client_auth_san_uri",
    "tls_client_auth_san_ip",
    "tls_client_auth_san_email",
)
#: The longest value of each field (the model's column sizes).
MAX_LENGTHS = {
    "tls_client_auth_subject_dn": 1000,
    "tls_client_auth_san_dns": 255,
    "tls_client_auth_san_uri": 2000,
    "tls_client_auth_san_ip": 45,
    "tls_client_auth_san_email": 255,
}

_DNS_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


def _check_dns(value: str) -> str:
    name = value[2:] if value.startswith("*.") else value  # a wildcard certificate name
    labels = name.rstrip(".").split(".")
    if len(name) > 253 or not all(_DNS_LABEL.fullmatch(label) for label in labels):
        raise ValueError("must be a DNS name (e.g. client.example.com).")
    return value.lower()


def _check_uri(value: str) -> str:
    parts = urlsplit(value)
    if not parts.scheme or not (parts.netloc or parts.path) or any(char.isspace() for char in value):
        raise ValueError("must be an absolute URI.")
    return value


def _check_ip(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ValueError("must be an IPv4 or IPv6 address.") from None


def _check_email(value: str) -> str:
    try:
        validate_email(value)
    except ValidationError:
        raise ValueError("must be an e-mail address.") from None
    return value


def _check_dn(value: str) -> str:
    parse_dn(value)
    return value.strip()


_CHECKS = {
    "tls_client_auth_subject_dn": _check_dn,
    "tls_client_auth_san_dns": _check_dns,
    "tls_client_auth_san_uri": _check_uri,
    "tls_client_auth_san_ip": _check_ip,
    "tls_client_auth_san_email": _check_email,
}


def check_value(field: str, value: Any) -> str:
    """``value`` of the ``tls_client_auth_*`` ``field``, normalised (an IP address in its short
    form, a DNS name in lower case); ValueError with a message naming the problem."""
    if not isinstance(value, str):
        raise ValueError("must be a string.")
    if not value or len(value) > MAX_LENGTHS[field] or "\x00" in value:
        raise ValueError(f"must be 1 to {MAX_LENGTHS[field]} characters long.")
    return _CHECKS[field](value)


def registration_problem(client: Any) -> tuple[str, str] | None:
    """Why ``client`` (a :class:`~django_ciba.models.CibaClient` or anything with its attributes)
    breaks the RFC 8705 registration rules, as ``(field, message)``; None when it does not."""
    method = client.token_endpoint_auth_method
    registered = [field for field in VALUE_FIELDS if getattr(client, field, "")]
    if method != TLS_CLIENT_AUTH and registered:
        return registered[0], "is only registered with token_endpoint_auth_method tls_client_auth."
    if method == TLS_CLIENT_AUTH:
        if len(registered) != 1:
            return (
                "token_endpoint_auth_method",
                "tls_client_auth needs exactly one of " + ", ".join(VALUE_FIELDS) + ".",
            )
        try:
            check_value(registered[0], getattr(client, registered[0]))
        except ValueError as exc:
            return registered[0], str(exc)
    if method == SELF_SIGNED_TLS_CLIENT_AUTH and not (client.jwks or client.jwks_uri):
        return "token_endpoint_auth_method", "self_signed_tls_client_auth needs jwks or jwks_uri."
    return None


def registered_value(client: Any) -> tuple[str, str] | None:
    """The one ``(field, value)`` a tls_client_auth client registered, None if not exactly one."""
    registered = [(field, getattr(client, field, "")) for field in VALUE_FIELDS if getattr(client, field, "")]
    return registered[0] if len(registered) == 1 else None


def value_matches(certificate: ClientCertificate, field: str, value: str) -> bool:
    """Whether ``certificate`` carries the registered ``value`` of ``field`` (RFC 8705 §2.1.2).

    The subject DN is compared by meaning (RFC 4514 parsed, attribute values without case and
    extra spaces); DNS names without case (RFC 4343); IP addresses as addresses; e-mail addresses
    with the domain without case; URIs exactly.
    """
    if field == "tls_client_auth_subject_dn":
        return certificate.subject_matches(value)
    if field == "tls_client_auth_san_dns":
        return value.rstrip(".").lower() in [name.rstrip(".").lower() for name in certificate.san_dns]
    if field == "tls_client_auth_san_uri":
        return value in certificate.san_uri
    if field == "tls_client_auth_san_ip":
        try:
            return ipaddress.ip_address(value) in certificate.san_ip
        except ValueError:
            return False
    if field == "tls_client_auth_san_email":
        return _email_key(value) in [_email_key(address) for address in certificate.san_email]
    return False


def _email_key(address: str) -> tuple[str, str]:
    local, _, domain = address.rpartition("@")
    return local, domain.lower()
