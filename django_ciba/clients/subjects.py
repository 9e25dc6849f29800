"""Subject identifiers (OIDC Core §8): DOT's public ``sub`` or a pairwise one per sector.

How a ``sub`` is made lives in :mod:`django_ciba.pairwise` (re-exported here); this module adds the
reverse lookups, from a ``sub`` a client sent back to the user it names.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError

from django_ciba.models import PairwiseSubject
from django_ciba.pairwise import (
    KEY_LABEL,
    SUBJECT_MAX_LENGTH,
    compute_pairwise_subject,
    pairwise_key,
    pairwise_sector,
    pairwise_subject,
    subject_for,
)


def active_users() -> Any:
    return get_user_model()._default_manager.filter(is_active=True)


def user_by_public_subject(subject: Any, users: Any = None) -> Any | None:
    """The user a public ``sub`` (DOT's: the primary key) names, among ``users`` (active users)."""
    if not isinstance(subject, str) or not subject or subject != subject.strip() or not subject.isascii():
        return None
    users = active_users() if users is None else users
    try:
        return users.filter(pk=subject).first()
    except (ValueError, TypeError, ValidationError):  # not a valid primary key (e.g. a UUID pk)
        return None


def user_for_subject(subject: Any, application: Any, *, users: Any = None) -> Any | None:
    """The user a ``sub`` issued to ``application`` names, among ``users`` (default: active users).

    For a pairwise client only a subject of its own sector resolves (SEC-04, PRIV-01); a public
    ``sub`` (a pk) or another sector's subject gives None. For a public client, the pk lookup.
    """
    sector = pairwise_sector(application)
    if sector is None:
        return user_by_public_subject(subject, users)
    if (
        not isinstance(subject, str)
        or not 0 < len(subject) <= SUBJECT_MAX_LENGTH
        or not subject.isascii()
        or "\0" in subject
    ):
        return None
    users = active_users() if users is None else users
    owners = PairwiseSubject.objects.filter(sector=sector, subject=subject).values("user_id")
    return next(iter(users.filter(pk__in=owners)[:1]), None)


__all__ = [
    "KEY_LABEL",
    "SUBJECT_MAX_LENGTH",
    "compute_pairwise_subject",
    "pairwise_key",
    "pairwise_sector",
    "pairwise_subject",
    "subject_for",
    "user_by_public_subject",
    "user_for_subject",
]
