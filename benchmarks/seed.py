"""Seeding with bulk inserts, in the harness process (Django set up on ``benchmarks.settings``).

Requests are written straight into the table, with auth_req_ids made by
``django_ciba.core.identifiers`` and stored, as the library does, only as their SHA-256 (ping and push
requests also keep them sealed). Filler rows (finished requests older than the retention) are
cloned from one template row by ``INSERT ... SELECT ... FROM generate_series`` in chunks: a million
rows in seconds, without a million Python objects.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.utils import timezone

from django_ciba.core import hot_path
from django_ciba.core.identifiers import hash_auth_req_id, new_auth_req_id
from django_ciba.core.sealing import seal
from django_ciba.models import AuthenticationRequest, CibaClient, DeliveryMode
from django_ciba.testing import basic_auth, create_ciba_client


Status = AuthenticationRequest.Status
BATCH = 5000


@dataclass
class Client:
    application: Any
    secret: str

    @property
    def client_id(self) -> str:
        return self.application.client_id

    @property
    def auth(self) -> str:
        return basic_auth(self.application.client_id, self.secret)


def create_users(count: int) -> list[Any]:
    """``bench-user-00001``...: login_hint targets, with unusable passwords (no hashing cost)."""
    User = get_user_model()
    users = []
    for number in range(1, count + 1):
        user = User(username=f"bench-user-{number:05d}", email=f"bench-user-{number:05d}@example.com")
        user.set_unusable_password()
        users.append(user)
    User.objects.bulk_create(users, batch_size=BATCH)
    return list(User.objects.filter(username__startswith="bench-user-").order_by("pk"))


def create_client(name: str, mode: str, *, secret_storage: str, endpoint: str = "") -> Client:
    """A confidential client with CIBA metadata (``ciba_only`` off: it may use client_credentials too).

    ``secret_storage="plain"`` keeps the secret in clear (``hash_client_secret=False``), the
    fallback when ``django_ciba.hashers`` does not exist yet; otherwise the secret is hashed with
    ``OAUTH2_PROVIDER["CLIENT_SECRET_HASHER"]`` as DOT does.
    """
    application, secret = create_ciba_client(
        name, mode=mode, notification_endpoint=endpoint, scope="openid profile email offline_access"
    )
    if secret_storage == "plain":
        type(application).objects.filter(pk=application.pk).update(
            client_secret=secret, hash_client_secret=False
        )
        application.refresh_from_db()
    return Client(application, secret)


def secret_format(client: Client) -> str:
    """How the client's secret is stored: the hasher's algorithm name, or ``plain``."""
    stored = type(client.application).objects.get(pk=client.application.pk).client_secret
    return stored.split("$", 1)[0] if "$" in stored else "plain"


def _rows(client: Client, users: list[Any], count: int, **fields: Any) -> tuple[list[str], list[Any]]:
    now = timezone.now()
    ciba: CibaClient = client.application.ciba
    callbacks = ciba.delivery_mode in (DeliveryMode.PING, DeliveryMode.PUSH)
    ids, rows = [], []
    for number in range(count):
        auth_req_id = new_auth_req_id()
        ids.append(auth_req_id)
        values = {
            "auth_req_id_hash": hash_auth_req_id(auth_req_id),
            "client": client.application,
            "user": users[number % len(users)],
            "delivery_mode": ciba.delivery_mode,
            "hint_type": "login_hint",
            "scope": "openid",
            "binding_message": "bench",
            "expires_at": now + timedelta(hours=2),
            "interval": 5,
            "status": Status.PENDING,
            "created_at": now,
            "updated_at": now,
            # Callbacks wait for the bc-authorize answer to be acknowledged; seeded requests were.
            "acknowledged_at": now if callbacks else None,
            "auth_req_id_sealed": seal(auth_req_id) if callbacks else "",
            "client_notification_token_sealed": seal(secrets.token_urlsafe(24)) if callbacks else "",
            **fields,
        }
        rows.append(AuthenticationRequest(**values))
    return ids, rows


def seed_pending(client: Client, users: list[Any], count: int) -> list[str]:
    """Pending requests with a two-hour expiry; returns their auth_req_ids."""
    ids, rows = _rows(client, users, count)
    AuthenticationRequest.objects.bulk_create(rows, batch_size=BATCH)
    return ids


def cache_pending_entries(ids: list[str]) -> int:
    """Write the hot-path pending entries (:mod:`django_ciba.core.hot_path`) of pending requests
    that lack one; returns how many were written (0 with the hot path off).

    The library writes an entry when it creates a request and puts it back (``add``) when a poll
    finds it missing; an entry lives ``ENTRY_SECONDS``. Bulk-inserted rows have none, and the
    harness polls each id only every 10 s or more (so that every answer is authorization_pending)
    with other scenarios and the reference in between: without this, nearly every measured poll
    would be an id's first poll in a minute, while a client polling at its interval finds the
    entry on 11 polls in 12.
    """
    if not hot_path.enabled():
        return 0
    cache = hot_path.cache()
    written = 0
    for start in range(0, len(ids), BATCH):
        digests = {hash_auth_req_id(auth_req_id) for auth_req_id in ids[start : start + BATCH]}
        present = cache.get_many([hot_path.pending_key(digest) for digest in digests])
        rows = AuthenticationRequest.objects.filter(
            auth_req_id_hash__in=digests, status=Status.PENDING
        ).values_list("auth_req_id_hash", "client_id", "expires_at", "interval")
        entries = {
            hot_path.pending_key(digest): hot_path.entry_value(
                client_pk=client_pk, expires_at=expires_at, interval=interval
            )
            for digest, client_pk, expires_at, interval in rows
            if hot_path.pending_key(digest) not in present
        }
        cache.set_many(entries, hot_path.ENTRY_SECONDS)
        written += len(entries)
    return written


def seed_approved(client: Client, users: list[Any], count: int) -> list[str]:
    """Approved requests (granted ``openid``), each redeemable once at the token endpoint."""
    now = timezone.now()
    ids, rows = _rows(
        client,
        users,
        count,
        status=Status.APPROVED,
        granted_scope="openid",
        auth_time=now,
        decided_at=now,
        acr="",
        amr=["pwd"],
    )
    AuthenticationRequest.objects.bulk_create(rows, batch_size=BATCH)
    return ids


def seed_pending_objects(
    client: Client, users: list[Any], count: int
) -> list[tuple[str, AuthenticationRequest]]:
    """Pending ping/push requests for the callback benchmark: ``(auth_req_id, row)`` pairs."""
    ids, rows = _rows(client, users, count)
    created = AuthenticationRequest.objects.bulk_create(rows, batch_size=BATCH)
    return list(zip(ids, created, strict=True))


def row_count() -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {AuthenticationRequest._meta.db_table}")
        return int(cursor.fetchone()[0])


def seed_finished(client: Client, users: list[Any], count: int, *, chunk: int = 100_000) -> float:
    """``count`` finished requests (consumed, expired, denied in turn) last changed 8 days ago, so
    that cleanup with the default 7-day retention deletes them all. Returns the seconds it took."""
    import time

    if count <= 0:
        return 0.0
    started = time.monotonic()
    old = timezone.now() - timedelta(days=8)
    template = AuthenticationRequest.objects.create(
        auth_req_id_hash=hash_auth_req_id(new_auth_req_id()),
        client=client.application,
        user=users[0],
        delivery_mode=DeliveryMode.POLL,
        hint_type="login_hint",
        scope="openid",
        expires_at=old,
        interval=5,
        status=Status.CONSUMED,
        granted_scope="openid",
        created_at=old,
        updated_at=old,
        decided_at=old,
        tokens_issued_at=old,
    )
    if connection.vendor != "postgresql":
        _clone_in_python(template, users, count - 1)
        return time.monotonic() - started
    table = connection.ops.quote_name(AuthenticationRequest._meta.db_table)
    columns = [f.column for f in AuthenticationRequest._meta.concrete_fields if not f.primary_key]
    special = {
        "auth_req_id_hash": "encode(sha256(convert_to(%(salt)s || g::text, 'UTF8')), 'hex')",
        "user_id": "(%(users)s::bigint[])[1 + g %% %(user_count)s]",
        "status": "(ARRAY['consumed', 'expired', 'denied'])[1 + g %% 3]",
        "created_at": "created_at - make_interval(secs => g %% 86400)",
        "updated_at": "updated_at - make_interval(secs => g %% 86400)",
    }
    names = ", ".join(connection.ops.quote_name(c) for c in columns)
    select = ", ".join(special.get(c, connection.ops.quote_name(c)) for c in columns)
    sql = (
        f"INSERT INTO {table} ({names}) SELECT {select} FROM {table} t, "
        f"generate_series(%(start)s, %(stop)s) g WHERE t.id = %(template)s"
    )
    user_ids = [user.pk for user in users]
    salt = f"filler-{secrets.token_hex(4)}-"
    done = 1  # the template itself
    while done < count:
        size = min(chunk, count - done)
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                sql,
                {
                    "salt": salt,
                    "users": user_ids,
                    "user_count": len(user_ids),
                    "start": done,
                    "stop": done + size - 1,
                    "template": template.pk,
                },
            )
        done += size
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {table}")
    return time.monotonic() - started


def _clone_in_python(template: AuthenticationRequest, users: list[Any], count: int) -> None:
    """The same filler rows as the SQL above, built in Python (SQLite: a few thousand rows only)."""
    statuses = [Status.CONSUMED, Status.EXPIRED, Status.DENIED]
    fields = {
        f.attname: getattr(template, f.attname)
        for f in AuthenticationRequest._meta.concrete_fields
        if not f.primary_key
    }
    salt = f"filler-{secrets.token_hex(4)}-"
    rows = []
    for g in range(1, count + 1):
        shift = timedelta(seconds=g % 86400)
        rows.append(
            AuthenticationRequest(
                **{
                    **fields,
                    "auth_req_id_hash": hash_auth_req_id(f"{salt}{g}"),
                    "user_id": users[g % len(users)].pk,
                    "status": statuses[g % 3],
                    "created_at": template.created_at - shift,
                    "updated_at": template.updated_at - shift,
                }
            )
        )
    AuthenticationRequest.objects.bulk_create(rows, batch_size=BATCH)
