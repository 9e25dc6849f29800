"""A backend that writes notifications to the console (the default; for development)."""

from __future__ import annotations

import sys
import threading
from datetime import UTC
from typing import Any, TextIO

from django_ciba.backends.base import BaseNotificationBackend, DeviceNotification
from django_ciba.core import details_rendering


# One lock for all instances: get_backend() builds a new backend per call, and blocks written by
# concurrent threads must not interleave on the shared stream.
_lock = threading.RLock()


def _printable(value: str) -> str:
    """Escape control and other non-printable characters so a value cannot forge console lines."""
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in value)


class ConsoleBackend(BaseNotificationBackend):
    """Writes a short block per notification to ``stream`` (``sys.stdout`` by default)."""

    def __init__(self, *, stream: TextIO | None = None, **options: Any) -> None:
        super().__init__(**options)
        self.stream = stream

    def notify(self, notification: DeviceNotification) -> None:
        stream = self.stream or sys.stdout  # looked up late, so redirected stdout is honoured
        text = self.format(notification)
        with _lock:
            stream.write(text)
            stream.flush()

    def format(self, notification: DeviceNotification) -> str:
        """The block written for ``notification``."""
        lines = [
            f"CIBA authentication request #{notification.auth_request_pk}",
            f"User: {notification.user.get_username()}",
            f"Client: {notification.client_name} ({notification.client_id})",
            f"Binding message: {notification.binding_message or '(none)'}",
            f"Scopes: {' '.join(notification.scopes)}",
        ]
        lines.extend(
            f"Detail: {line}"
            for line in details_rendering.render_details(list(notification.authorization_details), text=True)
        )
        if notification.acr_values:
            lines.append(f"ACR values: {' '.join(notification.acr_values)}")
        expires_at = notification.expires_at.astimezone(UTC).isoformat(timespec="seconds")
        lines.append(f"Expires at: {expires_at}")
        lines.append(f"Approve or deny: {notification.approval_url or '(no approval URL configured)'}")
        width = 72
        return "\n".join(["-" * width, *(_printable(line) for line in lines), "-" * width, ""])
