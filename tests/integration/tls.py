"""A test PKI and nginx terminating TLS with client certificates (RFC 8705 behind a proxy).

:class:`TestPki` builds, with ``cryptography`` at test time, a CA, a server certificate for
127.0.0.1 / localhost, client certificates issued by the CA (``tls_client_auth``: subject DN and
SANs) and self-signed ones (``self_signed_tls_client_auth``), all written as PEM to a directory.

:class:`MtlsProxy` is nginx (Debian's, ``scripts/with-nginx``; :class:`services.Nginx` with another
configuration) listening with TLS on ``127.0.0.1:PORT`` in front of ONE app server::

    ssl_client_certificate CA;  ssl_verify_client optional_no_ca;

asks every client for a certificate and never refuses a connection over it: a CA-issued
certificate gives ``$ssl_client_verify = SUCCESS``, a self-signed one ``FAILED:...`` (and is passed
on all the same, for self_signed_tls_client_auth), none gives ``NONE``. The app server gets the
certificate as ``Client-Cert: <URL-encoded PEM>`` ($ssl_client_escaped_cert), the verdict as
``X-Client-Cert-Verify``, ``X-Forwarded-Proto: https`` and the client's ``Host``; nginx overwrites
those headers whatever the client sent (a header named by ``proxy_set_header`` is never passed
through). ``GET /tls-check`` is answered by nginx itself with ``$ssl_client_verify``, so the
harness's own test can see what nginx made of a certificate.

The example project behind it is configured by :func:`mtls_project_env`.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.integration.services import LOOPBACK, NGINX_PREAMBLE, Nginx


VERIFIED_HEADER = "X-Client-Cert-Verify"
LIFETIME = datetime.timedelta(days=1)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class Credential:
    """A certificate and its private key, as objects and as PEM files."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    cert_file: Path
    key_file: Path

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def x5t_s256(self) -> str:
        """RFC 8705 §3.1: base64url SHA-256 of the DER certificate (``cnf["x5t#S256"]``)."""
        return b64url(hashlib.sha256(self.der).digest())

    @property
    def subject_dn(self) -> str:
        """The subject DN as an RFC 4514 string (what ``tls_client_auth_subject_dn`` holds)."""
        return self.cert.subject.rfc4514_string()

    def public_jwk(self, kid: str = "") -> dict[str, Any]:
        """The certificate's public key as a JWK (P-256), with the certificate in ``x5c``."""
        numbers = self.key.public_key().public_numbers()
        jwk: dict[str, Any] = {
            "kty": "EC",
            "crv": "P-256",
            "x": b64url(numbers.x.to_bytes(32, "big")),
            "y": b64url(numbers.y.to_bytes(32, "big")),
            "use": "sig",
            "alg": "ES256",
            "x5c": [base64.b64encode(self.der).decode("ascii")],
        }
        if kid:
            jwk["kid"] = kid
        return jwk


def _name(common_name: str, organization: str = "django-ciba tests") -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "DE"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


class TestPki:
    """A CA, a server certificate and client certificates, as PEM files under ``directory``."""

    __test__ = False  # not a pytest test class

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        now = datetime.datetime.now(datetime.UTC)
        self._not_before = now - datetime.timedelta(minutes=5)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = _name("django-ciba test CA")
        ca_cert = (
            self._builder(ca_name, ca_name, ca_key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(ca=True), critical=True)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False)
            .sign(ca_key, hashes.SHA256())
        )
        self.ca = self._write("ca", ca_cert, ca_key)
        self.server = self.issue(
            "127.0.0.1",
            sans=[x509.IPAddress(ipaddress.ip_address(LOOPBACK)), x509.DNSName("localhost")],
            usage=ExtendedKeyUsageOID.SERVER_AUTH,
        )

    @property
    def ca_file(self) -> Path:
        return self.ca.cert_file

    def _builder(self, subject: x509.Name, issuer: x509.Name, public_key: Any) -> x509.CertificateBuilder:
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(self._not_before)
            .not_valid_after(self._not_before + LIFETIME)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        )

    def _write(self, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> Credential:
        cert_file, key_file = self.directory / f"{stem}.crt", self.directory / f"{stem}.key"
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        key_file.chmod(0o600)
        return Credential(cert, key, cert_file, key_file)

    def issue(
        self,
        common_name: str,
        *,
        sans: list[x509.GeneralName] | None = None,
        usage: x509.ObjectIdentifier = ExtendedKeyUsageOID.CLIENT_AUTH,
        stem: str | None = None,
    ) -> Credential:
        """A certificate issued by the CA (a client's, for tls_client_auth, by default)."""
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            self._builder(_name(common_name), self.ca.cert.subject, key.public_key())
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(ca=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.ca.key.public_key()), critical=False
            )
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(self.ca.key, hashes.SHA256())
        return self._write(stem or _stem(common_name), cert, key)

    def client(self, common_name: str, dns: str | None = None) -> Credential:
        """A CA-issued client certificate (tls_client_auth), with a dNSName SAN when given."""
        return self.issue(common_name, sans=[x509.DNSName(dns)] if dns else None)

    def self_signed(self, common_name: str) -> Credential:
        """A self-signed client certificate (self_signed_tls_client_auth): no CA involved."""
        key = ec.generate_private_key(ec.SECP256R1())
        name = _name(common_name, organization="a client of its own")
        cert = (
            self._builder(name, name, key.public_key())
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(key, hashes.SHA256())
        )
        return self._write(_stem(common_name), cert, key)

    def bundle(self, *extra: str | Path, name: str = "trust.pem") -> Path:
        """The CA certificate and ``extra`` PEM files in one CA bundle (REQUESTS_CA_BUNDLE)."""
        path = self.directory / name
        path.write_bytes(b"".join(Path(p).read_bytes() for p in (self.ca_file, *extra)))
        return path


