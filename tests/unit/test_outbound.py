"""django_ciba.core.outbound: address classification, URL validation, and real HTTPS calls on loopback."""

import datetime
import ipaddress
import socket
import ssl
import threading
import time
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from django.test import override_settings

import django_ciba
from django_ciba.core import destinations, outbound
from django_ciba.core.outbound import (
    OutboundError,
    OutboundResponse,
    TransportError,
    UnsafeDestination,
    is_allowed_address,
    post_json,
    validate_endpoint_url,
)
from django_ciba.exceptions import CibaConfigurationError


LOOPBACK = {"OUTBOUND_ALLOWED_NETWORKS": ["127.0.0.0/8"]}
SECRET = "s3cr3t-query-value"

REFUSED = [
    "10.1.2.3",
    "172.16.0.1",
    "172.31.255.255",
    "192.168.1.1",
    "127.0.0.1",
    "127.1.2.3",
    "::1",
    "fe80::1",
    "169.254.169.254",
    "0.0.0.0",
    "::",
    "224.0.0.1",
    "239.255.255.250",
    "ff02::1",
    "ff0e::1",
    "100.64.0.1",
    "240.0.0.1",
    "255.255.255.255",
    "192.0.2.10",
    "198.18.0.1",
    "203.0.113.5",
    "2001:db8::1",
    "fc00::1",
    "fd12:3456::1",
    "fec0::1",
    "::ffff:127.0.0.1",
    "::ffff:10.0.0.1",
    "::ffff:169.254.169.254",
    "64:ff9b::a00:1",
    "64:ff9b::7f00:1",
    "64:ff9b:1::a00:1",
    "2002:0a00:0001::",
    "2002:7f00:0001::1",
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",
    "::a00:1",
]
ALLOWED = [
    "8.8.8.8",
    "1.1.1.1",
    "2606:4700:4700::1111",
    "::ffff:8.8.8.8",
    "64:ff9b::808:808",
    "2002:0808:0808::1",
]


@pytest.mark.parametrize("address", REFUSED)
def test_non_public_addresses_are_refused(address):
    assert is_allowed_address(ipaddress.ip_address(address)) is False


@pytest.mark.parametrize("address", ALLOWED)
def test_public_addresses_are_allowed(address):
    assert is_allowed_address(ipaddress.ip_address(address)) is True


@pytest.mark.parametrize(
    ("networks", "address", "expected"),
    [
        (["127.0.0.0/8"], "127.0.0.1", True),
        (["127.0.0.0/8"], "::ffff:127.0.0.1", True),
        (["127.0.0.0/8"], "10.0.0.1", False),
        (["127.0.0.0/8"], "::1", False),
        (["10.0.0.0/8", "::1/128"], "10.20.30.40", True),
        (["10.0.0.0/8", "::1/128"], "::1", True),
        (["10.0.0.0/8"], "64:ff9b::a00:1", True),
        (["64:ff9b::/96"], "64:ff9b::a00:1", True),
        (["192.168.0.0/24"], "192.168.1.1", False),
    ],
)
def test_allowed_networks_override(networks, address, expected):
    with override_settings(CIBA={"OUTBOUND_ALLOWED_NETWORKS": networks}):
        assert is_allowed_address(ipaddress.ip_address(address)) is expected
    assert is_allowed_address(ipaddress.ip_address(address)) is False  # read at call time


@pytest.mark.parametrize(
    "networks", [["not-a-network"], ["10.0.0.1/8"], ["10.0.0.0/33"], "127.0.0.0/8", [None]]
)
def test_invalid_allowed_networks_are_a_configuration_error(networks):
    with override_settings(CIBA={"OUTBOUND_ALLOWED_NETWORKS": networks}):
        with pytest.raises(CibaConfigurationError):
            is_allowed_address(ipaddress.ip_address("8.8.8.8"))


def test_error_classes():
    assert issubclass(UnsafeDestination, OutboundError) and issubclass(TransportError, OutboundError)
    assert UnsafeDestination.transient is False and TransportError.transient is True
    assert TransportError("x").transient is True


