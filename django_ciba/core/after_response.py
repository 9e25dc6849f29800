"""Work that can wait until the current HTTP response has been sent.

The outbox hands its deliveries to the task queue once their transaction commits. Inside a request,
that hand-over (and, with in-process tasks, the delivery itself: the device notification of a new
``/bc-authorize`` request) would otherwise run before the answer goes out, and the client would wait
for it. :func:`defer` keeps the work until Django sends ``request_finished``, which the server
triggers by closing the response once it has been written. Outside a request (a worker, a command,
a test calling a service) the work runs at once.

Nothing durable depends on it: a delivery is a committed outbox row before anything is deferred, so
a process that dies after answering leaves the row due, and the outbox sweep sends it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from django.core.signals import request_finished, request_started
from django.db import close_old_connections


logger = logging.getLogger(__name__)

_queue: ContextVar[list[Callable[[], Any]] | None] = ContextVar("django_ciba_after_response", default=None)


def defer(work: Callable[[], Any]) -> None:
    """Run ``work`` once the current response has been sent, or now outside a request."""
    queue = _queue.get()
    if queue is None:
        work()
    else:
        queue.append(work)


def _start(**kwargs: Any) -> None:
    # Work left by a response that was never closed runs now rather than never.
    _run(_queue.get())
    _queue.set([])


def _finish(**kwargs: Any) -> None:
    queue = _queue.get()
    _queue.set(None)
    _run(queue)


def _run(queue: list[Callable[[], Any]] | None) -> None:
    if not queue:
        return
    for work in queue:
        try:
            work()
        except Exception:  # the answer is sent; the outbox sweep is the safety net
            logger.exception("Deferred work after a response failed.")
    # Django closed the request's connections before this receiver ran (CONN_MAX_AGE): close what
    # the deferred work opened the same way, instead of holding it until the next request.
    close_old_connections()


def install() -> None:
    """Connect the receivers (``AppConfig.ready()``); idempotent."""
    request_started.connect(_start, dispatch_uid="django_ciba.core.after_response.start")
    request_finished.connect(_finish, dispatch_uid="django_ciba.core.after_response.finish")


__all__ = ["defer", "install"]
