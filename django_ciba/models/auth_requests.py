"""Per-request models: authentication requests, their outbox deliveries, used JWT ids."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from oauth2_provider.settings import oauth2_settings

from django_ciba.models.choices import DeliveryMode
from django_ciba.models.querysets import AuthenticationRequestQuerySet, DeliveryQuerySet


class AuthenticationRequest(models.Model):
    """One CIBA authentication request. The auth_req_id itself is never stored, only its hash."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        APPROVED = "approved", _("Approved")
        DENIED = "denied", _("Denied")
        EXPIRED = "expired", _("Expired")
        CONSUMED = "consumed", _("Tokens issued")
        FAILED = "failed", _("Failed")
        CANCELLED = "cancelled", _("Cancelled by the client")

    auth_req_id_hash = models.CharField(_("auth_req_id hash"), max_length=64, editable=False)
    client = models.ForeignKey(
        oauth2_settings.APPLICATION_MODEL,
        on_delete=models.CASCADE,
        related_name="ciba_requests",
        verbose_name=_("client"),
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="ciba_requests",
        verbose_name=_("user"),
    )
    delivery_mode = models.CharField(_("delivery mode"), max_length=8, choices=DeliveryMode.choices)
    hint_type = models.CharField(_("hint type"), max_length=20, blank=True)
    scope = models.TextField(_("requested scope"))
    acr_values = models.CharField(_("requested acr values"), max_length=255, blank=True)
    binding_message = models.TextField(_("binding message"), blank=True)
    requested_expiry = models.PositiveIntegerField(_("requested expiry (s)"), null=True, blank=True)
    expires_at = models.DateTimeField(_("expires at"))
    interval = models.PositiveIntegerField(_("polling interval (s)"))
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.PENDING)
    # False when a decision policy decided at once: nobody was prompted (approval-fatigue counts).
    asked_user = models.BooleanField(
        _("user prompted"),
        default=False,
        help_text=_("The user's authentication device was asked; False when a decision policy decided."),
    )
    # Kept sealed (encrypted, see django_ciba.core.sealing) for ping and push callbacks only.
    auth_req_id_sealed = models.TextField(_("sealed auth_req_id"), blank=True, editable=False)
    client_notification_token_sealed = models.TextField(
        _("sealed client notification token"), blank=True, editable=False
    )
    acknowledged_at = models.DateTimeField(
        _("acknowledged at"),
        null=True,
        blank=True,
        editable=False,
        help_text=_("When the bc-authorize answer announcing this request was sent to the client."),
    )
    access_token = models.ForeignKey(
        oauth2_settings.ACCESS_TOKEN_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        editable=False,
        verbose_name=_("pushed access token"),
    )
    binding_jkt = models.CharField(
        _("bound key (jkt)"),
        max_length=64,
        blank=True,
        editable=False,
        help_text=_(
            "The JWK thumbprint the client named at bc-authorize (dpop_jkt): its tokens are bound to it."
        ),
    )
    binding_x5t = models.CharField(
        _("bound certificate (x5t#S256)"),
        max_length=64,
        blank=True,
        editable=False,
        help_text=_("The thumbprint of the TLS client certificate presented at bc-authorize."),
    )
    authorization_details = models.JSONField(
        _("authorization details"),
        default=list,
        blank=True,
        editable=False,
        help_text=_("The validated authorization_details the client sent (RFC 9396), as data."),
    )
    granted_authorization_details = models.JSONField(
        _("granted authorization details"),
        null=True,
        blank=True,
        editable=False,
        help_text=_(
            "The part of the authorization details the user approved; empty until a decision (RFC 9396)."
        ),
    )
    approval_receipt = models.TextField(
        _("approval receipt"),
        blank=True,
        editable=False,
        help_text=_("The signed approval receipt (a JWS) issued when the request was approved."),
    )
    approval_receipt_id = models.CharField(
        _("approval receipt id"),
        max_length=64,
        blank=True,
        editable=False,
        help_text=_("The jti of the approval receipt; the tokens issued for the approval name it."),
    )
    reminders_sent = models.PositiveSmallIntegerField(
        _("reminders sent"), default=0, editable=False, help_text=_("Reminders sent to the user's device.")
    )
    reminded_at = models.DateTimeField(_("last reminded at"), null=True, blank=True, editable=False)
    granted_scope = models.TextField(_("granted scope"), blank=True)
    acr = models.CharField(_("acr"), max_length=255, blank=True)
    amr = models.JSONField(_("amr"), default=list, blank=True)
    auth_time = models.DateTimeField(_("authenticated at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now, editable=False)
    updated_at = models.DateTimeField(_("updated"), default=timezone.now)
    decided_at = models.DateTimeField(_("decided at"), null=True, blank=True)
    approved_at = models.DateTimeField(
        _("approved at"),
        null=True,
        blank=True,
        help_text=_("When the request was approved, by anyone; kept if the approval is later undone."),
    )
    tokens_issued_at = models.DateTimeField(_("tokens issued at"), null=True, blank=True)
    cancelled_at = models.DateTimeField(_("cancelled at"), null=True, blank=True, editable=False)

    objects = AuthenticationRequestQuerySet.as_manager()

    class Meta:
        verbose_name = _("authentication request")
        verbose_name_plural = _("authentication requests")
        constraints = [
            # Token polls look requests up by the hash of their auth_req_id.
            models.UniqueConstraint(fields=["auth_req_id_hash"], name="ciba_authreq_hash_uniq"),
        ]
        indexes = [
            # The authentication device lists a user's pending requests.
            models.Index(fields=["user", "status", "expires_at"], name="ciba_authreq_user_pending"),
            # Expiry and cleanup scan by status and expiry.
            models.Index(fields=["status", "expires_at"], name="ciba_authreq_status_expiry"),
            # The abuse controls count a user's recent prompts per client (bc_authorize.prompt_limits).
            models.Index(fields=["user", "client", "created_at"], name="ciba_authreq_user_client"),
        ]

    def __str__(self) -> str:
        return f"Authentication request #{self.pk}"

    @property
    def scopes(self) -> list[str]:
        return self.scope.split()

    @property
    def granted_scopes(self) -> list[str]:
        return self.granted_scope.split()

    @property
    def granted_details(self) -> list[dict]:
        """The authorization details the approval grants: the part the user approved, or, for a
        request approved before a part could be chosen, everything requested."""
        granted = self.granted_authorization_details
        return list(self.authorization_details or []) if granted is None else list(granted)

    def get_client_notification_token(self) -> str:
        """The client_notification_token in clear ("" when none was sent)."""
        from django_ciba.core.sealing import unseal

        return unseal(self.client_notification_token_sealed) if self.client_notification_token_sealed else ""

    def get_auth_req_id(self) -> str:
        """The auth_req_id in clear; kept (sealed) for ping and push requests only, else ""."""
        from django_ciba.core.sealing import unseal

        return unseal(self.auth_req_id_sealed) if self.auth_req_id_sealed else ""

    def is_expired(self, now: datetime | None = None) -> bool:
        return (now or timezone.now()) >= self.expires_at

    def seconds_left(self, now: datetime | None = None) -> int:
        return max(0, int((self.expires_at - (now or timezone.now())).total_seconds()))


class Delivery(models.Model):
    """The outbox: one message to deliver, written in the same transaction as what caused it.

    A worker claims a due row (``next_attempt_at`` in the past) by pushing ``next_attempt_at`` one
    lease ahead, delivers it, and records the outcome; a crashed worker's row simply becomes due
    again and the periodic sweep hands it to another worker. Nothing here holds a secret in clear.
    """

    class Kind(models.TextChoices):
        DEVICE = "device", _("Authentication device notification")
        PING = "ping", _("Ping callback")
        PUSH_TOKENS = "push_tokens", _("Push callback (tokens)")
        PUSH_ERROR = "push_error", _("Push callback (error)")

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        DELIVERED = "delivered", _("Delivered")
        FAILED = "failed", _("Failed")
        CANCELLED = "cancelled", _("Cancelled")

    auth_request = models.ForeignKey(
        AuthenticationRequest,
        on_delete=models.CASCADE,
        related_name="deliveries",
        verbose_name=_("authentication request"),
    )
    kind = models.CharField(_("kind"), max_length=12, choices=Kind.choices)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.PENDING)
    error = models.CharField(
        _("pushed error"), max_length=32, blank=True, help_text=_("The error code of a push error payload.")
    )
    reminder = models.PositiveSmallIntegerField(
        _("reminder"),
        default=0,
        help_text=_("For a device notification: 0 for the first one, n for the request's n-th reminder."),
    )
    payload_sealed = models.TextField(_("sealed payload"), blank=True, editable=False)
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    next_attempt_at = models.DateTimeField(_("next attempt at"), default=timezone.now)
    last_status_code = models.PositiveSmallIntegerField(_("last HTTP status"), null=True, blank=True)
    last_error = models.CharField(_("last error"), max_length=255, blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now, editable=False)
    updated_at = models.DateTimeField(_("updated"), default=timezone.now)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    objects = DeliveryQuerySet.as_manager()

    class Meta:
        verbose_name = _("delivery")
        verbose_name_plural = _("deliveries")
        indexes = [
            # The sweep looks for pending deliveries that are due.
            models.Index(fields=["status", "next_attempt_at"], name="ciba_delivery_due"),
        ]

    def __str__(self) -> str:
        return f"Delivery #{self.pk} ({self.kind}, {self.status})"


class JwtUse(models.Model):
    """A ``jti`` already accepted from a client, kept until the JWT expires (SR-14, RFC 7523 §3)."""

    class Kind(models.TextChoices):
        REQUEST_OBJECT = "request", _("Signed authentication request")
        CLIENT_ASSERTION = "assertion", _("Client assertion")

    client = models.ForeignKey(
        oauth2_settings.APPLICATION_MODEL,
        on_delete=models.CASCADE,
        related_name="+",
        verbose_name=_("client"),
    )
    kind = models.CharField(_("kind"), max_length=10, choices=Kind.choices)
    jti_hash = models.CharField(_("jti hash"), max_length=64)
    expires_at = models.DateTimeField(_("expires at"))

    class Meta:
        verbose_name = _("used JWT id")
        verbose_name_plural = _("used JWT ids")
        constraints = [
            models.UniqueConstraint(fields=["client", "kind", "jti_hash"], name="ciba_jwtuse_uniq"),
        ]
        indexes = [models.Index(fields=["expires_at"], name="ciba_jwtuse_expiry")]

    def __str__(self) -> str:
        return f"Used JWT id #{self.pk} ({self.kind})"


class RequestEvent(models.Model):
    """The audit trail: one row per transition of a request, written in the same transaction."""

    auth_request = models.ForeignKey(
        AuthenticationRequest,
        on_delete=models.CASCADE,
        related_name="events",
        verbose_name=_("authentication request"),
    )
    #: A stable event name (``created``, ``approved``, ``denied``, ...; see django_ciba.audit).
    event = models.CharField(_("event"), max_length=32)
    #: Who or what caused it: ``client:<client_id>``, ``user:<pk>``, ``operator:<pk>``,
    #: ``policy:<name>`` or ``system``.
    actor = models.CharField(_("actor"), max_length=128)
    detail = models.JSONField(_("detail"), default=dict, blank=True)
    created_at = models.DateTimeField(_("at"), default=timezone.now, editable=False)

    class Meta:
        verbose_name = _("request event")
        verbose_name_plural = _("request events")
        ordering = ["created_at", "pk"]
        indexes = [models.Index(fields=["auth_request", "created_at"], name="ciba_event_request")]

    def __str__(self) -> str:
        return f"{self.event} by {self.actor}"
