"""The refusals of the abuse controls at ``/bc-authorize`` (VAL-08, AERR-10) and their log lines.

Every refusal is ``access_denied`` (HTTP 403) with a fixed description and, when the end of the
refusal is known, a ``Retry-After`` header. A user locked after wrong user codes is answered like
an unknown user instead (AERR-04, SEC-08). See ``docs/abuse.rst``.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.utils import timezone

from django_ciba.exceptions import AccessDenied, UnknownUserId


logger = logging.getLogger("django_ciba.bc_authorize.abuse")  # the logger of every abuse control


class Refused(AccessDenied):
    """AERR-10 / VAL-08: the OP refused the request by policy (403), optionally with Retry-After."""

    description = "The request was refused."

    def __init__(self, description: str | None = None, *, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.retry_after = retry_after

    @property
    def headers(self) -> dict[str, str]:
        if self.retry_after is None:
            return {}
        return {"Retry-After": str(max(1, int(self.retry_after)))}


class ClientRateLimited(Refused):
    """The client's rate limit (its own, else ``CLIENT_RATE_LIMIT``): too many requests in the window."""

    description = "Too many requests from this client; retry later."


class UserRateLimited(Refused):
    """``USER_RATE_LIMIT``: too many requests named this user in the current window."""

    description = "Too many requests for this user; retry later."


class TooManyPending(Refused):
    """``MAX_PENDING_PER_USER`` (deprecated): the user already has that many requests waiting."""

    description = "Too many requests are waiting for this user's decision; retry later."


class ClientReported(Refused):
    """``ABUSE_REPORT_LIMIT``: the user reported this client ("I did not request this")."""

    description = "Requests from this client for this user are refused for now."


class PromptsNotApproved(Refused):
    """``UNAPPROVED_PROMPT_LIMIT`` / ``UNAPPROVED_PROMPT_CEILING``: the user left too many of this
    client's prompts unapproved since last approving one (approval fatigue)."""

    description = "Too many recent requests for this user were not approved; retry later."


class LockedUser(UnknownUserId):
    """The user is locked after too many wrong user codes: answered exactly like an unknown user
    (same error, description and headers; AERR-04, SEC-08)."""


def as_datetime(now: float) -> datetime:
    """``now`` (seconds since the epoch) as a datetime comparable with the model's fields."""
    moment = datetime.fromtimestamp(now, tz=UTC)
    return moment if settings.USE_TZ else timezone.make_naive(moment)


def log_event(level: int, event: str, application: Any, user: Any = None, **detail: Any) -> None:
    """One line on the ``django_ciba.bc_authorize.abuse`` logger: client id and user pk, never a secret."""
    client_id = getattr(application, "client_id", None)
    user_pk = getattr(user, "pk", None)
    logger.log(
        level,
        "ciba.%s client=%s user=%s",
        event,
        client_id,
        user_pk,
        extra={
            "ciba_event": event,
            "ciba_client_id": client_id,
            "ciba_user_pk": user_pk,
            "ciba_detail": detail,
        },
    )


__all__ = [
    "ClientRateLimited",
    "ClientReported",
    "LockedUser",
    "PromptsNotApproved",
    "Refused",
    "TooManyPending",
    "UserRateLimited",
    "as_datetime",
    "log_event",
]