@pytest.mark.parametrize(
    "url",
    [
        "https://rp.example.com/cb",
        "https://rp.example.com:8443/cb?x=1",
        "HTTPS://RP.Example.COM/",
        "https://rp.example.com",
        "https://8.8.8.8/cb",
        "https://[2606:4700:4700::1111]:443/cb",
        "https://rp.example.com./cb",
        "https://under_score.example.com/cb",
    ],
)
def test_valid_endpoint_urls(url):
    validate_endpoint_url(url)


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://rp.example.com/cb", "https"),
        ("ftp://rp.example.com/cb", "https"),
        ("//rp.example.com/cb", "https"),
        ("/cb", "https"),
        ("https:///cb", "host"),
        ("https://user:pw@rp.example.com/cb", "user information"),
        ("https://user@rp.example.com/cb", "user information"),
        ("https://rp.example.com/cb#frag", "fragment"),
        ("https://rp.example.com/cb#", "fragment"),
        ("https://localhost/cb", "not a public address"),
        ("https://LOCALHOST./cb", "not a public address"),
        ("https://app.localhost/cb", "not a public address"),
        ("https://localhost.localdomain/cb", "not a public address"),
        ("https://[::1]/cb", "not a public address"),
        ("https://127.0.0.1/cb", "not a public address"),
        ("https://169.254.169.254/latest/meta-data", "not a public address"),
        ("https://[::ffff:10.0.0.1]/cb", "not a public address"),
        ("https://[fe80::1%25eth0]/cb", "IPv6"),
        ("https://[127.0.0.1]/cb", "malformed"),
        ("https://[::1/cb", "malformed"),
        ("https://127.1/cb", "host name"),
        ("https://2130706433/cb", "host name"),
        ("https://0x7f.0.0.1/cb", "host name"),
        ("https://017700000001/cb", "host name"),
        ("https://rp.example.com:0/cb", "port"),
        ("https://rp.example.com:65536/cb", "port"),
        ("https://rp.example.com:99999999/cb", "port"),
        ("https://rp.example.com:/cb", "port"),
        ("https://rp.example.com:x/cb", "host"),
        ("https://rp..example.com/cb", "host name"),
        ("https://rp.exa mple.com/cb", "whitespace"),
        ("https://rp.example.com/c b", "whitespace"),
        ("https://rp.example.com/cb\r\nX-Injected: 1", "control"),
        ("https://rp.example.com/cb\x00", "control"),
        ("https://rp.example.com/cb\t", "control"),
        ("https://bücher.example/cb", "non-ASCII"),
        ("https://rp.example.com\\@evil.example/cb", "user information"),
        ("https://rp.example.com/" + "a" * 2000, "longer than 2000"),
        ("", "non-empty"),
    ],
)
def test_refused_endpoint_urls(url, words):
    with pytest.raises(UnsafeDestination) as info:
        validate_endpoint_url(url)
    assert words in str(info.value)
    assert info.value.transient is False


def test_localhost_names_follow_the_loopback_network():
    with override_settings(CIBA=LOOPBACK):
        validate_endpoint_url("https://localhost:8443/cb")
        validate_endpoint_url("https://app.localhost/cb")
        validate_endpoint_url("https://127.0.0.1/cb")
        with pytest.raises(UnsafeDestination):
            validate_endpoint_url("https://[::1]/cb")


@pytest.mark.parametrize(
    "url",
    [
        f"http://rp.example.com/cb?token={SECRET}",
        f"https://user:{SECRET}@rp.example.com/cb",
        f"https://10.0.0.1/cb?token={SECRET}",
        f"https://rp.example.com:70000/cb?token={SECRET}",
        f"https://rp.example.com/cb?token={SECRET}#x",
        f"https://localhost/{SECRET}",
    ],
)
def test_refusal_messages_hold_no_query_or_secret(url):
    with pytest.raises(UnsafeDestination) as info:
        validate_endpoint_url(url)
    assert SECRET not in str(info.value)
    assert "/cb" not in str(info.value)


# --- Retry-After ---------------------------------------------------------------------------------

NOW = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("0", 0.0),
        ("-5", 0.0),
        (format_datetime(NOW + datetime.timedelta(seconds=90), usegmt=True), 90.0),
        (format_datetime(NOW - datetime.timedelta(hours=1), usegmt=True), 0.0),
        ("Fri, 02 Jan 2026 03:05:05 GMT", 60.0),
        ("soon", None),
        ("", None),
        ("1e309", None),
        ("99999999999999999999999999999999", None),
    ],
)
def test_retry_after(value, expected):
    assert OutboundResponse(429, {"Retry-After": value}).retry_after(now=NOW) == expected


