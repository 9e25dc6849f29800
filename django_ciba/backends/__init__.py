"""Notification backends: how the user's authentication device learns of a pending request.

``CIBA["NOTIFICATION_BACKEND"] = {"BACKEND": "<import path>", "OPTIONS": {...}}`` selects the
backend; :func:`get_backend` builds it, reading the setting at call time.
"""

from __future__ import annotations

from typing import Any

from django.utils.module_loading import import_string

from django_ciba.backends.base import (
    BaseNotificationBackend,
    DeviceNotification,
    NotificationError,
    PermanentNotificationError,
)
from django_ciba.core.conf import ciba_settings
from django_ciba.exceptions import CibaConfigurationError


__all__ = [
    "BaseNotificationBackend",
    "DeviceNotification",
    "NotificationError",
    "PermanentNotificationError",
    "get_backend",
]

_SETTING = "CIBA['NOTIFICATION_BACKEND']"


def get_backend(**overrides: Any) -> BaseNotificationBackend:
    """Build the configured notification backend (a fresh instance on each call).

    Keyword arguments override single ``OPTIONS`` of the configured backend.
    """
    config = ciba_settings.NOTIFICATION_BACKEND
    if not isinstance(config, dict) or not isinstance(config.get("BACKEND"), str):
        raise CibaConfigurationError(
            f"{_SETTING} must be a dict with a 'BACKEND' import path and optional 'OPTIONS'."
        )
    unknown = sorted(set(config) - {"BACKEND", "OPTIONS"})
    if unknown:
        raise CibaConfigurationError(f"Unknown keys in {_SETTING}: {', '.join(map(repr, unknown))}.")
    options = config.get("OPTIONS") or {}
    if not isinstance(options, dict):
        raise CibaConfigurationError(f"{_SETTING}['OPTIONS'] must be a dict.")
    path = config["BACKEND"]
    try:
        backend_class = import_string(path)
    except ImportError as exc:
        raise CibaConfigurationError(f"Could not import the notification backend {path!r}: {exc}") from exc
    if not (isinstance(backend_class, type) and issubclass(backend_class, BaseNotificationBackend)):
        raise CibaConfigurationError(
            f"The notification backend {path!r} is not a subclass of "
            "django_ciba.backends.BaseNotificationBackend."
        )
    return backend_class(**{**options, **overrides})
