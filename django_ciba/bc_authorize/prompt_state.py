"""What :mod:`~django_ciba.bc_authorize.prompt_limits` reads about a client and a user, in one statement.

The limits ask one question per ``/bc-authorize``: how many of the user's prompts went unapproved
lately (for this client, and from every client), how many abuse reports stand against this client,
how many requests still wait for the user. Built with the ORM, that question compiled to SQL took
several times longer than the database took to answer it, on every request. So the statement is
written here once per shape (which limits are on) and database connection, with the model's own table
and column names, and every value is a parameter. One pass over the user's recent requests answers
every count; the abuse reports are a scalar subquery of the same statement.

A prompt is *unapproved* when the user was asked (``asked_user``), it was never approved, it ended
denied, expired (superseded requests are expired) or cancelled by its client (a client cannot
escape the limits by cancelling its prompts), or it is still pending past its expiry, and no
request of the same client that the user approved was approved after it was created.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from django.db import connections, router

from django_ciba.models import AbuseReport, AuthenticationRequest


@dataclass(frozen=True)
class Periods:
    """The limits that are on, as the start of each one's period (None: off)."""

    reports_since: datetime | None = None
    mine_since: datetime | None = None
    every_since: datetime | None = None
    pending: bool = False
    pair_pending: bool = False


@dataclass(frozen=True)
class PromptState:
    """The counts (0 when a limit is off) and the newest/soonest moment of each."""

    reports: int = 0
    newest_report: datetime | None = None
    mine: int = 0
    newest_mine: datetime | None = None
    every: int = 0
    newest_every: datetime | None = None
    mine_in_ceiling: int = 0
    pending: int = 0
    soonest_expiry: datetime | None = None
    #: Requests of this client still waiting for this user (not expired), before the new one.
    pair_pending: int = 0


def _columns(model: Any) -> dict[str, str]:
    return {field.name: field.column for field in model._meta.concrete_fields}


@lru_cache(maxsize=64)
def _statement(vendor: str, reports: bool, mine: bool, every: bool, pending: bool, pair: bool) -> str:
    """The SQL of one shape; ``vendor`` only keys the cache (the text is the same everywhere)."""
    del vendor
    r = _columns(AuthenticationRequest)
    table = AuthenticationRequest._meta.db_table
    status, created, expires = r["status"], r["created_at"], r["expires_at"]
    client, user, approved = r["client"], r["user"], r["approved_at"]
    # %(name)s placeholders are filled positionally below, in the order they appear.
    unapproved = (
        f"req.{r['asked_user']} = %(true)s AND req.{approved} IS NULL"
        f" AND (req.{status} IN (%(denied)s, %(expired)s, %(cancelled)s)"
        f" OR (req.{status} = %(pending)s AND req.{expires} <= %(now)s))"
        f" AND NOT EXISTS (SELECT 1 FROM {table} later WHERE later.{client} = req.{client}"
        f" AND later.{user} = %(user)s AND later.{approved} >= req.{created})"
    )
    waiting = f"req.{status} = %(pending)s AND req.{expires} > %(now)s"
    # An aggregate keeps the answer to exactly one row, even when no request row matches.
    columns: list[str] = ["COUNT(*) AS considered"]
    windows: list[str] = []
    if mine:
        condition = f"{unapproved} AND req.{created} > %(mine_since)s AND req.{client} = %(client)s"
        columns += [
            f"SUM(CASE WHEN {condition} THEN 1 ELSE 0 END) AS mine",
            f"MAX(CASE WHEN {condition} THEN req.{created} END) AS newest_mine",
        ]
        windows.append(f"req.{created} > %(mine_since)s")
    if every:
        condition = f"{unapproved} AND req.{created} > %(every_since)s"
        columns += [
            f"SUM(CASE WHEN {condition} THEN 1 ELSE 0 END) AS every",
            f"MAX(CASE WHEN {condition} THEN req.{created} END) AS newest_every",
            f"SUM(CASE WHEN {condition} AND req.{client} = %(client)s THEN 1 ELSE 0 END) AS mine_in_ceiling",
        ]
        windows.append(f"req.{created} > %(every_since)s")
    if pending:
        columns += [
            f"SUM(CASE WHEN {waiting} THEN 1 ELSE 0 END) AS pending",
            f"MIN(CASE WHEN {waiting} THEN req.{expires} END) AS soonest_expiry",
        ]
    if pair:
        pair_waiting = f"{waiting} AND req.{client} = %(client)s"
        columns.append(f"SUM(CASE WHEN {pair_waiting} THEN 1 ELSE 0 END) AS pair_pending")
    if pending or pair:
        windows.append(f"req.{status} = %(pending)s")
    if reports:
        a = _columns(AbuseReport)
        columns += [
            f"(SELECT COUNT(*) FROM {AbuseReport._meta.db_table} rep WHERE {_report_filter(a)}) AS reports",
            f"(SELECT MAX(rep.{a['created_at']}) FROM {AbuseReport._meta.db_table} rep"
            f" WHERE {_report_filter(a)}) AS newest_report",
        ]
    where = f"req.{user} = %(user)s"
    if windows:
        where += " AND (" + " OR ".join(windows) + ")"
    else:
        where += " AND 1 = 0"  # only the reports are asked: no request row is needed
    return f"SELECT {', '.join(columns)} FROM {table} req WHERE {where}"