def test_retry_after_absent_and_default_now():
    assert OutboundResponse(503, {}).retry_after() is None
    future = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=100)
    assert (
        95 < OutboundResponse(503, {"retry-after": format_datetime(future, usegmt=True)}).retry_after() <= 100
    )
    assert OutboundResponse(200, {"X-A": "1"}).headers == {"x-a": "1"}


# --- Real HTTPS calls on loopback ----------------------------------------------------------------


def _certificate(names):
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"django-ciba test {names[-1]}")])
    now = datetime.datetime.now(datetime.UTC)
    san = [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ("127.0.0.1", "::1")]
    san += [x509.DNSName(name) for name in names]
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, True, False, False, False), critical=True
        )
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.requests.append((self.path, self.headers, body))
        route = self.path.split("?")[0]
        if route == "/slow":
            time.sleep(0.8)
        if route in ("/endless", "/drip"):  # stops after 2 s, so a missing cap fails instead of hanging
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            chunk, pause = (b"x" * 65536, 0) if route == "/endless" else (b"x" * 100, 0.02)
            stop = time.monotonic() + 2
            try:
                while time.monotonic() < stop:
                    self.wfile.write(chunk)
                    self.wfile.flush()
                    time.sleep(pause)
            except OSError:
                pass
            return
        status, headers, payload = {
            "/ok": (200, {"Content-Type": "application/json"}, b'{"ok": true}'),
            "/fail": (500, {}, b"boom"),
            "/busy": (429, {"Retry-After": "30"}, b""),
            "/redirect": (302, {"Location": "/target"}, b""),
            "/big": (200, {}, b"y" * (300 * 1024)),
        }.get(route, (204, {}, b""))
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        if status != 204:
            self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        try:
            self.wfile.write(payload)
        except OSError:
            pass

    do_GET = do_POST  # the same routes answer GET (get_document)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # handshake failures and resets are expected in these tests


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tls")
    cert, key = _certificate(["localhost", "callback.example"])
    other, _ = _certificate(["other.example"])
    (folder / "cert.pem").write_bytes(cert)
    (folder / "key.pem").write_bytes(key)
    (folder / "other.pem").write_bytes(other)
    return folder


class _Server6(_Server):
    address_family = socket.AF_INET6


def _start(server_class, host, tls_files):
    server = server_class((host, 0), _Handler)
    server.requests = []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls_files / "cert.pem", tls_files / "key.pem")
    server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server


@pytest.fixture(scope="module")
def https_server(tls_files):
    server = _start(_Server, "127.0.0.1", tls_files)
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def server(https_server, tls_files, monkeypatch):
    """The loopback server, trusted (REQUESTS_CA_BUNDLE) and reachable (127.0.0.0/8 allowed)."""
    https_server.requests.clear()
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tls_files / "cert.pem"))
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    with override_settings(CIBA=LOOPBACK):
        yield https_server


def _url(server, path):
    return f"https://127.0.0.1:{server.server_address[1]}{path}"


