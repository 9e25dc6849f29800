"""The hot-path cache: what a pending poll and client authentication can read without SQL.

Two kinds of keys live in the shared cache (``CIBA["CACHE_ALIAS"]``), when
:func:`enabled` (``CIBA["HOT_PATH_CACHE"]``, see docs/performance.rst, "Hot-path cache"):

* one *pending entry* per pending poll or ping request, keyed by the SHA-256 of its auth_req_id:
  ``(client pk, expiry timestamp, interval)``. The lifecycle writes it when it creates the request
  (before commit). At every transition away from pending it deletes it before commit and, once
  the transition has committed, puts a *tombstone* in its place. A poll answered from the database
  while the request is still pending puts the entry back with ``add`` (only where the key is
  absent), so it can never overwrite a tombstone: a poll that raced a transition cannot put
  "pending" back. Entries and tombstones live at most :data:`ENTRY_SECONDS`: if a transition could
  not reach the cache (Redis unreachable just then), its request is told ``authorization_pending``
  for at most that long, and a request deleted with its user or client is forgotten as soon.
* one *client version* for all applications: a random token replaced whenever an application or
  its CIBA registration is saved, deleted or updated in bulk. Each process keeps its own copy of
  the rows it authenticated clients with (:mod:`django_ciba.clients.cache`), valid only while the
  version it was read under is the current one. No secret, hash or row ever goes to the cache.

Every read and write here survives an unavailable cache: reads answer "nothing cached" (callers
use the database) and failed writes are logged.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any, NamedTuple

from django.core.cache import caches

from django_ciba.core.conf import ciba_settings


logger = logging.getLogger(__name__)

#: The values of ``CIBA["HOT_PATH_CACHE"]``.
MODES = ("auto", True, False)
#: Cache backends ``"auto"`` never uses: per process (a transition in one process would not reach
#: the others), storing nothing, or no faster than the database.
LOCAL_BACKENDS = (
    "django.core.cache.backends.locmem.LocMemCache",
    "django.core.cache.backends.dummy.DummyCache",
    "django.core.cache.backends.db.DatabaseCache",
    "django.core.cache.backends.filebased.FileBasedCache",
)
VERSION_KEY = "ciba:clients:version"
MISSING = object()
#: The longest a pending entry or a tombstone stays in the cache (seconds).
ENTRY_SECONDS = 60
#: What a transition leaves in place of the pending entry (not an entry: polls read the database).
TOMBSTONE = "decided"


class PendingEntry(NamedTuple):
    """What a poll needs to answer ``authorization_pending`` / ``slow_down`` for a request."""

    client_pk: Any
    expires_at: float  # a POSIX timestamp
    interval: int

    def seconds_left(self, now: datetime) -> int:
        return max(0, int(self.expires_at - now.timestamp()))


def is_local(cache: Any) -> bool:
    """Whether ``cache`` is one of :data:`LOCAL_BACKENDS` (or a subclass of one)."""
    backend = type(cache)
    if backend not in _local:
        paths = {f"{klass.__module__}.{klass.__qualname__}" for klass in backend.__mro__}
        _local[backend] = bool(paths & set(LOCAL_BACKENDS))
    return _local[backend]


_local: dict[type, bool] = {}


def enabled() -> bool:
    """``HOT_PATH_CACHE``: True/False as given; ``"auto"``: on for a cache shared between processes."""
    mode = ciba_settings.HOT_PATH_CACHE
    if mode is True:
        return True
    if mode != "auto":
        return False
    try:
        return not is_local(caches[ciba_settings.CACHE_ALIAS])
    except Exception:  # an invalid alias: reported by check E063
        return False


def alias() -> str:
    return str(ciba_settings.CACHE_ALIAS)


def cache() -> Any:
    return caches[alias()]


def pending_key(auth_req_id_hash: str) -> str:
    return f"ciba:pending:{auth_req_id_hash}"


def get_many(keys: Iterable[str]) -> dict[str, Any] | None:
    """One round trip for ``keys``; None when the cache cannot be read (callers use the database)."""
    try:
        return dict(cache().get_many(list(keys)))
    except Exception as exc:  # Redis down, a timeout: never a 500 on the hot path
        logger.warning("Hot-path cache unavailable (%s): reading the database.", type(exc).__name__)
        return None


def entry_from(value: Any) -> PendingEntry | None:
    """A :class:`PendingEntry` from a cached value, or None for anything malformed."""
    try:
        client_pk, expires_at, interval = value
        return PendingEntry(client_pk, float(expires_at), int(interval))
    except (TypeError, ValueError):
        return None


def entry_value(*, client_pk: Any, expires_at: datetime, interval: int) -> tuple[Any, float, int]:
    """The cached form of a pending entry (what :func:`entry_from` reads back)."""
    return (client_pk, expires_at.timestamp(), int(interval))


def _entry_timeout(expires_at: datetime) -> int:
    return max(1, min(ENTRY_SECONDS, int(expires_at.timestamp() - time.time()) + 1))


def remember_pending(auth_req_id_hash: str, *, client_pk: Any, expires_at: datetime, interval: int) -> None:
    """Write the pending entry of a new request (called before its creation commits)."""
    if not enabled():
        return
    value = entry_value(client_pk=client_pk, expires_at=expires_at, interval=interval)
    try:
        cache().set(pending_key(auth_req_id_hash), value, _entry_timeout(expires_at))
    except Exception as exc:  # no entry: the polls of this request read the database
        logger.warning("Could not write a pending entry (%s).", type(exc).__name__)


def restore_pending(auth_req_id_hash: str, *, client_pk: Any, expires_at: datetime, interval: int) -> None:
    """Put back the entry of a request the database just showed pending, unless the key holds
    anything (an entry, or the tombstone of a transition that committed meanwhile)."""
    if not enabled():
        return
    value = entry_value(client_pk=client_pk, expires_at=expires_at, interval=interval)
    try:
        cache().add(pending_key(auth_req_id_hash), value, _entry_timeout(expires_at))
    except Exception as exc:
        logger.warning("Could not restore a pending entry (%s).", type(exc).__name__)


def bury_pending(auth_req_id_hash: str) -> None:
    """Leave the tombstone of a committed transition in place of the pending entry."""
    try:
        cache().set(pending_key(auth_req_id_hash), TOMBSTONE, ENTRY_SECONDS)
    except Exception as exc:
        logger.error(
            "Could not replace a pending entry (%s): polls may be told authorization_pending for up "
            "to %s s more.",
            type(exc).__name__,
            ENTRY_SECONDS,
        )


def forget_pending(auth_req_id_hash: str) -> None:
    """Delete a request's pending entry (called around every transition away from pending).

    Whatever :func:`enabled` says: a process with the hot path off (a rolling deploy, the setting
    switched off and on again) must not leave another process's entry behind."""
    try:
        cache().delete(pending_key(auth_req_id_hash))
    except Exception as exc:
        logger.error(
            "Could not delete a pending entry (%s): polls may be told authorization_pending for up "
            "to %s s more.",
            type(exc).__name__,
            ENTRY_SECONDS,
        )


def bump_client_version() -> None:
    """Invalidate every process's cached client rows: a new version token (whatever
    :func:`enabled` says, like :func:`forget_pending`)."""
    try:
        cache().set(VERSION_KEY, uuid.uuid4().hex, None)
    except Exception as exc:
        logger.error("Could not invalidate cached clients (%s).", type(exc).__name__)


def claim_client_version() -> str | None:
    """When no version is stored yet: store a new one and return it; None when another process
    stored one first (or the cache failed), so that nothing read meanwhile gets cached."""
    token = uuid.uuid4().hex
    try:
        return token if cache().add(VERSION_KEY, token, None) else None
    except Exception:
        return None
