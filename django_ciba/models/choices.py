"""The choices of the client models (TextChoices)."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class DeliveryMode(models.TextChoices):
    POLL = "poll", _("Poll")
    PING = "ping", _("Ping")
    PUSH = "push", _("Push")


class AuthMethod(models.TextChoices):
    CLIENT_SECRET_BASIC = "client_secret_basic", "client_secret_basic"
    CLIENT_SECRET_POST = "client_secret_post", "client_secret_post"
    PRIVATE_KEY_JWT = "private_key_jwt", "private_key_jwt"
    TLS_CLIENT_AUTH = "tls_client_auth", "tls_client_auth"
    SELF_SIGNED_TLS_CLIENT_AUTH = "self_signed_tls_client_auth", "self_signed_tls_client_auth"


class Profile(models.TextChoices):
    """Security profiles a client may be held to (``CIBA["PROFILE"]`` for the whole OP)."""

    FAPI_CIBA = "fapi-ciba", "FAPI-CIBA"


class SubjectType(models.TextChoices):
    PUBLIC = "public", _("Public")
    PAIRWISE = "pairwise", _("Pairwise")
