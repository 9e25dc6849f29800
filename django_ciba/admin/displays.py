"""Compact cell contents for the operator console, so its lists fit an ordinary desktop width.

* :func:`short_datetime`: a local date over a local time, the full timestamp in a tooltip;
* :func:`truncated`: the start of a long text, the whole of it in a tooltip;
* :class:`ActorNames`: who an audit actor is (``client:<client_id>`` → the client's name), looked
  up for all the events of a request in a constant number of queries.

Nothing here may receive a secret: these only ever format timestamps, delivery errors and actors.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString
from oauth2_provider.models import get_application_model

from django_ciba.models import RequestEvent


#: What a cell shows when there is nothing to show (finished: no time left, no next attempt).
NOTHING = "—"
TOOLTIP_FORMAT = "%Y-%m-%d %H:%M:%S %Z"


def short_datetime(value: datetime | None) -> SafeString | str:
    """``2026-12-07`` over ``10:48:03`` (local time); the full timestamp with its zone as a tooltip."""
    if value is None:
        return NOTHING
    local = timezone.localtime(value)
    return format_html(
        '<time datetime="{}" title="{}">{}<br>{}</time>',
        value.isoformat(),
        local.strftime(TOOLTIP_FORMAT),
        local.strftime("%Y-%m-%d"),
        local.strftime("%H:%M:%S"),
    )


def truncated(text: str, length: int = 40) -> SafeString | str:
    """``text`` cut to ``length`` characters (with an ellipsis); the whole text as a tooltip."""
    if not text:
        return NOTHING
    if len(text) <= length:
        return text
    return format_html('<span title="{}">{}…</span>', text, text[: length - 1].rstrip())


class ActorNames:
    """Names for the actors of a request's events: ``Example Bank (client:<client_id>)``,
    ``alice (user:<pk>)``, ``root (operator:<pk>)``; other actors (``system``, ``policy:<name>``)
    and actors whose client or user no longer exists are shown as recorded.

    The first lookup for a request loads the names of all its actors (three queries, however many
    events there are); later lookups for the same request use them.
    """

    def __init__(self) -> None:
        self._names: dict[int, dict[str, str]] = {}

    def label(self, event: RequestEvent) -> str:
        names = self._names.get(event.auth_request_id)
        if names is None:
            names = self._names[event.auth_request_id] = self._load(event.auth_request_id)
        name = names.get(event.actor)
        return f"{name} ({event.actor})" if name else event.actor

    @staticmethod
    def _load(auth_request_id: int) -> dict[str, str]:
        actors = set(
            RequestEvent.objects.filter(auth_request_id=auth_request_id).values_list("actor", flat=True)
        )
        client_ids: dict[str, str] = {}
        user_pks: dict[Any, list[str]] = {}
        User = get_user_model()
        for actor in actors:
            kind, _sep, ident = actor.partition(":")
            if not ident:
                continue
            if kind == "client":
                client_ids[ident] = actor
            elif kind in ("user", "operator"):
                try:
                    pk = User._meta.pk.to_python(ident)
                except ValidationError:
                    continue
                user_pks.setdefault(pk, []).append(actor)
        names: dict[str, str] = {}
        if client_ids:
            Application = get_application_model()
            found = Application.objects.filter(client_id__in=client_ids).values_list("client_id", "name")
            names.update({client_ids[client_id]: name for client_id, name in found if name})
        if user_pks:
            found = User.objects.filter(pk__in=user_pks).values_list("pk", User.USERNAME_FIELD)
            for pk, username in found:
                names.update(dict.fromkeys(user_pks.get(pk, ()), username))
        return names
