"""The TLS client certificate a trusted, TLS-terminating proxy passed on (RFC 8705, RFC 9440).

Django never sees the TLS handshake: the proxy (nginx) terminates TLS and hands the client
certificate to the app in a header, ``CIBA["MTLS"]["CERTIFICATE_HEADER"]`` (``Client-Cert``). That
header is believed only from the addresses of ``CIBA["MTLS"]["TRUSTED_PROXIES"]``; from anyone
else a request has no certificate, whatever its headers say. Three encodings are read:

* RFC 9440 §2.2: a Structured Field byte sequence, ``:<base64 of the DER>:``;
* a URL-encoded PEM, as nginx's ``$ssl_client_escaped_cert`` (nginx cannot emit RFC 9440's form);
* a plain PEM, its line breaks folded into spaces or tabs (nginx's older ``$ssl_client_cert``).

Whether the proxy verified the certificate chain is a second header,
``CIBA["MTLS"]["VERIFIED_HEADER"]`` (nginx's ``$ssl_client_verify``), which must say ``SUCCESS``.
Anything malformed is no certificate: :func:`presented_certificate` never raises.

Infrastructure for every layer: the client authentication methods of RFC 8705 §2
(:mod:`django_ciba.clients.mtls`) and certificate-bound tokens (RFC 8705 §3) read it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any
from urllib.parse import unquote

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from django_ciba.core.conf import ciba_settings


#: The longest certificate header read, in characters (a URL-encoded PEM of a large RSA
#: certificate chain's leaf stays far below); longer headers are no certificate.
MAX_HEADER_CHARS = 32 * 1024
#: The value of the verification header that means "the proxy verified the chain" (nginx).
VERIFIED_VALUE = "SUCCESS"

_PEM = re.compile(r"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", re.DOTALL)
_SPACE = re.compile(r"\s+")
#: RFC 4514 attribute type names cryptography does not know, accepted in registered DNs.
_EXTRA_DN_NAMES = {
    "EMAILADDRESS": NameOID.EMAIL_ADDRESS,
    "E": NameOID.EMAIL_ADDRESS,
    "SERIALNUMBER": NameOID.SERIAL_NUMBER,
    "SN": NameOID.SURNAME,
    "GN": NameOID.GIVEN_NAME,
    "GIVENNAME": NameOID.GIVEN_NAME,
    "TITLE": NameOID.TITLE,
    "ORGANIZATIONIDENTIFIER": NameOID.ORGANIZATION_IDENTIFIER,
}

#: A distinguished name compared by meaning: per RDN (in order), the set of (type OID, value).
NormalisedName = tuple[frozenset[tuple[str, Any]], ...]


def meta_key(header: str) -> str:
    """The ``request.META`` key of an HTTP header name (``Client-Cert`` -> ``HTTP_CLIENT_CERT``)."""
    return "HTTP_" + header.upper().replace("-", "_")


def parse_dn(value: str) -> x509.Name:
    """An RFC 4514 distinguished name string as a :class:`~cryptography.x509.Name`; ValueError if
    it is not one (empty, unknown attribute type, bad escaping)."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError("A distinguished name cannot be empty.")
    try:
        name = x509.Name.from_rfc4514_string(value.strip(), attr_name_overrides=_EXTRA_DN_NAMES)
    except (ValueError, TypeError) as exc:
        raise ValueError("Not an RFC 4514 distinguished name (e.g. CN=client,O=Example,C=SE).") from exc
    if not name.rdns:
        raise ValueError("A distinguished name cannot be empty.")
    return name


def _fold(value: Any) -> Any:
    """An attribute value for comparison: caseIgnoreMatch with insignificant spaces (RFC 4518 §2.6.1)."""
    if isinstance(value, str):
        return _SPACE.sub(" ", value).strip().casefold()
    return value


def normalise_name(name: x509.Name) -> NormalisedName:
    """``name`` in a form where two names compare equal when RFC 4517's distinguishedNameMatch
    says so for the usual (case-ignoring) attribute types: the same RDNs in the same order, each
    RDN a set of attribute types and values, values compared without case and extra spaces."""
    return tuple(
        frozenset((attribute.oid.dotted_string, _fold(attribute.value)) for attribute in rdn)
        for rdn in name.rdns
    )


