"""One-time use of client-signed JWTs: a ``jti`` is accepted once per client and kind (SR-14, RFC 7523).

Used ids are rows of :class:`~django_ciba.models.JwtUse` (a unique constraint makes the check
atomic across processes), kept until the JWT expires and then purged by the cleanup tasks. The
``jti`` itself is stored only as a hash.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import TYPE_CHECKING

from django.db import IntegrityError, transaction
from django.utils import timezone

from django_ciba.models import JwtUse


if TYPE_CHECKING:
    from oauth2_provider.models import Application


def _hash(jti: str) -> str:
    return hashlib.sha256(jti.encode("utf-8", "surrogatepass")).hexdigest()


def use_jti(client: Application, kind: str, jti: str, expires_at: datetime) -> bool:
    """Record ``jti`` as used until ``expires_at``; False when it was already used and is still live."""
    jti_hash = _hash(jti)
    try:
        with transaction.atomic():
            JwtUse.objects.create(client=client, kind=kind, jti_hash=jti_hash, expires_at=expires_at)
        return True
    except IntegrityError:
        # The same jti after its earlier JWT expired (and before the purge) is a new JWT.
        return bool(
            JwtUse.objects.filter(
                client=client, kind=kind, jti_hash=jti_hash, expires_at__lte=timezone.now()
            ).update(expires_at=expires_at)
        )


def purge_expired(*, now: datetime | None = None, batch_size: int = 500) -> int:
    """Delete used ids whose JWTs have expired, in batches."""
    now = now or timezone.now()
    deleted = 0
    while True:
        pks = list(JwtUse.objects.filter(expires_at__lte=now).values_list("pk", flat=True)[:batch_size])
        if pks:
            deleted += JwtUse.objects.filter(pk__in=pks).delete()[0]
        if len(pks) < batch_size:
            return deleted