def _fake_dns(monkeypatch, names):
    """Answer getaddrinfo for ``names`` (name -> addresses); count the lookups of those names."""
    real = socket.getaddrinfo
    lookups = []

    def getaddrinfo(host, port, *args, **kwargs):
        if host in names:
            lookups.append(host)
            return [
                (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
                for a in names[host]
            ]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(destinations.socket, "getaddrinfo", getaddrinfo)
    return lookups


def test_post_arrives_with_body_and_headers(server):
    body = b'{"auth_req_id": "abc"}'
    response = post_json(
        _url(server, "/cb?x=1"),
        body,
        headers={"Authorization": "Bearer tok", "Host": "evil.example", "Content-Length": "1"},
    )
    assert response.status == 204
    [(path, headers, received)] = server.requests
    assert path == "/cb?x=1" and received == body
    assert headers["Content-Type"] == "application/json"
    assert headers["Accept"] == "application/json"
    assert headers["Authorization"] == "Bearer tok"
    assert headers["User-Agent"] == f"django-ciba/{django_ciba.__version__}"
    assert headers["Host"] == f"127.0.0.1:{server.server_address[1]}"
    assert headers["Content-Length"] == str(len(body))
    assert headers.get_all("Host") == [headers["Host"]] and "Transfer-Encoding" not in headers


def test_caller_headers_win(server):
    post_json(
        _url(server, "/cb"), b"{}", headers={"user-agent": "custom/1", "content-type": "application/jwt"}
    )
    [(_, headers, _)] = server.requests
    assert headers.get_all("User-Agent") == ["custom/1"]
    assert headers.get_all("Content-Type") == ["application/jwt"]


def test_invalid_caller_header_is_refused_before_sending(server):
    with pytest.raises(ValueError):
        post_json(_url(server, "/cb"), b"{}", headers={"X-A": "1\r\nX-Injected: 2"})
    with pytest.raises(TypeError):
        post_json(_url(server, "/cb"), "{}")
    assert server.requests == []


@pytest.mark.parametrize(
    ("path", "status", "retry_after"),
    [("/cb", 204, None), ("/ok", 200, None), ("/fail", 500, None), ("/busy", 429, 30.0)],
)
def test_statuses_are_returned(server, path, status, retry_after):
    response = post_json(_url(server, path), b"{}")
    assert response.status == status
    assert response.retry_after() == retry_after
    assert len(server.requests) == 1


def test_redirect_is_not_followed(server):
    response = post_json(_url(server, "/redirect"), b"{}")
    assert response.status == 302
    assert response.headers["location"] == "/target"
    time.sleep(0.05)
    assert [path for path, _, _ in server.requests] == ["/redirect"]


@pytest.mark.parametrize("path", ["/big", "/endless"])
def test_large_response_body_is_capped(server, path):
    """At most 64 KiB are read: an endless body (2 s of data at full speed) does not hold the call."""
    started = time.monotonic()
    assert post_json(_url(server, path), b"{}").status == 200
    assert time.monotonic() - started < 0.75


def test_trickling_response_body_stops_at_the_read_timeout(server):
    started = time.monotonic()
    with override_settings(CIBA={**LOOPBACK, "OUTBOUND_READ_TIMEOUT": 0.3}):
        assert post_json(_url(server, "/drip"), b"{}").status == 200
    assert time.monotonic() - started < 0.75


def test_read_timeout_is_a_transport_error(server):
    started = time.monotonic()
    with override_settings(CIBA={**LOOPBACK, "OUTBOUND_READ_TIMEOUT": 0.3}):
        with pytest.raises(TransportError) as info:
            post_json(_url(server, f"/slow?token={SECRET}"), b"{}")
    assert time.monotonic() - started < 0.75
    assert "Timeout" in str(info.value) and SECRET not in str(info.value)


def test_get_document_timeout_shortens_the_read_timeout(server):
    # JWKS_FETCH_TIMEOUT: a slow jwks_uri holds the worker for the short timeout only.
    started = time.monotonic()
    with pytest.raises(TransportError, match="Timeout"):
        outbound.get_document(_url(server, "/slow"), max_bytes=1024, timeout=0.3)
    assert time.monotonic() - started < 0.75


def test_slow_jwks_uri_fails_fast_and_is_not_fetched_again_while_backing_off(server, ciba_settings):
    from django_ciba.clients.keys import ClientJwtError, fetch_jwks

    ciba_settings.set(**LOOPBACK, JWKS_FETCH_TIMEOUT=0.3, JWKS_FAILURE_BACKOFF=60)
    started = time.monotonic()
    for _ in range(5):
        with pytest.raises(ClientJwtError):
            fetch_jwks(_url(server, "/slow"))
    assert time.monotonic() - started < 1.5
    assert [path for path, _headers, _body in server.requests] == ["/slow"]


def test_connection_refused_is_a_transport_error(server):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(TransportError) as info:
        post_json(f"https://127.0.0.1:{port}/cb?token={SECRET}", b"{}", headers={"Authorization": SECRET})
    message = str(info.value)
    assert info.value.transient is True
    assert f"https://127.0.0.1:{port}" in message and "ConnectionRefusedError" in message
    assert SECRET not in message and "/cb" not in message
    assert info.value.__context__ is None and info.value.__cause__ is None  # urllib3 errors hold the URL


def test_untrusted_certificate_is_a_transport_error(server, monkeypatch, tls_files):
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    with pytest.raises(TransportError, match="SSL"):
        post_json(_url(server, "/cb"), b"{}")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tls_files / "other.pem"))
    with pytest.raises(TransportError, match="SSL"):
        post_json(_url(server, "/cb"), b"{}")
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    monkeypatch.setenv("CURL_CA_BUNDLE", str(tls_files / "cert.pem"))
    assert post_json(_url(server, "/cb"), b"{}").status == 204
    assert len(server.requests) == 1