@dataclass(frozen=True)
class ClientCertificate:
    """A client certificate presented through the trusted proxy (DER), and whether it verified it."""

    der: bytes
    #: The trusted proxy says it verified the certificate chain (``VERIFIED_HEADER`` is SUCCESS).
    verified: bool

    @property
    def x5t_s256(self) -> str:
        """The certificate's SHA-256 thumbprint, base64url without padding (RFC 8705 §3.1)."""
        digest = hashlib.sha256(self.der).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")

    @cached_property
    def certificate(self) -> x509.Certificate:
        return x509.load_der_x509_certificate(self.der)

    @property
    def subject_dn(self) -> str:
        """The subject distinguished name as an RFC 4514 string ("" if unreadable)."""
        try:
            return self.certificate.subject.rfc4514_string()
        except ValueError:
            return ""

    def subject_matches(self, registered_dn: str) -> bool:
        """Whether the subject is the distinguished name ``registered_dn`` (RFC 4514 string),
        compared by meaning, not as strings (RFC 8705 §2.1.2)."""
        try:
            expected = normalise_name(parse_dn(registered_dn))
            return normalise_name(self.certificate.subject) == expected
        except ValueError:
            return False

    def _san(self, kind: type[x509.GeneralName]) -> list[Any]:
        try:
            extension = self.certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        except (x509.ExtensionNotFound, ValueError):
            return []
        return list(extension.value.get_values_for_type(kind))  # type: ignore[arg-type]

    @property
    def san_dns(self) -> list[str]:
        """The subjectAltName dNSName values."""
        return [str(value) for value in self._san(x509.DNSName)]

    @property
    def san_uri(self) -> list[str]:
        """The subjectAltName uniformResourceIdentifier values."""
        return [str(value) for value in self._san(x509.UniformResourceIdentifier)]

    @property
    def san_ip(self) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
        """The subjectAltName iPAddress values (networks, as in name constraints, left out)."""
        return [
            value
            for value in self._san(x509.IPAddress)
            if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address)
        ]

    @property
    def san_email(self) -> list[str]:
        """The subjectAltName rfc822Name values."""
        return [str(value) for value in self._san(x509.RFC822Name)]

    def public_key_der(self) -> bytes | None:
        """The certificate's public key as DER SubjectPublicKeyInfo, None if unreadable."""
        try:
            return _spki(self.certificate.public_key())
        except (ValueError, TypeError, NotImplementedError):
            return None

    def has_public_key(self, keys: Iterable[Any]) -> bool:
        """Whether one of ``keys`` (cryptography public keys) is the certificate's public key."""
        mine = self.public_key_der()
        if mine is None:
            return False
        for key in keys:
            try:
                theirs = _spki(key)
            except (AttributeError, ValueError, TypeError, NotImplementedError):
                continue
            if theirs == mine:
                return True
        return False


def _spki(key: Any) -> bytes:
    return bytes(
        key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def trusted_proxy(remote_addr: Any) -> bool:
    """Whether ``remote_addr`` lies in one of ``CIBA["MTLS"]["TRUSTED_PROXIES"]`` (invalid
    entries are skipped here; check E210 names them)."""
    if not isinstance(remote_addr, str) or not remote_addr:
        return False
    try:
        address = ipaddress.ip_address(remote_addr.strip())
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    for network in trusted_networks():
        if address.version == network.version and address in network:
            return True
    return False


def trusted_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """The valid networks of ``CIBA["MTLS"]["TRUSTED_PROXIES"]``."""
    networks = []
    proxies = ciba_settings.MTLS_TRUSTED_PROXIES
    for entry in proxies if isinstance(proxies, list | tuple) else ():
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except (ValueError, TypeError):
            continue
    return networks


def decode_certificate(value: Any) -> bytes | None:
    """The DER of a certificate header value in one of the three accepted forms, or None."""
    if not isinstance(value, str) or len(value) > MAX_HEADER_CHARS or not value.isascii():
        return None
    value = value.strip()
    if len(value) > 2 and value.startswith(":") and value.endswith(":"):
        encoded = value[1:-1]  # RFC 9440 §2.2 / RFC 8941 §3.3.5: standard base64 with padding
    else:
        if "%" in value:
            value = unquote(value)
        match = _PEM.fullmatch(value.strip())
        if match is None:
            return None
        encoded = _SPACE.sub("", match.group(1))
    try:
        der = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return None
    try:
        x509.load_der_x509_certificate(der)
    except ValueError:
        return None
    return der


def presented_certificate(meta: Mapping[str, Any]) -> ClientCertificate | None:
    """The client certificate of a request, as the trusted proxy passed it on; None when there is
    none, it is malformed, or the request did not come from a ``TRUSTED_PROXIES`` address.

    ``meta`` is Django's ``request.META`` or the copy of it in oauthlib's ``request.headers``.
    """
    try:
        if not trusted_proxy(meta.get("REMOTE_ADDR")):
            return None
        header = ciba_settings.MTLS_CERTIFICATE_HEADER
        if not isinstance(header, str) or not header:
            return None
        der = decode_certificate(meta.get(meta_key(header)))
        if der is None:
            return None
        verified_header = ciba_settings.MTLS_VERIFIED_HEADER
        verified = bool(verified_header) and isinstance(verified_header, str)
        if verified:
            verified = meta.get(meta_key(verified_header)) == VERIFIED_VALUE
        return ClientCertificate(der=der, verified=verified)
    except (AttributeError, TypeError, ValueError):  # e.g. a meta that is not a mapping of strings
        return None
