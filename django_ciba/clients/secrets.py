"""Client secrets: generation, and moving stored hashes to DOT's configured ``CLIENT_SECRET_HASHER``.

An Application's secret is hashed once, when it is saved, so switching
``OAUTH2_PROVIDER["CLIENT_SECRET_HASHER"]`` to ``"ciba_sha256"`` (:mod:`django_ciba.hashers`) does
not touch existing rows. :func:`upgrade_client_secret` re-hashes a secret the next time the client
authenticates with it: only then is the plain secret at hand.
"""

from __future__ import annotations

import base64
import binascii
import logging
import secrets
from typing import Any
from urllib.parse import unquote_plus

from django.conf import settings
from django.contrib.auth.hashers import get_hasher, identify_hasher, make_password
from django.db import DatabaseError, transaction
from oauth2_provider.models import AbstractApplication
from oauth2_provider.settings import oauth2_settings

from django_ciba.clients import cache as client_cache
from django_ciba.hashers import MIN_SECRET_LENGTH, ClientSecretHasher


logger = logging.getLogger(__name__)

SECRET_BYTES = 48
"""Random bytes in a generated secret: 384 bits, 64 URL-safe characters."""


def id_token_algorithm() -> str:
    """The ID-token algorithm of a new Application: RS256 with an OIDC key, else HS256 (then DOT
    signs with the client secret, which must stay readable: not hashed)."""
    if oauth2_settings.OIDC_RSA_PRIVATE_KEY:
        return AbstractApplication.RS256_ALGORITHM
    return AbstractApplication.HS256_ALGORITHM


def generate_client_secret() -> str:
    """A new client secret: 384 random bits, URL-safe base64 (64 characters, no padding)."""
    return secrets.token_urlsafe(SECRET_BYTES)


def upgrade_client_secret(application: Any, provided_secret: str | None) -> bool:
    """Re-hash ``application``'s secret with the configured ``CLIENT_SECRET_HASHER``; True if done.

    Call it after the client authenticated with ``provided_secret``. It does nothing (False) when
    the secret is stored unhashed (``hash_client_secret=False``), is already hashed with the
    configured hasher, or is shorter than 32 characters while the target is the fast
    :class:`~django_ciba.hashers.ClientSecretHasher`: a short secret may be human-chosen and keeps
    its slow hash. It checks ``provided_secret`` against the stored hash itself (a one-time slow
    check per migrated client), so a wrong candidate can never replace the secret.

    Only ``client_secret`` is written, and only if it still holds the hash that was checked, so
    concurrent polls (or a rotation) don't overwrite each other. ``application`` is updated too.
    """
    if not provided_secret or not getattr(application, "hash_client_secret", True):
        return False
    stored = application.client_secret
    try:
        current = identify_hasher(stored)
    except ValueError:
        return False  # not hashed, or its hasher is no longer in PASSWORD_HASHERS
    try:
        target = get_hasher(oauth2_settings.CLIENT_SECRET_HASHER)
    except ValueError:
        return False  # CLIENT_SECRET_HASHER not in PASSWORD_HASHERS (check django_ciba.E041)
    if current.algorithm == target.algorithm:
        return False
    if isinstance(target, ClientSecretHasher) and len(provided_secret) < MIN_SECRET_LENGTH:
        return False
    if not current.verify(provided_secret, stored):
        return False
    new = make_password(provided_secret, hasher=target)
    try:
        with transaction.atomic():
            updated = (
                type(application)
                ._default_manager.filter(pk=application.pk, client_secret=stored)
                .update(client_secret=new)
            )
    except DatabaseError:
        logger.exception("Could not re-hash the client secret of application %s", application.pk)
        return False
    if not updated:
        return False  # another request migrated (or rotated) it first
    application.client_secret = new
    client_cache.invalidate()
    logger.info(
        "Re-hashed the client secret of application %s from %s to %s",
        application.pk,
        current.algorithm,
        target.algorithm,
    )
    return True


def _basic_credentials(request: Any) -> tuple[str, str] | None:
    """``(client_id, client_secret)`` from an HTTP Basic header, decoded as DOT's validator does."""
    headers = getattr(request, "headers", None) or {}
    auth = headers.get("HTTP_AUTHORIZATION") or headers.get("Authorization")
    if not auth:
        return None
    auth_type, _, auth_string = auth.partition(" ")
    if auth_type != "Basic" or not auth_string:
        return None
    encoding = getattr(request, "encoding", None) or settings.DEFAULT_CHARSET or "utf-8"
    try:
        decoded = base64.b64decode(auth_string).decode(encoding)
    except (TypeError, ValueError, binascii.Error, UnicodeError, LookupError):
        return None
    client_id, sep, client_secret = decoded.partition(":")
    if not sep:
        return None
    return unquote_plus(client_id), unquote_plus(client_secret)


def provided_client_secret(request: Any) -> str | None:
    """The secret an oauthlib request authenticated with: Basic header for its client, else the body."""
    client = getattr(request, "client", None)
    basic = _basic_credentials(request)
    if basic is not None and client is not None and basic[0] == getattr(client, "client_id", None):
        return basic[1]
    return getattr(request, "client_secret", None) or None


def upgrade_client_secret_from_request(request: Any) -> bool:
    """:func:`upgrade_client_secret` for an authenticated oauthlib request (``request.client``)."""
    client = getattr(request, "client", None)
    if client is None or not _may_need_upgrade(client):
        return False  # the common case, on every poll: nothing to parse, nothing to do
    return upgrade_client_secret(client, provided_client_secret(request))


def _may_need_upgrade(application: Any) -> bool:
    """Cheap pre-check: the stored hash's algorithm prefix differs from the configured hasher's."""
    if not getattr(application, "hash_client_secret", True):
        return False
    try:
        target = get_hasher(oauth2_settings.CLIENT_SECRET_HASHER)
    except ValueError:
        return False
    return str(application.client_secret or "").partition("$")[0] != target.algorithm