def _report_filter(a: dict[str, str]) -> str:
    return (
        f"rep.{a['client']} = %(client)s AND rep.{a['user']} = %(user)s"
        f" AND rep.{a['resolved']} = %(false)s AND rep.{a['created_at']} > %(reports_since)s"
    )


def _positional(sql: str, values: dict[str, Any]) -> tuple[str, list[Any]]:
    """``%(name)s`` placeholders as ``%s`` with the values in order (every backend takes ``%s``)."""
    params: list[Any] = []
    parts = sql.split("%(")
    text = [parts[0]]
    for part in parts[1:]:
        name, rest = part.split(")s", 1)
        params.append(values[name])
        text.append("%s" + rest)
    return "".join(text), params


def read(application: Any, user: Any, *, now: datetime, periods: Periods) -> PromptState:
    """The state of ``user``'s prompts from ``application`` at ``now`` (one query)."""
    alias = router.db_for_read(AuthenticationRequest)
    connection = connections[alias]
    shape = (
        periods.reports_since is not None,
        periods.mine_since is not None,
        periods.every_since is not None,
        periods.pending,
        periods.pair_pending,
    )
    if not any(shape):
        return PromptState()
    ops = connection.ops
    Status = AuthenticationRequest.Status

    def moment(value: datetime | None) -> Any:
        return ops.adapt_datetimefield_value(value)

    values = {
        "true": True,
        "false": False,
        "denied": Status.DENIED.value,
        "expired": Status.EXPIRED.value,
        "cancelled": Status.CANCELLED.value,
        "pending": Status.PENDING.value,
        "now": moment(now),
        "user": user.pk,
        "client": application.pk,
        "mine_since": moment(periods.mine_since),
        "every_since": moment(periods.every_since),
        "reports_since": moment(periods.reports_since),
    }
    sql, params = _positional(_statement(connection.vendor, *shape), values)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        names = [column[0] for column in cursor.description]
        row = dict(zip(names, cursor.fetchone() or (), strict=False))
    convert = getattr(ops, "convert_datetimefield_value", None)

    def when(name: str) -> datetime | None:
        value = row.get(name)
        if value is not None and convert is not None:
            value = convert(value, None, connection)
        return value

    def count(name: str) -> int:
        return int(row.get(name) or 0)

    return PromptState(
        reports=count("reports"),
        newest_report=when("newest_report"),
        mine=count("mine"),
        newest_mine=when("newest_mine"),
        every=count("every"),
        newest_every=when("newest_every"),
        mine_in_ceiling=count("mine_in_ceiling"),
        pending=count("pending"),
        soonest_expiry=when("soonest_expiry"),
        pair_pending=count("pair_pending"),
    )


__all__ = ["Periods", "PromptState", "read"]
