"""The one way django-ciba makes outbound HTTP calls (callbacks, webhooks, client JWK sets).

Every call is an HTTPS ``POST`` of a JSON body (:func:`post_json`) or a ``GET`` of a small document
(:func:`get_document`) at a URL that a client or an operator configured, so the destination is
untrusted (SSRF). The rules:

* Only absolute ``https://`` URLs without userinfo or fragment (:func:`validate_endpoint_url`).
* The host name is resolved once; if *any* resolved address is private, loopback, link-local,
  multicast, reserved or otherwise non-public (:func:`is_allowed_address`) the call is refused,
  unless the address is inside ``CIBA["OUTBOUND_ALLOWED_NETWORKS"]``. The connection then goes to
  the resolved address itself (no second lookup, so DNS rebinding cannot swap it), with TLS SNI and
  certificate verification against the URL's host name.
* Redirects are never followed, environment proxies (``HTTPS_PROXY`` ...) are ignored: connections
  are always direct. The CA bundle is ``REQUESTS_CA_BUNDLE``, else ``CURL_CA_BUNDLE``, else certifi.
* Timeouts: ``OUTBOUND_CONNECT_TIMEOUT`` for the TCP+TLS connection, ``OUTBOUND_READ_TIMEOUT`` for each
  wait on the answer. A POST reads at most 64 KiB of the answer (and discards it); a GET keeps at
  most ``max_bytes``. Either reads within one read timeout; the connection is closed after each call.
* Error messages and logs name at most ``scheme://host:port``: never the path, query, headers or body.
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import ipaddress
import logging
import math
import os
import re
import socket
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import lru_cache
from types import MappingProxyType
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import requests.certs
import urllib3

from django_ciba import __version__
from django_ciba.core.conf import ciba_settings
from django_ciba.exceptions import CibaConfigurationError


logger = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
MAX_URL_LENGTH = 2000
MAX_RESPONSE_BYTES = 64 * 1024
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_LOOPBACK_NAME = ipaddress.IPv4Address("127.0.0.1")
_AUTHORITY = re.compile(r"(\[[^\[\]]*\]|[^\[\]:]*)(?::([0-9]*))?")
_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_HOST_NAME = re.compile(rf"(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*\.?")
_NUMERIC_LABEL = re.compile(r"0x[0-9a-f]*|[0-9]+")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_CONTROLLED_HEADERS = frozenset({"host", "content-length", "transfer-encoding"})
_TRANSPORT_ERRORS = (urllib3.exceptions.HTTPError, http.client.HTTPException, OSError)


class OutboundError(Exception):
    """An outbound call was refused or got no HTTP answer; ``transient``: whether a retry may help."""

    transient: bool = False

    def __init__(self, message: str, *, origin: str = "") -> None:
        super().__init__(message)
        self.origin = origin  # scheme://host[:port], safe to log


class UnsafeDestination(OutboundError):
    """The URL is refused: wrong scheme, malformed, or its host is (or resolves to) a non-public address."""

    transient = False


class TransportError(OutboundError):
    """DNS failure, connect/read timeout, TLS failure, connection reset or HTTP protocol error."""

    transient = True


@dataclass(frozen=True)
class OutboundResponse:
    """Status and headers (names lower-cased) of an answer; the body is never kept."""

    status: int
    headers: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        lowered = {str(name).lower(): str(value) for name, value in self.headers.items()}
        object.__setattr__(self, "headers", MappingProxyType(lowered))

    def retry_after(self, now: datetime | None = None) -> float | None:
        """``Retry-After`` in seconds (delta-seconds or HTTP-date; past -> 0; absent/unparsable -> None)."""
        value = self.headers.get("retry-after", "").strip()
        if not value:
            return None
        if re.fullmatch(r"[+-]?[0-9]{1,12}(?:\.[0-9]{1,6})?", value):
            return max(0.0, float(value))
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        now = now or datetime.now(UTC)
        when = when if when.tzinfo else when.replace(tzinfo=UTC)
        now = now if now.tzinfo else now.replace(tzinfo=UTC)
        seconds = (when - now).total_seconds()
        return max(0.0, seconds) if math.isfinite(seconds) else None


@lru_cache(maxsize=8)
def _parse_networks(values: tuple[str, ...]) -> tuple[Network, ...]:
    try:
        return tuple(ipaddress.ip_network(value, strict=True) for value in values)
    except (TypeError, ValueError) as exc:
        raise CibaConfigurationError(f"CIBA['OUTBOUND_ALLOWED_NETWORKS'] holds an invalid network: {exc}")


def _allowed_networks() -> tuple[Network, ...]:
    values = ciba_settings.OUTBOUND_ALLOWED_NETWORKS or ()
    if isinstance(values, str | bytes) or not all(isinstance(value, str) for value in values):
        raise CibaConfigurationError("CIBA['OUTBOUND_ALLOWED_NETWORKS'] must be a list of CIDR strings.")
    return _parse_networks(tuple(values))


def _is_public(address: IPAddress) -> bool:
    """``is_global`` minus what it lets through in some Python versions (multicast, reserved, site-local)."""
    return (
        address.is_global
        and not (address.is_multicast or address.is_reserved or address.is_private)
        and not (address.is_loopback or address.is_link_local or address.is_unspecified)
        and not (isinstance(address, ipaddress.IPv6Address) and address.is_site_local)
    )


def _check(address: IPAddress, networks: tuple[Network, ...]) -> bool:
    if any(address in network for network in networks):
        return True
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:  # ::ffff:a.b.c.d reaches a.b.c.d
            return _check(address.ipv4_mapped, networks)
        if address in _NAT64:  # 64:ff9b::a.b.c.d is translated to a.b.c.d
            return _check(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF), networks)
        embedded = [address.sixtofour] if address.sixtofour else list(address.teredo or ())
        if not all(_check(inner, networks) for inner in embedded):
            return False
    return _is_public(address)


def is_allowed_address(address: IPAddress) -> bool:
    """Whether outbound calls may reach ``address``: a global unicast address, or one inside
    ``CIBA["OUTBOUND_ALLOWED_NETWORKS"]``. IPv6 addresses embedding an IPv4 address (mapped, NAT64,
    6to4, Teredo) are judged by that IPv4 address too."""
    return _check(address, _allowed_networks())


class _Target(NamedTuple):
    host: str  # lower-case host name, or IP literal without brackets
    port: int
    authority: str  # host (bracketed if IPv6) plus ":port" when not 443, for the Host header
    origin: str  # https://authority, safe for messages and logs
    request_target: str  # path and query
    address: IPAddress | None  # set when the host is an IP literal


def _parse(url: str) -> _Target:
    if not isinstance(url, str) or not url:
        raise UnsafeDestination("The outbound URL must be a non-empty string.")
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeDestination(f"The outbound URL is longer than {MAX_URL_LENGTH} characters.")
    if not url.isascii() or any(char <= " " or char == "\x7f" for char in url):
        raise UnsafeDestination(
            "The outbound URL holds whitespace, control or non-ASCII characters "
            "(percent-encode the path, use punycode for the host)."
        )
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unbalanced or invalid bracketed host
        raise UnsafeDestination("The outbound URL is malformed (host).")
    if parts.scheme != "https":
        raise UnsafeDestination(f"The outbound URL must use https, not {parts.scheme or 'no'} scheme.")
    if "@" in parts.netloc:
        raise UnsafeDestination("The outbound URL must not hold user information (user:password@).")
    match = _AUTHORITY.fullmatch(parts.netloc)
    if match is None or not match.group(1):
        raise UnsafeDestination("The outbound URL must be absolute, with a valid host.")
    host, port_text = match.group(1).lower(), match.group(2)
    port = 443 if port_text is None else int(port_text) if 0 < len(port_text) <= 5 else 0
    authority = host if port == 443 else f"{host}:{port}"
    origin = f"https://{authority}"
    if not 1 <= port <= 65535:
        raise UnsafeDestination(
            f"Refused outbound URL https://{host}: the port must be 1-65535.", origin=origin
        )
    if "#" in url:
        raise UnsafeDestination(f"Refused outbound URL {origin}: it must not hold a fragment.", origin=origin)
    address: IPAddress | None = None
    check_as: IPAddress | None = None
    if host.startswith("["):
        host = host[1:-1]
        try:
            address = check_as = ipaddress.IPv6Address(host)
        except ValueError:
            address = None
        if address is None or "%" in host:
            raise UnsafeDestination(f"Refused outbound URL {origin}: invalid IPv6 literal.", origin=origin)
    else:
        try:
            address = check_as = ipaddress.IPv4Address(host)
        except ValueError:
            bare = host.removesuffix(".")
            if not _HOST_NAME.fullmatch(host) or _NUMERIC_LABEL.fullmatch(bare.rsplit(".", 1)[-1]):
                raise UnsafeDestination(f"Refused outbound URL {origin}: invalid host name.", origin=origin)
            if bare in ("localhost", "localhost.localdomain") or bare.endswith(".localhost"):
                check_as = _LOOPBACK_NAME
    if check_as is not None and not is_allowed_address(check_as):
        raise UnsafeDestination(
            f"Refused outbound URL {origin}: the host is not a public address (allow its network in "
            "CIBA['OUTBOUND_ALLOWED_NETWORKS'] if this is intended).",
            origin=origin,
        )
    request_target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return _Target(host, port, authority, origin, request_target, address)


def validate_endpoint_url(url: str) -> None:
    """Check ``url`` at configuration time (no DNS lookup); raise :class:`UnsafeDestination` if refused."""
    _parse(url)


def _resolve(target: _Target) -> list[IPAddress]:
    if target.address is not None:
        return [target.address]
    try:
        infos = socket.getaddrinfo(
            target.host, target.port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
        )
    except (OSError, UnicodeError, ValueError) as exc:
        failure = type(exc).__name__
    else:
        addresses: list[IPAddress] = []
        for info in infos:
            try:
                address = ipaddress.ip_address(str(info[4][0]))
            except ValueError:
                address = None
            if address is None or not is_allowed_address(address):
                raise UnsafeDestination(
                    f"Refused outbound call to {target.origin}: the host resolves to a non-public address.",
                    origin=target.origin,
                )
            if address not in addresses:
                addresses.append(address)
        if addresses:
            return addresses
        failure = "no address"
    raise TransportError(f"DNS resolution of {target.origin} failed ({failure}).", origin=target.origin)


def _ca_options() -> dict[str, Any]:
    """The TLS context for the CA bundle named now (``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE``,
    certifi). Loading a bundle costs milliseconds, so contexts are cached per file and mtime."""
    certifi_where = requests.certs.where  # type: ignore[attr-defined]  # missing from types-requests
    path = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or certifi_where()
    try:
        stamp = os.stat(path).st_mtime_ns
    except OSError:  # let urllib3 report the missing bundle as a TLS failure
        return {"ca_cert_dir": path} if os.path.isdir(path) else {"ca_certs": path}
    return {"ssl_context": _tls_context(path, os.path.isdir(path), stamp)}


@functools.lru_cache(maxsize=8)
def _tls_context(path: str, is_dir: bool, stamp: int) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=None if is_dir else path, capath=path if is_dir else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def _request_headers(target: _Target, extra: Mapping[str, str] | None) -> dict[str, str]:
    headers = {
        "Content-Type": "application/json",
        "Accept": "application/json",
        "User-Agent": f"django-ciba/{__version__}",
    }
    for name, value in (extra or {}).items():
        if not _TOKEN.fullmatch(name) or any(char in str(value) for char in "\r\n\0"):
            raise ValueError(f"Invalid outbound header {name!r} (name or value).")
        if name.lower() in _CONTROLLED_HEADERS:
            continue
        headers = {key: val for key, val in headers.items() if key.lower() != name.lower()}
        headers[name] = str(value)
    headers["Host"] = target.authority
    return headers


def _failure_name(exc: BaseException) -> str:
    """``NewConnectionError (ConnectionRefusedError)``: exception class names only, never messages."""
    names: list[str] = []
    current: BaseException | None = exc
    for _ in range(3):  # bounded: exception chains may be long or even cyclic
        if current is None:
            break
        if type(current).__name__ not in names:
            names.append(type(current).__name__)
        inner = [arg for arg in current.args if isinstance(arg, BaseException)]
        current = current.__cause__ or (inner[0] if inner else None)
    return names[0] + (f" ({', '.join(names[1:])})" if len(names) > 1 else "")


def _merge(raw: Mapping[str, str]) -> dict[str, str]:
    merged: dict[str, str] = {}
    for name, value in raw.items():  # HTTPHeaderDict yields repeated headers one by one
        key = name.lower()
        merged[key] = f"{merged[key]}, {value}" if key in merged else value
    return merged


def _drain(response: urllib3.BaseHTTPResponse, deadline: float) -> None:
    """Read and discard up to 64 KiB of the body, stopping at ``deadline`` (slow senders)."""
    remaining = MAX_RESPONSE_BYTES
    try:
        while remaining > 0 and time.monotonic() < deadline:
            chunk = response.read1(min(remaining, 16384), decode_content=False)
            if not chunk:
                break
            remaining -= len(chunk)
    except _TRANSPORT_ERRORS:
        pass  # the status is what matters; the connection is closed anyway


def post_json(url: str, body: bytes, *, headers: Mapping[str, str] | None = None) -> OutboundResponse:
    """POST ``body`` (JSON bytes) to ``url`` under the rules of this module and return the answer.

    Raises :class:`UnsafeDestination` when the URL or its addresses are refused, and
    :class:`TransportError` when no HTTP answer arrives. Any status (3xx, 4xx, 5xx) is returned.
    """
    if not isinstance(body, bytes):
        raise TypeError("post_json() needs the body as bytes.")
    result, _ = _call("POST", url, body, headers, keep=0)
    return result


def get_document(
    url: str, *, max_bytes: int, accept: str = "application/json", timeout: float | None = None
) -> bytes:
    """GET ``url`` (a client's JWK set, a sector identifier document) under the same rules.

    Returns the body of a 200 answer. Anything else raises :class:`OutboundError`: another status
    (redirects are not followed), or a body longer than ``max_bytes``. ``timeout`` shortens both
    outbound timeouts (never lengthens them).
    """
    result, content = _call("GET", url, None, {"Accept": accept}, keep=max_bytes, timeout=timeout)
    origin = _parse(url).origin
    if result.status != 200:
        raise OutboundError(f"GET {origin} answered HTTP {result.status}.", origin=origin)
    if content is None:
        raise OutboundError(f"GET {origin}: the document is larger than {max_bytes} bytes.", origin=origin)
    return content


def _read_capped(response: urllib3.BaseHTTPResponse, limit: int, deadline: float) -> bytes | None:
    """Up to ``limit`` bytes of the body; None when it is longer or arrives too slowly."""
    chunks: list[bytes] = []
    size = 0
    while True:
        if time.monotonic() >= deadline:
            return None
        chunk = response.read1(16384, decode_content=True)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)


def _call(
    method: str,
    url: str,
    body: bytes | None,
    headers: Mapping[str, str] | None,
    *,
    keep: int,
    timeout: float | None = None,
) -> tuple[OutboundResponse, bytes | None]:
    target = _parse(url)
    request_headers = _request_headers(target, headers)
    if body is None:
        request_headers.pop("Content-Type", None)
    address = _resolve(target)[0]
    read_timeout = float(ciba_settings.OUTBOUND_READ_TIMEOUT)
    connect_timeout = float(ciba_settings.OUTBOUND_CONNECT_TIMEOUT)
    if timeout is not None:
        read_timeout, connect_timeout = min(read_timeout, timeout), min(connect_timeout, timeout)
    timeouts = urllib3.Timeout(connect=connect_timeout, read=read_timeout)
    pool = urllib3.HTTPSConnectionPool(
        host=str(address),
        port=target.port,
        timeout=timeouts,
        retries=False,
        maxsize=1,
        cert_reqs="CERT_REQUIRED",
        server_hostname=target.host.removesuffix("."),  # SNI and certificate check: the URL's host
        **_ca_options(),
    )
    try:
        try:
            response = pool.urlopen(
                method,
                target.request_target,
                body=body,
                headers=request_headers,
                redirect=False,
                retries=False,
                preload_content=False,
                assert_same_host=False,
            )
            try:
                result = OutboundResponse(status=response.status, headers=_merge(response.headers))
                deadline = time.monotonic() + read_timeout
                if keep and result.status == 200:
                    content = _read_capped(response, keep, deadline)
                else:
                    content = b""
                    _drain(response, deadline)
            finally:
                with contextlib.suppress(*_TRANSPORT_ERRORS):
                    response.close()
        except _TRANSPORT_ERRORS as exc:
            failure = _failure_name(exc)
        else:
            logger.debug("%s %s -> %s", method, target.origin, result.status)
            return result, content
    finally:
        with contextlib.suppress(*_TRANSPORT_ERRORS):
            pool.close()
    logger.debug("%s %s failed: %s", method, target.origin, failure)
    # Raised outside the except block on purpose: urllib3's exceptions carry the path and query.
    raise TransportError(f"Outbound {method} to {target.origin} failed: {failure}.", origin=target.origin)
