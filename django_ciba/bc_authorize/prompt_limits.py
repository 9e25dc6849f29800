"""What a user's authentication device was asked: approval fatigue, reports, pending requests.

:func:`check_user_state` runs at ``/bc-authorize`` once the hint named a user (SEC-07). It reads
everything it needs from the request and report rows, in one query:

* the abuse-report block of this client for this user (``ABUSE_REPORT_LIMIT``);
* approval fatigue ("push bombing"): the prompts of this client that the user did not approve
  (denied, reported, expired or superseded unanswered) since the user last approved one of this
  client's requests, within ``UNAPPROVED_PROMPT_LIMIT``; and the same prompts of every client
  together, within ``UNAPPROVED_PROMPT_CEILING``, which refuses only a client that has such prompts
  itself. A client whose prompts the user approves is never refused, and one client's prompts
  never refuse another client;
* the deprecated per-user pending cap (``MAX_PENDING_PER_USER``, off unless set).

Requests a decision policy decided at once prompted nobody (``asked_user`` is False) and never
count. :func:`supersede_older` keeps at most ``MAX_PENDING_PER_CLIENT_USER`` requests of one client
waiting for one user: a new prompt expires that client's oldest ones instead of being refused.
"""

from __future__ import annotations

import logging
import math
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Exists, OuterRef, Q, QuerySet

from django_ciba import lifecycle
from django_ciba.bc_authorize import prompt_state
from django_ciba.bc_authorize.refusals import ClientReported, PromptsNotApproved, TooManyPending, log_event
from django_ciba.core.conf import ciba_settings
from django_ciba.models import AuthenticationRequest


def _limit(value: Any) -> tuple[int, int] | None:
    """``[count, seconds]`` as a pair of ints, or None (off)."""
    if value is None:
        return None
    count, period = value
    return int(count), int(period)


def unapproved_prompts(user: Any, *, since: datetime, now: datetime) -> QuerySet:
    """The user's prompts created after ``since`` that ended without approval (denied, reported,
    expired, superseded or cancelled by the client, or pending past their expiry) and that no later
    approval of a request of the same client followed. Prompts a decision policy decided are not
    prompts."""
    Status = AuthenticationRequest.Status
    approved_since = AuthenticationRequest.objects.filter(
        client=OuterRef("client"), user=user, approved_at__gte=OuterRef("created_at")
    )
    return (
        AuthenticationRequest.objects.filter(
            user=user, asked_user=True, approved_at__isnull=True, created_at__gt=since
        )
        .filter(
            Q(status__in=(Status.DENIED, Status.EXPIRED, Status.CANCELLED))
            | Q(status=Status.PENDING, expires_at__lte=now)
        )
        .exclude(Exists(approved_since))
        .order_by()
    )


def _retry_after(newest: datetime | None, period: int, moment: datetime) -> int | None:
    """Seconds until the newest counted row leaves the period: when the refusal ends at the latest."""
    if newest is None:
        return None
    return math.ceil((newest + timedelta(seconds=period) - moment).total_seconds())


def periods(moment: datetime) -> prompt_state.Periods:
    """Where each limit's period starts at ``moment`` (None: the limit is off)."""

    def since(value: Any) -> datetime | None:
        limit = _limit(value)
        return None if limit is None else moment - timedelta(seconds=limit[1])

    return prompt_state.Periods(
        reports_since=since(ciba_settings.ABUSE_REPORT_LIMIT),
        mine_since=since(ciba_settings.UNAPPROVED_PROMPT_LIMIT),
        every_since=since(ciba_settings.UNAPPROVED_PROMPT_CEILING),
        pending=ciba_settings.MAX_PENDING_PER_USER is not None,
        pair_pending=ciba_settings.MAX_PENDING_PER_CLIENT_USER is not None,
    )


def check_user_state(application: Any, user: Any, moment: datetime) -> prompt_state.PromptState:
    """Refuse the request when this client may not prompt this user now (one database query).

    Returns what it read; :func:`supersede_older` uses its count of this client's requests waiting
    for this user."""
    reports_limit = _limit(ciba_settings.ABUSE_REPORT_LIMIT)
    pair_limit = _limit(ciba_settings.UNAPPROVED_PROMPT_LIMIT)
    ceiling = _limit(ciba_settings.UNAPPROVED_PROMPT_CEILING)
    cap = ciba_settings.MAX_PENDING_PER_USER
    state = prompt_state.read(application, user, now=moment, periods=periods(moment))

    if reports_limit is not None and state.reports >= reports_limit[0]:
        log_event(logging.INFO, "reported_client_refused", application, user, reports=state.reports)
        raise ClientReported(retry_after=_retry_after(state.newest_report, reports_limit[1], moment))
    if pair_limit is not None and state.mine >= pair_limit[0]:
        retry_after = _retry_after(state.newest_mine, pair_limit[1], moment)
        log_event(logging.WARNING, "unapproved_prompts_refused", application, user, unapproved=state.mine)
        raise PromptsNotApproved(retry_after=retry_after)
    if ceiling is not None and state.every >= ceiling[0] and state.mine_in_ceiling:
        retry_after = _retry_after(state.newest_every, ceiling[1], moment)
        log_event(
            logging.WARNING,
            "unapproved_ceiling_refused",
            application,
            user,
            unapproved=state.every,
            from_client=state.mine_in_ceiling,
        )
        raise PromptsNotApproved(retry_after=retry_after)
    if cap is not None and state.pending >= int(cap):
        soonest = state.soonest_expiry
        retry_after = math.ceil((soonest - moment).total_seconds()) if soonest is not None else None
        log_event(logging.INFO, "pending_cap_reached", application, user, pending=state.pending)
        raise TooManyPending(retry_after=retry_after)
    return state


def supersede_older(
    auth_request: AuthenticationRequest, *, now: datetime, waiting: int | None = None
) -> list[int]:
    """Expire the oldest requests of ``auth_request``'s client still waiting for its user, so that at
    most ``MAX_PENDING_PER_CLIENT_USER`` wait, the new one included. Call it inside the transaction
    that stored ``auth_request``. Returns the primary keys of the requests it expired.

    Each goes through the conditional :func:`django_ciba.lifecycle.supersede` transition (a request
    the user approves or denies meanwhile is left alone) and is audited as ``expired`` with the
    client as actor and ``reason: superseded``. Its client learns it as for any expiry:
    ``expired_token`` at the token endpoint, an error push in push mode, no ping.

    ``waiting``: how many of the client's requests were waiting for the user just before this one
    (:attr:`~django_ciba.bc_authorize.prompt_state.PromptState.pair_pending`); below the cap, the
    lookup is skipped. A request stored meanwhile by a concurrent call is missed either way (neither
    transaction sees the other's uncommitted row).
    """
    cap = ciba_settings.MAX_PENDING_PER_CLIENT_USER
    if cap is None:
        return []
    if waiting is not None and waiting + 1 <= int(cap):
        return []
    older = list(
        AuthenticationRequest.objects.pending(now)
        .for_client(auth_request.client_id)
        .for_user(auth_request.user_id)
        .exclude(pk=auth_request.pk)
        .order_by("-created_at", "-pk")
        .values_list("pk", flat=True)[int(cap) - 1 :]
    )
    superseded = []
    for pk in older:
        if lifecycle.supersede(pk, by=auth_request, now=now):
            superseded.append(pk)
    return superseded


PromptState = prompt_state.PromptState

__all__ = ["PromptState", "check_user_state", "periods", "supersede_older", "unapproved_prompts"]
