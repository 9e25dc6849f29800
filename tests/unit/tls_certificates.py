"""X.509 client certificates built in the tests (cryptography), and the headers a TLS-terminating
proxy sends with them (RFC 9440 ``:base64:``, nginx's URL-encoded PEM)."""

from __future__ import annotations

import base64
import ipaddress
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.test import override_settings


PROXY = "10.0.0.5"
VERIFIED_HEADER = "X-SSL-Client-Verify"
MTLS_SETTINGS = {
    "MTLS": {"TRUSTED_PROXIES": ["10.0.0.0/24"], "VERIFIED_HEADER": VERIFIED_HEADER},
    "NOTIFICATION_BACKEND": {"BACKEND": "django_ciba.backends.locmem.LocmemBackend"},
}


def mtls_settings(**mtls: Any) -> Any:
    """``override_settings`` with the proxy 10.0.0.0/24 trusted and ``mtls`` on top of MTLS_SETTINGS."""
    return override_settings(CIBA={**MTLS_SETTINGS, "MTLS": {**MTLS_SETTINGS["MTLS"], **mtls}})


def make_key() -> Any:
    return ec.generate_private_key(ec.SECP256R1())


def make_certificate(
    key: Any = None,
    *,
    subject: list[tuple[Any, str]] | None = None,
    dns: tuple[str, ...] = (),
    uris: tuple[str, ...] = (),
    ips: tuple[str, ...] = (),
    emails: tuple[str, ...] = (),
) -> tuple[bytes, Any]:
    """A self-signed certificate: ``(der, private_key)``."""
    key = key or make_key()
    name = x509.Name(
        [x509.NameAttribute(oid, value) for oid, value in (subject or [(NameOID.COMMON_NAME, "client")])]
    )
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
    )
    names: list[x509.GeneralName] = [x509.DNSName(value) for value in dns]
    names += [x509.UniformResourceIdentifier(value) for value in uris]
    names += [x509.IPAddress(ipaddress.ip_address(value)) for value in ips]
    names += [x509.RFC822Name(value) for value in emails]
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    certificate = builder.sign(key, hashes.SHA256())
    return certificate.public_bytes(serialization.Encoding.DER), key


def rfc9440(der: bytes) -> str:
    """RFC 9440 §2.2: a Structured Field byte sequence."""
    return ":" + base64.b64encode(der).decode("ascii") + ":"


def pem(der: bytes) -> str:
    body = base64.b64encode(der).decode("ascii")
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return "-----BEGIN CERTIFICATE-----\n" + "\n".join(lines) + "\n-----END CERTIFICATE-----\n"


def escaped_pem(der: bytes) -> str:
    """nginx's ``$ssl_client_escaped_cert``: the PEM, URL-encoded."""
    return quote(pem(der), safe="")


def proxy_meta(
    der: bytes | None, *, verified: bool = True, remote: str = PROXY, value: str | None = None
) -> dict:
    """Django test client keyword arguments (``request.META``) as the trusted proxy sends them."""
    meta: dict[str, str] = {"REMOTE_ADDR": remote}
    if der is not None or value is not None:
        meta["HTTP_CLIENT_CERT"] = value if value is not None else escaped_pem(der or b"")
    if verified:
        meta["HTTP_X_SSL_CLIENT_VERIFY"] = "SUCCESS"
    return meta
