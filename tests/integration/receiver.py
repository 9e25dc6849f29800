"""A real HTTPS endpoint on loopback for the client notification callbacks (ping and push modes).

::

    with CallbackReceiver() as receiver:
        receiver.script("/cb", [Reply(503), Reply(204)])   # first a 503, then 204 for ever
        env["REQUESTS_CA_BUNDLE"] = receiver.ca_file        # how the served OP trusts it
        ... register receiver.url("/cb") as the client's notification endpoint ...
        first, second = receiver.wait_for(2, path="/cb", timeout=30)
        assert second.json()["auth_req_id"] == ...

The certificate is self-signed (no CA) for IP:127.0.0.1 and DNS:localhost and is generated anew
for every receiver; ``ca_file`` holds it in PEM, to be trusted as a CA bundle. Every request is
recorded when it arrives, before its reply (and its reply's delay). The TLS handshake happens in
the request's own thread, so a client that connects and stalls never blocks the others.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import shutil
import ssl
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from requests.structures import CaseInsensitiveDict


HOST = "127.0.0.1"
SOCKET_TIMEOUT = 10.0  # seconds a connection may stall (handshake, headers, body)
MAX_BODY = 10 * 1024 * 1024


@dataclass(frozen=True)
class Reply:
    """What the receiver answers: ``status``, ``headers``, ``body``, after ``delay`` seconds.

    ``drop=True`` closes the connection without any answer (after the delay). A non-empty body
    without a Content-Type header is sent as ``application/json``.
    """

    status: int = 204
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    delay: float = 0.0
    drop: bool = False


DEFAULT_REPLY = Reply()


@dataclass(frozen=True)
class Request:
    """One request as received: ``headers`` is case-insensitive; ``time`` is ``time.time()``."""

    method: str
    path: str  # without the query string
    query: str
    headers: CaseInsensitiveDict
    body: bytes
    time: float
    monotonic: float
    reply: Reply

    @property
    def target(self) -> str:
        return f"{self.path}?{self.query}" if self.query else self.path

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))

    def form(self) -> dict[str, str]:
        """An ``application/x-www-form-urlencoded`` body, last value of each name."""
        return {key: values[-1] for key, values in parse_qs(self.body.decode("utf-8")).items()}

    def __repr__(self) -> str:
        body = self.body if len(self.body) <= 300 else self.body[:300] + b"..."
        return f"<Request {self.method} {self.target} {dict(self.headers)!r} {body!r} -> {self.reply.status}>"


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """Write ``cert.pem`` and ``key.pem`` (P-256, valid for a day) for 127.0.0.1 and localhost."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "django-ciba test receiver")])
    now = datetime.datetime.now(datetime.UTC)
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address(HOST)), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    key_file.chmod(0o600)
    return cert_file, key_file


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # close() does not wait for handlers (a delayed reply is cut short)
    allow_reuse_address = True

    def __init__(self, receiver: CallbackReceiver, context: ssl.SSLContext) -> None:
        self.receiver = receiver
        self.context = context
        super().__init__((HOST, 0), _Handler)

    def finish_request(self, request, client_address) -> None:  # in the request's own thread
        request.settimeout(SOCKET_TIMEOUT)
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except (OSError, ssl.SSLError) as exc:
            self.receiver._note_error(f"TLS handshake with {client_address[0]}:{client_address[1]}: {exc}")
            return
        try:
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            try:
                tls.close()
            except OSError:
                pass

    def handle_error(self, request, client_address) -> None:
        import traceback

        self.receiver._note_error(traceback.format_exc(limit=3))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # for Expect: 100-continue; every answer closes the connection
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
        pass

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_HEAD(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline(1024).split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline(8)
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise ValueError(f"body of {length} bytes is too large")
        return self.rfile.read(length) if length > 0 else b""

    def _handle(self) -> None:
        self.close_connection = True
        body = self._read_body()
        split = urlsplit(self.path)
        receiver = self.server.receiver
        reply = receiver._record(self.command, split.path or "/", split.query, self.headers, body)
        if reply.delay > 0 and receiver._closing.wait(reply.delay):
            return  # the receiver is closing: no answer
        if reply.drop:
            return
        self.send_response(reply.status)
        names = {name.lower() for name in reply.headers}
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if "content-length" not in names:
            self.send_header("Content-Length", str(len(reply.body)))
        if "content-type" not in names and reply.body:
            self.send_header("Content-Type", "application/json")
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and reply.body:
            self.wfile.write(reply.body)


class CallbackReceiver:
    """An HTTPS server on 127.0.0.1 (a free port) that records requests and answers as scripted."""

    def __init__(self, directory: str | Path | None = None) -> None:
        self._own_directory = directory is None
        self.directory = Path(tempfile.mkdtemp(prefix="ciba-receiver-") if directory is None else directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        cert_file, key_file = self_signed_certificate(self.directory)
        self.ca_file = str(cert_file)
        self.cert_file, self.key_file = str(cert_file), str(key_file)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(cert_file, key_file)
        self._lock = threading.Condition()
        self._requests: list[Request] = []
        self._scripts: dict[str, list[Reply]] = {}
        self._errors: list[str] = []
        self._closing = threading.Event()
        self._server = _Server(self, context)
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name="callback-receiver"
        )
        self._thread.daemon = True
        self._thread.start()

    # --- addresses and scripts ------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"https://{HOST}:{self.port}"

    def url(self, path: str = "/cb") -> str:
        return f"{self.base_url}/{path.lstrip('/')}"

    def script(self, path: str, replies: Reply | Iterable[Reply]) -> None:
        """Answer the next requests to ``path`` with ``replies`` in order; the last one repeats."""
        replies = [replies] if isinstance(replies, Reply) else list(replies)
        assert replies, "script() needs at least one Reply"
        with self._lock:
            self._scripts[_path_of(path)] = replies

    def _record(self, method: str, path: str, query: str, headers, body: bytes) -> Reply:
        with self._lock:
            replies = self._scripts.get(path)
            if not replies:
                reply = DEFAULT_REPLY
            elif len(replies) == 1:
                reply = replies[0]
            else:
                reply = replies.pop(0)
            request = Request(
                method=method,
                path=path,
                query=query,
                headers=CaseInsensitiveDict(headers.items()),
                body=body,
                time=time.time(),
                monotonic=time.monotonic(),
                reply=reply,
            )
            self._requests.append(request)
            self._lock.notify_all()
        return reply

    def _note_error(self, message: str) -> None:
        with self._lock:
            self._errors.append(message)

    # --- what arrived ---------------------------------------------------------------------
    def requests(self, path: str | None = None) -> list[Request]:
        with self._lock:
            return [r for r in self._requests if path is None or r.path == _path_of(path)]

    @property
    def errors(self) -> list[str]:
        """TLS handshake failures and handler errors (a client that did not trust the cert...)."""
        with self._lock:
            return list(self._errors)

    def wait_for(self, count: int, path: str | None = None, timeout: float = 30.0) -> list[Request]:
        """Block until at least ``count`` requests (to ``path``) arrived; return them all."""
        end = time.monotonic() + timeout
        with self._lock:
            while True:
                seen = [r for r in self._requests if path is None or r.path == _path_of(path)]
                if len(seen) >= count:
                    return seen
                remaining = end - time.monotonic()
                if remaining <= 0:
                    where = f" to {path}" if path is not None else ""
                    raise AssertionError(
                        f"expected {count} request(s){where} within {timeout:g} s, got {len(seen)}: {seen!r}"
                        f"; all requests: {self._requests!r}; errors: {self._errors!r}"
                    )
                self._lock.wait(min(remaining, 0.5))

    def assert_no_more(self, count: int, path: str | None = None, wait: float = 1.0) -> None:
        """Wait ``wait`` seconds, then assert that exactly ``count`` requests (to ``path``) arrived."""
        time.sleep(wait)
        seen = self.requests(path)
        assert len(seen) == count, f"expected exactly {count} request(s), got {len(seen)}: {seen!r}"

    def clear(self) -> None:
        """Forget the recorded requests and errors (the scripts stay)."""
        with self._lock:
            self._requests.clear()
            self._errors.clear()

    # --- lifetime -------------------------------------------------------------------------
    def close(self) -> None:
        if self._closing.is_set():
            return
        self._closing.set()  # wakes delayed replies: they end without answering
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
        if self._own_directory:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> CallbackReceiver:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _path_of(path: str) -> str:
    path = urlsplit(path).path or "/"
    return path if path.startswith("/") else f"/{path}"
