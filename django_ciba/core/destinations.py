"""Where outbound calls may go: URL rules and the address policy (SSRF), without any I/O but DNS.

:func:`parse_target` checks a URL (absolute ``https://``, no userinfo or fragment, a valid host that is
not a non-public IP literal or ``localhost``); :func:`resolve` resolves the host once and refuses the
call if *any* address is private, loopback, link-local, multicast, reserved or otherwise non-public
(:func:`is_allowed_address`), unless it is inside ``CIBA["OUTBOUND"]["ALLOWED_NETWORKS"]``.
:mod:`django_ciba.core.outbound` makes the calls.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from functools import lru_cache
from typing import NamedTuple
from urllib.parse import urlsplit

from django_ciba.core.conf import ciba_settings
from django_ciba.exceptions import CibaConfigurationError


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
MAX_URL_LENGTH = 2000
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_LOOPBACK_NAME = ipaddress.IPv4Address("127.0.0.1")
_AUTHORITY = re.compile(r"(\[[^\[\]]*\]|[^\[\]:]*)(?::([0-9]*))?")
_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_HOST_NAME = re.compile(rf"(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*\.?")
_NUMERIC_LABEL = re.compile(r"0x[0-9a-f]*|[0-9]+")


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


@lru_cache(maxsize=8)
def _parse_networks(values: tuple[str, ...]) -> tuple[Network, ...]:
    try:
        return tuple(ipaddress.ip_network(value, strict=True) for value in values)
    except (TypeError, ValueError) as exc:
        raise CibaConfigurationError(f"CIBA['OUTBOUND']['ALLOWED_NETWORKS'] holds an invalid network: {exc}")


def _allowed_networks() -> tuple[Network, ...]:
    values = ciba_settings.OUTBOUND_ALLOWED_NETWORKS or ()
    if isinstance(values, str | bytes) or not all(isinstance(value, str) for value in values):
        raise CibaConfigurationError("CIBA['OUTBOUND']['ALLOWED_NETWORKS'] must be a list of CIDR strings.")
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
    ``CIBA["OUTBOUND"]["ALLOWED_NETWORKS"]``. IPv6 addresses embedding an IPv4 address (mapped, NAT64,
    6to4, Teredo) are judged by that IPv4 address too."""
    return _check(address, _allowed_networks())


class Target(NamedTuple):
    host: str  # lower-case host name, or IP literal without brackets
    port: int
    authority: str  # host (bracketed if IPv6) plus ":port" when not 443, for the Host header
    origin: str  # https://authority, safe for messages and logs
    request_target: str  # path and query
    address: IPAddress | None  # set when the host is an IP literal


def parse_target(url: str) -> Target:
    """Parse and check ``url`` without a DNS lookup; raise :class:`UnsafeDestination` if refused."""
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
            "CIBA['OUTBOUND']['ALLOWED_NETWORKS'] if this is intended).",
            origin=origin,
        )
    request_target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(host, port, authority, origin, request_target, address)


def validate_endpoint_url(url: str) -> None:
    """Check ``url`` at configuration time (no DNS lookup); raise :class:`UnsafeDestination` if refused."""
    parse_target(url)


def resolve(target: Target) -> list[IPAddress]:
    """The addresses of ``target``, each of them allowed; :class:`TransportError` if none resolve."""
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
