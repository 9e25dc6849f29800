"""The client certificate a trusted TLS-terminating proxy passes on (RFC 8705, RFC 9440):
``django_ciba.core.certificates``."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.x509.oid import NameOID

from django_ciba.core.certificates import (
    MAX_HEADER_CHARS,
    ClientCertificate,
    decode_certificate,
    parse_dn,
    presented_certificate,
)
from tests.unit.tls_certificates import (
    PROXY,
    escaped_pem,
    make_certificate,
    make_key,
    mtls_settings,
    pem,
    proxy_meta,
    rfc9440,
)


DER, KEY = make_certificate(
    subject=[
        (NameOID.COUNTRY_NAME, "SE"),
        (NameOID.ORGANIZATION_NAME, "Example AB"),
        (NameOID.COMMON_NAME, "rp"),
    ],
    dns=("rp.example.com",),
    uris=("https://rp.example.com/id",),
    ips=("192.0.2.7", "2001:db8::7"),
    emails=("ops@rp.example.com",),
)


@pytest.mark.parametrize(
    "encode",
    [
        rfc9440,
        escaped_pem,
        pem,
        lambda der: pem(der).replace("\n", " "),
        lambda der: pem(der).replace("\n", "\t"),
    ],
    ids=["rfc9440-byte-sequence", "nginx-escaped-pem", "pem", "pem-folded-spaces", "pem-folded-tabs"],
)
def test_rfc9440_and_nginx_header_forms_decode_to_the_der(encode):
    """RFC 9440 §2.2 (``:base64:``), nginx's ``$ssl_client_escaped_cert`` and a plain PEM."""
    assert decode_certificate(encode(DER)) == DER


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        ":",
        "::",
        ":not base64!:",
        ":" + base64.b64encode(b"not a certificate").decode() + ":",
        "-----BEGIN CERTIFICATE-----%%%-----END CERTIFICATE-----",
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----",
        "garbage",
        "%ZZ%",
        ":" + base64.b64encode(DER).decode() + ":" + "x",
        "é" + rfc9440(DER),
        12,
    ],
)
def test_malformed_certificate_headers_are_no_certificate(value):
    """Anything malformed is None, never an exception (no 500)."""
    assert decode_certificate(value) is None


def test_huge_headers_are_refused_before_any_decoding():
    """The work on a header is bounded: over MAX_HEADER_CHARS it is not even decoded."""
    padded = rfc9440(DER)[:-1] + "=" * MAX_HEADER_CHARS + ":"
    assert decode_certificate(padded) is None


def test_x5t_s256_is_the_base64url_sha256_of_the_der():
    """RFC 8705 §3.1: x5t#S256, base64url without padding."""
    expected = base64.urlsafe_b64encode(hashlib.sha256(DER).digest()).rstrip(b"=").decode()
    assert ClientCertificate(DER, verified=False).x5t_s256 == expected
    assert "=" not in expected


@mtls_settings()
def test_a_certificate_from_a_trusted_proxy_is_presented_and_verified():
    certificate = presented_certificate(proxy_meta(DER))
    assert certificate == ClientCertificate(der=DER, verified=True)


@mtls_settings()
def test_the_oauthlib_copy_of_meta_works_too():
    """DOT's extract_headers copies META into oauthlib's (case-insensitive) request.headers."""
    from oauthlib.common import CaseInsensitiveDict

    headers = CaseInsensitiveDict(proxy_meta(DER, value=rfc9440(DER)))
    assert presented_certificate(headers).der == DER


@mtls_settings()
@pytest.mark.parametrize("remote", ["10.0.1.5", "203.0.113.9", "", "not an address", None, "::1"])
def test_a_certificate_header_from_anyone_but_a_trusted_proxy_is_ignored(remote):
    """RFC 8705 §2 behind a proxy: only TRUSTED_PROXIES may state the client certificate."""
    meta = proxy_meta(DER)
    meta["REMOTE_ADDR"] = remote
    assert presented_certificate(meta) is None


@mtls_settings(TRUSTED_PROXIES=["10.0.0.0/24"])
def test_an_ipv4_mapped_proxy_address_is_trusted():
    assert presented_certificate(proxy_meta(DER, remote="::ffff:" + PROXY)) is not None


