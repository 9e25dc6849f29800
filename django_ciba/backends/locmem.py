"""A backend that records notifications in memory, for tests.

Each notification lands in :data:`outbox`. :func:`fail_next` makes the next deliveries fail, so
tests can exercise retries and permanent failures; :func:`reset` clears both between tests.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

from django_ciba.backends.base import (
    BaseNotificationBackend,
    DeviceNotification,
    NotificationError,
    PermanentNotificationError,
)


#: Every notification delivered by a :class:`LocmemBackend`, oldest first.
outbox: list[DeviceNotification] = []

_lock = threading.Lock()
_failures: deque[bool] = deque()  # one entry per failure to inject; True: permanent


def fail_next(count: int = 1, *, permanent: bool = False) -> None:
    """Make the next ``count`` calls of ``notify()`` fail without recording anything.

    They raise :class:`PermanentNotificationError` when ``permanent`` is true, otherwise
    :class:`NotificationError` (a transient failure). Calls add up.
    """
    if count < 0:
        raise ValueError("count must not be negative.")
    with _lock:
        _failures.extend([permanent] * count)


def reset() -> None:
    """Empty :data:`outbox` (in place) and forget pending failures."""
    with _lock:
        outbox.clear()
        _failures.clear()


class LocmemBackend(BaseNotificationBackend):
    """Appends each notification to :data:`django_ciba.backends.locmem.outbox`."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)

    def notify(self, notification: DeviceNotification) -> None:
        # Refuse what a real backend could not handle, so tests do not pass on malformed input.
        if not isinstance(notification, DeviceNotification):
            raise TypeError(f"Expected a DeviceNotification, got {type(notification).__name__}.")
        with _lock:
            if _failures:
                if _failures.popleft():
                    raise PermanentNotificationError("Injected permanent failure (locmem.fail_next).")
                raise NotificationError("Injected transient failure (locmem.fail_next).")
            outbox.append(notification)
