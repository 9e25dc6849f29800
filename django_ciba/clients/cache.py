"""A per-process cache of application rows (with their CIBA registration) for client authentication.

Used by :class:`~django_ciba.validators.CibaValidatorMixin` at the token and backchannel endpoints
when the hot-path cache is on (:func:`django_ciba.core.hot_path.enabled`). The rows stay in this
process: only a version token is shared (:data:`~django_ciba.core.hot_path.VERSION_KEY`), read on
every request in the same round trip as the poll's other keys. A row is used only while the version
it was read under is still the current one, and for at most :data:`TTL` seconds.

Saving or deleting an application or a CIBA registration replaces the version once the transaction
commits (the receivers below; bulk ``CibaClient.objects...update()`` does too), so every process
reads the row again on its next request: a disabled client is refused at once everywhere. Code that
updates applications in bulk (``Application.objects.filter(...).update(...)``) calls
:func:`invalidate`.

Each request gets fresh model instances built from the stored values, never a shared object.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from django.db import router, transaction
from django.db.models.signals import post_delete, post_save
from oauth2_provider.models import get_application_model

from django_ciba.core import hot_path
from django_ciba.models import CibaClient


#: Seconds a row is used at most, whatever the version says.
TTL = 60.0
#: Rows kept per process; past it the cache starts over.
MAX_ROWS = 1000

_rows: dict[str, tuple[str, float, tuple[Any, ...], tuple[Any, ...]]] = {}
_lock = threading.Lock()


def _values(instance: Any) -> tuple[Any, ...]:
    return tuple(getattr(instance, field.attname) for field in instance._meta.concrete_fields)


def _build(model: Any, values: tuple[Any, ...]) -> Any:
    names = [field.attname for field in model._meta.concrete_fields]
    return model.from_db(router.db_for_read(model), names, list(values))


def cached(client_id: str, version: str | None) -> Any | None:
    """A fresh application (its ``ciba`` set) for ``client_id`` read under ``version``, or None."""
    if version is None:
        return None
    found = _rows.get(client_id)
    if found is None or found[0] != version or found[1] < time.monotonic():
        return None
    application = _build(get_application_model(), found[2])
    application.ciba = _build(CibaClient, found[3])
    return application


def store(client_id: str, version: str | None, application: Any) -> None:
    """Keep ``application`` (read from the database after ``version`` was read) for later requests.

    Only an application with a CIBA registration is kept (the registration is cached on it);
    other applications are read from the database every time.
    """
    if version is None or application is None or application.client_id != client_id:
        return
    ciba = CibaClient.objects.registration_of(application)
    if ciba is None:
        return
    with _lock:
        if len(_rows) >= MAX_ROWS:
            _rows.clear()
        _rows[client_id] = (version, time.monotonic() + TTL, _values(application), _values(ciba))


def clear() -> None:
    """Forget this process's rows (tests)."""
    with _lock:
        _rows.clear()


def invalidate() -> None:
    """Make every process read its client rows again: now, and again once the current transaction
    commits (a process may read the old row between the two; the second bump retires it)."""
    clear()
    hot_path.bump_client_version()
    transaction.on_commit(hot_path.bump_client_version)


def _changed(sender: Any, **kwargs: Any) -> None:
    invalidate()


def connect() -> None:
    """Connect the receivers that invalidate on every save and delete (called by the app's ready())."""
    application_model = get_application_model()
    for signal, name in ((post_save, "saved"), (post_delete, "deleted")):
        signal.connect(_changed, sender=CibaClient, dispatch_uid=f"django_ciba.clients.cache.ciba_{name}")
        signal.connect(
            _changed, sender=application_model, dispatch_uid=f"django_ciba.clients.cache.application_{name}"
        )