def _stem(common_name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in common_name.lower())


MTLS_NGINX_CONF = (
    """\
# Throwaway configuration written by tests/integration/tls.py (MtlsProxy): TLS with optional
# client certificates in front of one app server; every path is under {directory}.
"""
    + NGINX_PREAMBLE
    + """\
    log_format mtls '$msec $request_method $uri $status $ssl_client_verify';
    access_log {directory}/access.log mtls;
    server {{
        listen {host}:{port} ssl;
        ssl_certificate {server_cert};
        ssl_certificate_key {server_key};
        ssl_protocols TLSv1.2 TLSv1.3;
        # Ask for a client certificate, never refuse the handshake over it: a certificate of this
        # CA gives $ssl_client_verify SUCCESS, a self-signed one FAILED:... (passed on all the same,
        # for self_signed_tls_client_auth, which the app checks against the client's keys).
        ssl_client_certificate {ca};
        ssl_verify_client optional_no_ca;
        ssl_verify_depth 2;
        location = /tls-check {{
            default_type text/plain;
            return 200 "$ssl_client_verify\\n";
        }}
        location / {{
            proxy_pass http://{host}:{upstream};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto https;
            # Always set here, so a client can never send its own (RFC 8705 behind a proxy).
            proxy_set_header Client-Cert $ssl_client_escaped_cert;
            proxy_set_header {verified_header} $ssl_client_verify;
            proxy_read_timeout 30s;
        }}
    }}
}}
"""
)


class MtlsProxy(Nginx):
    """nginx with TLS and optional client certificates in front of the app server ``upstream``."""

    def __init__(self, binary: str, directory: str | Path, upstream: int, pki: TestPki) -> None:
        super().__init__(binary, directory, [upstream])
        self.pki = pki

    @property
    def url(self) -> str:
        assert self.port is not None, "nginx was not started"
        return f"https://{LOOPBACK}:{self.port}"

    def write_conf(self, port: int) -> None:
        (self.directory / "tmp").mkdir(parents=True, exist_ok=True)
        self.conf.write_text(
            MTLS_NGINX_CONF.format(
                directory=self.directory,
                host=LOOPBACK,
                port=port,
                upstream=self.upstreams[0],
                server_cert=self.pki.server.cert_file,
                server_key=self.pki.server.key_file,
                ca=self.pki.ca_file,
                verified_header=VERIFIED_HEADER,
            )
        )


def mtls_project_env(issuer: str, ciba: dict[str, Any] | None = None) -> dict[str, str]:
    """The example project's environment behind :class:`MtlsProxy`: the https issuer, Django
    trusting the proxy's X-Forwarded-Proto, and CIBA["MTLS"] trusting the proxy on loopback and
    its verdict header (``ciba``: more of CIBA, merged by example_project/settings.py)."""
    settings: dict[str, Any] = {
        "MTLS": {"TRUSTED_PROXIES": [f"{LOOPBACK}/32"], "VERIFIED_HEADER": VERIFIED_HEADER},
    }
    for key, value in (ciba or {}).items():
        if isinstance(value, dict) and isinstance(settings.get(key), dict):
            settings[key] = {**settings[key], **value}
        else:
            settings[key] = value
    return {
        "CIBA_EXAMPLE_ISSUER": issuer,
        "CIBA_EXAMPLE_PROXY_HTTPS": "1",
        "CIBA_EXAMPLE_SETTINGS": json.dumps(settings),
    }
