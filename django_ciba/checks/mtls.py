"""System checks of mutual TLS behind a TLS-terminating proxy (RFC 8705): E210-E214, W210-W213.

The ``CIBA["MTLS"]`` settings are checked without the database; the registered clients that the
settings leave unable to authenticate (W210, W211) are a database check.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from django.core import checks
from django.db import DatabaseError

from django_ciba.core.conf import ciba_settings, setting_name
from django_ciba.exceptions import CibaConfigurationError


HINT = "See the MTLS settings and the nginx configuration on the deployment page."
#: An HTTP field name (RFC 9110 §5.1: a token).
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
#: The endpoints RFC 8705 §5 lets mtls_endpoint_aliases name (server metadata with a URL).
ALIASED_ENDPOINTS = frozenset(
    {
        "token_endpoint",
        "revocation_endpoint",
        "introspection_endpoint",
        "userinfo_endpoint",
        "registration_endpoint",
        "backchannel_authentication_endpoint",
        "pushed_authorization_request_endpoint",
        "device_authorization_endpoint",
    }
)
#: How many client_ids W210 / W211 name at most (the rest are counted).
LISTED_CLIENTS = 20


def _header_name(value: Any) -> bool:
    return isinstance(value, str) and bool(_TOKEN.fullmatch(value))


def _networks(value: Any) -> list[Any] | None:
    """The networks of TRUSTED_PROXIES, or None when it is not a list of CIDR strings."""
    if not isinstance(value, list | tuple):
        return None
    networks = []
    for entry in value:
        if not isinstance(entry, str):
            return None
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            return None
    return networks


@checks.register()
def check_mtls_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """``CIBA["MTLS"]``: E210-E214, W212, W213."""
    try:
        _ = ciba_settings.user_settings
    except CibaConfigurationError:
        return []  # reported as E010 / E182
    errors: list[checks.CheckMessage] = []
    networks = _networks(ciba_settings.MTLS_TRUSTED_PROXIES)
    if networks is None:
        errors.append(
            checks.Error(
                f"{setting_name('MTLS_TRUSTED_PROXIES')} must be a list of networks in CIDR notation "
                "(e.g. ['10.0.0.0/24']).",
                hint=HINT,
                id="django_ciba.E210",
            )
        )
    elif any(network.prefixlen == 0 for network in networks):
        errors.append(
            checks.Warning(
                f"{setting_name('MTLS_TRUSTED_PROXIES')} trusts every address: any client can state "
                "its own TLS certificate in a header.",
                hint="List only the addresses of the TLS-terminating proxies.",
                id="django_ciba.W212",
            )
        )
    if not _header_name(ciba_settings.MTLS_CERTIFICATE_HEADER):
        errors.append(
            checks.Error(
                f"{setting_name('MTLS_CERTIFICATE_HEADER')} must be an HTTP header name (e.g. Client-Cert).",
                hint=HINT,
                id="django_ciba.E211",
            )
        )
    verified = ciba_settings.MTLS_VERIFIED_HEADER
    if verified is not None and not _header_name(verified):
        errors.append(
            checks.Error(
                f"{setting_name('MTLS_VERIFIED_HEADER')} must be None or an HTTP header name "
                "(e.g. X-SSL-Client-Verify).",
                hint=HINT,
                id="django_ciba.E212",
            )
        )
    errors.extend(_aliases(ciba_settings.MTLS_ENDPOINT_ALIASES, bool(networks)))
    return errors


def _aliases(aliases: Any, proxies: bool) -> list[checks.CheckMessage]:
    """E213, E214, W213: mtls_endpoint_aliases (RFC 8705 §5)."""
    if not isinstance(aliases, dict) or any(name not in ALIASED_ENDPOINTS for name in aliases):
        return [
            checks.Error(
                f"{setting_name('MTLS_ENDPOINT_ALIASES')} must be a dict whose keys are endpoint "
                f"metadata names ({', '.join(sorted(ALIASED_ENDPOINTS))}).",
                hint=HINT,
                id="django_ciba.E213",
            )
        ]
    errors: list[checks.CheckMessage] = []
    if any(not isinstance(url, str) or not _https_url(url) for url in aliases.values()):
        errors.append(
            checks.Error(
                f"{setting_name('MTLS_ENDPOINT_ALIASES')} values must be absolute https URLs.",
                hint=HINT,
                id="django_ciba.E214",
            )
        )
    if aliases and not proxies:
        errors.append(
            checks.Warning(
                f"{setting_name('MTLS_ENDPOINT_ALIASES')} is set but "
                f"{setting_name('MTLS_TRUSTED_PROXIES')} is empty: no certificate reaches the OP, and "
                "discovery publishes no aliases.",
                hint=HINT,
                id="django_ciba.W213",
            )
        )
    return errors


def _https_url(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme == "https" and bool(parts.hostname) and not any(char.isspace() for char in url)


@checks.register(checks.Tags.database)
def check_mtls_clients(
    app_configs: Any = None, databases: Iterable[str] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """W210, W211: registered clients the MTLS settings leave without their certificate.

    A database check: it runs with ``migrate`` and ``check --database``. It names client_ids only.
    """
    from django.db.models import Q

    from django_ciba.models import AuthMethod

    try:
        _ = ciba_settings.user_settings
    except CibaConfigurationError:
        return []
    mtls = Q(
        token_endpoint_auth_method__in=[AuthMethod.TLS_CLIENT_AUTH, AuthMethod.SELF_SIGNED_TLS_CLIENT_AUTH]
    )
    if not _networks(ciba_settings.MTLS_TRUSTED_PROXIES):
        clients = _listed(_client_ids(databases, mtls | Q(tls_client_certificate_bound_access_tokens=True)))
        if not clients:
            return []
        return [
            checks.Warning(
                f"{clients} use mutual TLS but {setting_name('MTLS_TRUSTED_PROXIES')} is empty: no "
                "certificate reaches the OP, so they cannot authenticate or get certificate-bound tokens.",
                hint=HINT,
                id="django_ciba.W211",
            )
        ]
    if ciba_settings.MTLS_VERIFIED_HEADER:
        return []
    clients = _listed(_client_ids(databases, Q(token_endpoint_auth_method=AuthMethod.TLS_CLIENT_AUTH)))
    if not clients:
        return []
    return [
        checks.Warning(
            f"{clients} use tls_client_auth but {setting_name('MTLS_VERIFIED_HEADER')} is None: no "
            "certificate chain is verified, so they cannot authenticate.",
            hint=HINT,
            id="django_ciba.W210",
        )
    ]


def _client_ids(databases: Iterable[str] | None, query: Any) -> list[str]:
    from django_ciba.models import CibaClient

    found: list[str] = []
    for alias in databases or ():
        try:
            found.extend(
                CibaClient.objects.using(alias)
                .filter(query)
                .order_by("pk")
                .values_list("application__client_id", flat=True)
            )
        except DatabaseError:
            continue  # no tables yet (before the first migrate)
    return found


def _listed(clients: list[str]) -> str:
    """``"N client(s) (id, id, ...)"``, "" for none."""
    if not clients:
        return ""
    listed = ", ".join(clients[:LISTED_CLIENTS])
    if len(clients) > LISTED_CLIENTS:
        listed += f" and {len(clients) - LISTED_CLIENTS} more"
    return f"{len(clients)} client(s) ({listed})"