def test_host_name_is_pinned_and_verified(server, monkeypatch):
    port = server.server_address[1]
    lookups = _fake_dns(monkeypatch, {"callback.example": ["127.0.0.1"], "wrong.example": ["127.0.0.1"]})
    assert post_json(f"https://callback.example:{port}/cb", b"{}").status == 204
    assert lookups == ["callback.example"]  # one lookup, then the address is used directly
    [(_, headers, _)] = server.requests
    assert headers["Host"] == f"callback.example:{port}"
    with pytest.raises(TransportError, match="SSL"):  # certificate is not valid for that name
        post_json(f"https://wrong.example:{port}/cb", b"{}")
    assert len(server.requests) == 1


def test_loopback_is_refused_unless_allowed(server):
    with override_settings(CIBA={}):
        with pytest.raises(UnsafeDestination):
            post_json(_url(server, "/cb"), b"{}")
        with pytest.raises(UnsafeDestination):
            post_json(f"https://localhost:{server.server_address[1]}/cb", b"{}")
    time.sleep(0.05)
    assert server.requests == []


@pytest.mark.parametrize(
    "addresses",
    [["10.0.0.5"], ["127.0.0.1"], ["93.184.215.14", "169.254.169.254"], ["2606:4700::1", "::1"]],
)
def test_dns_answers_to_non_public_addresses_are_refused(server, monkeypatch, addresses):
    lookups = _fake_dns(monkeypatch, {"rp.example.com": addresses})
    with override_settings(CIBA={}):
        with pytest.raises(UnsafeDestination, match="non-public"):
            post_json("https://rp.example.com/cb", b"{}")
    assert lookups == ["rp.example.com"]
    assert server.requests == []


def test_ipv6_literal(server, tls_files):
    try:
        server6 = _start(_Server6, "::1", tls_files)
    except OSError:
        pytest.skip("no IPv6 loopback")
    try:
        url = f"https://[::1]:{server6.server_address[1]}/cb"
        with pytest.raises(UnsafeDestination):
            post_json(url, b"{}")
        with override_settings(CIBA={"OUTBOUND_ALLOWED_NETWORKS": ["::1/128"]}):
            assert post_json(url, b"{}").status == 204
        [(_, headers, _)] = server6.requests
        assert headers["Host"] == f"[::1]:{server6.server_address[1]}"
    finally:
        server6.shutdown()
        server6.server_close()


def test_dns_failure_is_a_transport_error(monkeypatch):
    def fail(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(destinations.socket, "getaddrinfo", fail)
    with pytest.raises(TransportError, match="DNS resolution of https://rp.example.com failed"):
        post_json(f"https://rp.example.com/cb?token={SECRET}", b"{}")


def test_environment_proxies_are_ignored(server, monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("https_proxy", "http://127.0.0.1:9")
    assert post_json(_url(server, "/cb"), b"{}").status == 204


def test_get_document_returns_the_body(server):
    assert outbound.get_document(_url(server, "/ok"), max_bytes=1024) == b'{"ok": true}'
    path, headers, body = server.requests[0]
    assert path == "/ok" and body == b""
    assert headers["Accept"] == "application/json" and "Content-Type" not in headers


@pytest.mark.parametrize("path", ["/big", "/endless"])
def test_get_document_refuses_a_body_over_the_cap(server, path):
    started = time.monotonic()
    with pytest.raises(outbound.OutboundError, match="larger than 4096 bytes"):
        outbound.get_document(_url(server, path), max_bytes=4096)
    assert time.monotonic() - started < 0.75


@pytest.mark.parametrize(("path", "status"), [("/redirect", 302), ("/fail", 500), ("/cb", 204)])
def test_get_document_needs_a_200_and_never_follows_redirects(server, path, status):
    with pytest.raises(outbound.OutboundError, match=f"HTTP {status}"):
        outbound.get_document(_url(server, path), max_bytes=4096)
    time.sleep(0.05)
    assert [requested for requested, _, _ in server.requests] == [path]


def test_get_document_follows_the_address_rules():
    with pytest.raises(outbound.UnsafeDestination):
        outbound.get_document("https://127.0.0.1:9/jwks.json", max_bytes=10)
    with pytest.raises(outbound.UnsafeDestination):
        outbound.get_document("http://rp.example.com/jwks.json", max_bytes=10)
