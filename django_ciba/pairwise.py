"""Pairwise subject identifiers (OIDC Core §8.1): the ``sub`` a user has within one sector.

A client registered with ``subject_type=pairwise`` gets, for each user, a ``sub`` of its sector
(REG-06) instead of DOT's public one (``str(user.pk)``): base64url(HMAC-SHA256(key, sector + NUL +
pk)) without padding, computed once and then kept in :class:`~django_ciba.models.PairwiseSubject`,
so it stays the same when the key changes later. The key is ``CIBA["PAIRWISE_SALT"]`` or, when that
is unset, one derived from ``SECRET_KEY``.

Below :mod:`django_ciba.lifecycle` so that what is signed at approval (approval receipts,
:mod:`django_ciba.receipts`) names the user as the ID tokens do; :mod:`django_ciba.clients.subjects`
re-exports these functions and adds the reverse lookups.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

from django.conf import settings
from django.db import IntegrityError, router, transaction
from django.utils.encoding import force_bytes

from django_ciba.core.conf import ciba_settings
from django_ciba.models import CibaClient, PairwiseSubject, SubjectType


#: Label the pairwise key is derived from ``SECRET_KEY`` with, when ``PAIRWISE_SALT`` is unset.
KEY_LABEL = b"django_ciba.clients.subjects.pairwise-key"
SUBJECT_MAX_LENGTH: int = getattr(PairwiseSubject._meta.get_field("subject"), "max_length", None) or 64


def pairwise_sector(application: Any) -> str | None:
    """The sector ``application`` gets pairwise subjects for; None when its subjects are public.

    Reads ``application.ciba`` (joined by the usual lookups). A registration that is disabled keeps
    its subject type: the client's tokens still in use must not switch to the public ``sub``. A
    pairwise client without any sector host (only possible when created without validation) gets
    a sector of its own, ``client:<client_id>``, never the public ``sub``.
    """
    try:
        ciba = application.ciba
    except (CibaClient.DoesNotExist, AttributeError):
        return None
    if ciba is None or ciba.subject_type != SubjectType.PAIRWISE:
        return None
    return ciba.sector_identifier or f"client:{application.client_id}"


def pairwise_key() -> bytes:
    """The HMAC key of new pairwise subjects: ``PAIRWISE_SALT``, else derived from ``SECRET_KEY``."""
    salt = ciba_settings.PAIRWISE_SALT
    if salt:
        return force_bytes(salt)
    return hmac.new(force_bytes(settings.SECRET_KEY), KEY_LABEL, hashlib.sha256).digest()


def compute_pairwise_subject(sector: str, user_pk: Any) -> str:
    """A fresh pairwise ``sub`` (43 characters of base64url); see :func:`subject_for`."""
    message = f"{sector}\0{user_pk}".encode()
    digest = hmac.new(pairwise_key(), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _stored_subject(sector: str, user_pk: Any, using: str | None = None) -> str | None:
    rows = PairwiseSubject.objects.db_manager(using).filter(sector=sector, user_id=user_pk)
    # (sector, user) is unique: a slice, not first(), spares the ORDER BY.
    return next(iter(rows.values_list("subject", flat=True)[:1]), None)


def pairwise_subject(user: Any, sector: str) -> str:
    """The user's ``sub`` within ``sector``: the stored one, else a new one, stored (race-safe)."""
    stored = _stored_subject(sector, user.pk)
    if stored is not None:
        return stored
    subject = compute_pairwise_subject(sector, user.pk)
    using = router.db_for_write(PairwiseSubject)
    try:
        with transaction.atomic(using=using):
            PairwiseSubject.objects.db_manager(using).create(sector=sector, user_id=user.pk, subject=subject)
    except IntegrityError:
        # Another request stored this (sector, user) first: use its row, read where it was written.
        stored = _stored_subject(sector, user.pk, using=using)
        if stored is None:
            raise
        return stored
    return subject


def subject_for(user: Any, application: Any) -> str:
    """The ``sub`` that names ``user`` to ``application``: pairwise for its sector, else the pk."""
    sector = pairwise_sector(application)
    if sector is None:
        return str(user.pk)
    return pairwise_subject(user, sector)


__all__ = [
    "KEY_LABEL",
    "SUBJECT_MAX_LENGTH",
    "compute_pairwise_subject",
    "pairwise_key",
    "pairwise_sector",
    "pairwise_subject",
    "subject_for",
]
