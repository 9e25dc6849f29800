"""The one way django-ciba makes outbound HTTP calls (callbacks, webhooks, client JWK sets).

Every call is an HTTPS ``POST`` of a JSON body (:func:`post_json`) or a ``GET`` of a small document
(:func:`get_document`) at a URL that a client or an operator configured, so the destination is
untrusted (SSRF). The rules:

* Only absolute ``https://`` URLs without userinfo or fragment (:func:`validate_endpoint_url`).
* The host name is resolved once; if *any* resolved address is private, loopback, link-local,
  multicast, reserved or otherwise non-public (:func:`is_allowed_address`) the call is refused,
  unless the address is inside ``CIBA["OUTBOUND"]["ALLOWED_NETWORKS"]``. The connection then goes to
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
import logging
import math
import os
import re
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import MappingProxyType
from typing import Any

import requests.certs
import urllib3

from django_ciba import __version__
from django_ciba.core.conf import ciba_settings
from django_ciba.core.destinations import (
    IPAddress,
    OutboundError,
    Target,
    TransportError,
    UnsafeDestination,
    is_allowed_address,
    parse_target,
    resolve,
    validate_endpoint_url,
)


logger = logging.getLogger(__name__)

# The destination rules' names, importable from here as before the split.
__all__ = [
    "IPAddress",
    "OutboundError",
    "OutboundResponse",
    "TransportError",
    "UnsafeDestination",
    "get_document",
    "is_allowed_address",
    "post_json",
    "validate_endpoint_url",
]

MAX_RESPONSE_BYTES = 64 * 1024
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_CONTROLLED_HEADERS = frozenset({"host", "content-length", "transfer-encoding"})
_TRANSPORT_ERRORS = (urllib3.exceptions.HTTPError, http.client.HTTPException, OSError)


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


def _request_headers(target: Target, extra: Mapping[str, str] | None) -> dict[str, str]:
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
    origin = parse_target(url).origin
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
    target = parse_target(url)
    request_headers = _request_headers(target, headers)
    if body is None:
        request_headers.pop("Content-Type", None)
    address = resolve(target)[0]
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
