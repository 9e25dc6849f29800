"""System checks of outbound calls, delivery, maintenance, sealing and the notification backend.

E021-E026, W027 and E150-E157; the backend reports its own OPTIONS (E030-E033, E190-E195).
"""

from __future__ import annotations

import ipaddress
from typing import Any

from django.core import checks

from django_ciba.checks.values import positive_int, positive_number
from django_ciba.core.conf import ciba_settings, setting_name
from django_ciba.exceptions import CibaConfigurationError


SECONDS = "must be a positive number of seconds."


@checks.register()
def check_delivery_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Delivery, outbound-call, sealing and notification-backend settings."""
    from django.conf import settings

    try:
        _ = ciba_settings.user_settings
    except CibaConfigurationError:
        return []  # reported as E010 / E182
    errors = [*_timeouts(), *_delivery()]
    networks = ciba_settings.OUTBOUND_ALLOWED_NETWORKS
    try:
        if isinstance(networks, str):
            raise ValueError("a list is expected")
        for network in networks or []:
            ipaddress.ip_network(network, strict=False)
    except (TypeError, ValueError) as exc:
        errors.append(
            checks.Error(
                f"{setting_name('OUTBOUND_ALLOWED_NETWORKS')} must be a list of CIDR networks: {exc}",
                id="django_ciba.E023",
            )
        )
    approval_url = ciba_settings.APPROVAL_URL
    if approval_url is not None:
        try:
            ok = isinstance(approval_url, str) and approval_url.format(pk=1) != approval_url
        except (KeyError, IndexError, ValueError):
            ok = False
        if not ok:
            errors.append(
                checks.Error(
                    "CIBA['APPROVAL_URL'] must be None or a URL containing '{pk}' (and no other field).",
                    id="django_ciba.E024",
                )
            )
    try:
        from django_ciba.core.sealing import seal

        seal("check")
    except (CibaConfigurationError, TypeError, ValueError) as exc:
        errors.append(checks.Error(f"CIBA['SEALING_KEYS'] cannot be used: {exc}", id="django_ciba.E025"))
    errors.extend(_check_backend(settings))
    return errors


def _timeouts() -> list[checks.CheckMessage]:
    """E021, E150: the outbound timeouts; E022: the lease must outlast them."""
    errors: list[checks.CheckMessage] = []
    connect, read = ciba_settings.OUTBOUND_CONNECT_TIMEOUT, ciba_settings.OUTBOUND_READ_TIMEOUT
    if not positive_number(connect):
        errors.append(
            checks.Error(f"{setting_name('OUTBOUND_CONNECT_TIMEOUT')} {SECONDS}", id="django_ciba.E021")
        )
    if not positive_number(read):
        errors.append(
            checks.Error(f"{setting_name('OUTBOUND_READ_TIMEOUT')} {SECONDS}", id="django_ciba.E150")
        )
    lease = ciba_settings.DELIVERY_LEASE
    if all(positive_number(value) for value in (connect, read, lease)) and lease <= connect + read:
        errors.append(
            checks.Error(
                f"{setting_name('DELIVERY_LEASE')} must be longer than the outbound connect and read "
                "timeouts together, or a slow delivery could be taken over while it still runs.",
                id="django_ciba.E022",
            )
        )
    return errors


def _delivery() -> list[checks.CheckMessage]:
    """E151-E157: retries, lease, acknowledgement grace, retention and batch size."""
    errors: list[checks.CheckMessage] = []
    if not positive_number(ciba_settings.RETRY_BASE_DELAY):
        errors.append(checks.Error(f"{setting_name('RETRY_BASE_DELAY')} {SECONDS}", id="django_ciba.E151"))
    if not positive_number(ciba_settings.RETRY_MAX_DELAY):
        errors.append(checks.Error(f"{setting_name('RETRY_MAX_DELAY')} {SECONDS}", id="django_ciba.E152"))
    if not positive_number(ciba_settings.RETRY_MIN_WINDOW):
        errors.append(checks.Error(f"{setting_name('RETRY_MIN_WINDOW')} {SECONDS}", id="django_ciba.E153"))
    if not positive_number(ciba_settings.DELIVERY_LEASE):
        errors.append(checks.Error(f"{setting_name('DELIVERY_LEASE')} {SECONDS}", id="django_ciba.E154"))
    if not positive_number(ciba_settings.ACKNOWLEDGEMENT_GRACE):
        errors.append(
            checks.Error(f"{setting_name('ACKNOWLEDGEMENT_GRACE')} {SECONDS}", id="django_ciba.E155")
        )
    if not positive_int(ciba_settings.BATCH_SIZE):
        errors.append(
            checks.Error(f"{setting_name('BATCH_SIZE')} must be a positive integer.", id="django_ciba.E156")
        )
    retention = ciba_settings.RETENTION
    if not isinstance(retention, int) or isinstance(retention, bool) or retention < 0:
        errors.append(
            checks.Error(
                f"{setting_name('RETENTION')} must be zero or a positive number of seconds.",
                id="django_ciba.E157",
            )
        )
    return errors


def _check_backend(settings: Any) -> list[checks.CheckMessage]:
    from django_ciba.backends import get_backend

    try:
        backend = get_backend()
    except CibaConfigurationError as exc:
        return [
            checks.Error(
                f"CIBA['NOTIFICATION_BACKEND'] cannot be built: {exc}",
                id="django_ciba.E026",
            )
        ]
    messages = list(backend.check())
    module = type(backend).__module__
    if not settings.DEBUG and module in ("django_ciba.backends.console", "django_ciba.backends.locmem"):
        messages.append(
            checks.Warning(
                f"Device notifications go to {type(backend).__name__}: no user is ever notified.",
                hint="Set CIBA['NOTIFICATION_BACKEND'] to a real backend (email, webhook or your own).",
                id="django_ciba.W027",
            )
        )
    return messages