@mtls_settings(TRUSTED_PROXIES=[])
def test_no_trusted_proxy_means_no_certificate():
    assert presented_certificate(proxy_meta(DER)) is None


@mtls_settings(TRUSTED_PROXIES=["not a network", "10.0.0.0/24"])
def test_an_invalid_trusted_proxy_entry_is_skipped_not_fatal():
    assert presented_certificate(proxy_meta(DER)) is not None


@mtls_settings()
@pytest.mark.parametrize("value", [None, "FAILED:self signed certificate", "NONE", "success"])
def test_verified_only_when_the_verified_header_says_success(value):
    """nginx's $ssl_client_verify: SUCCESS, FAILED:reason or NONE."""
    meta = proxy_meta(DER, verified=False)
    if value is not None:
        meta["HTTP_X_SSL_CLIENT_VERIFY"] = value
    certificate = presented_certificate(meta)
    assert certificate is not None and certificate.verified is False


@mtls_settings(VERIFIED_HEADER=None)
def test_without_a_verified_header_no_certificate_is_verified():
    certificate = presented_certificate(proxy_meta(DER))
    assert certificate is not None and certificate.verified is False


@mtls_settings(CERTIFICATE_HEADER="X-Client-Cert")
def test_the_certificate_header_name_is_a_setting():
    assert presented_certificate(proxy_meta(DER)) is None
    meta = {"REMOTE_ADDR": PROXY, "HTTP_X_CLIENT_CERT": rfc9440(DER)}
    assert presented_certificate(meta).der == DER


@mtls_settings()
def test_a_malformed_header_from_the_proxy_is_no_certificate():
    assert presented_certificate(proxy_meta(None, value=":bad:")) is None
    assert presented_certificate({"REMOTE_ADDR": PROXY}) is None
    assert presented_certificate(object()) is None  # type: ignore[arg-type]


def test_subject_alternative_names_are_read():
    certificate = ClientCertificate(DER, verified=True)
    assert certificate.san_dns == ["rp.example.com"]
    assert certificate.san_uri == ["https://rp.example.com/id"]
    assert [str(ip) for ip in certificate.san_ip] == ["192.0.2.7", "2001:db8::7"]
    assert certificate.san_email == ["ops@rp.example.com"]
    assert certificate.subject_dn == "CN=rp,O=Example AB,C=SE"


def test_a_certificate_without_san_has_none():
    der, _ = make_certificate()
    certificate = ClientCertificate(der, verified=True)
    assert certificate.san_dns == certificate.san_uri == certificate.san_ip == certificate.san_email == []


@pytest.mark.parametrize(
    "registered, matches",
    [
        ("CN=rp,O=Example AB,C=SE", True),
        ("cn=RP,o=example  ab,c=se", True),  # RFC 4518: case and insignificant spaces ignored
        ("CN=rp,O=Example AB", False),
        ("C=SE,O=Example AB,CN=rp", False),  # RFC 4514 order is the reverse of the ASN.1 order
        ("CN=rp,O=Example AC,C=SE", False),
        ("CN=rp+UID=x,O=Example AB,C=SE", False),
        ("not a dn", False),
        ("", False),
    ],
)
def test_subject_dn_compared_by_rfc4514_meaning_not_as_a_string(registered, matches):
    """RFC 8705 §2.1.2: the expected subject DN as an RFC 4514 string, compared as a DN."""
    assert ClientCertificate(DER, verified=True).subject_matches(registered) is matches


def test_parse_dn_refuses_what_is_no_rfc4514_dn():
    for value in ("", "   ", "FOO=bar", "CN=a,,O=b"):
        with pytest.raises(ValueError):
            parse_dn(value)
    assert parse_dn("emailAddress=a@b.example,CN=x").rdns


def test_public_key_matching_for_self_signed_certificates():
    """RFC 8705 §2.2: the certificate's public key against registered keys."""
    certificate = ClientCertificate(DER, verified=False)
    assert certificate.has_public_key([make_key().public_key(), KEY.public_key()])
    assert not certificate.has_public_key([make_key().public_key(), "not a key"])
