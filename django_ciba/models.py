"""Models: per-client CIBA metadata and the authentication requests themselves."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from oauth2_provider.settings import oauth2_settings

from .querysets import AuthenticationRequestQuerySet, DeliveryQuerySet


class DeliveryMode(models.TextChoices):
    POLL = "poll", _("Poll")
    PING = "ping", _("Ping")
    PUSH = "push", _("Push")


class AuthMethod(models.TextChoices):
    CLIENT_SECRET_BASIC = "client_secret_basic", "client_secret_basic"
    CLIENT_SECRET_POST = "client_secret_post", "client_secret_post"
    PRIVATE_KEY_JWT = "private_key_jwt", "private_key_jwt"


class SubjectType(models.TextChoices):
    PUBLIC = "public", _("Public")
    PAIRWISE = "pairwise", _("Pairwise")


class CibaClient(models.Model):
    """CIBA registration metadata of one DOT Application (CIBA Core §4)."""

    application = models.OneToOneField(
        oauth2_settings.APPLICATION_MODEL,
        on_delete=models.CASCADE,
        related_name="ciba",
        verbose_name=_("application"),
    )
    delivery_mode = models.CharField(
        _("token delivery mode"),
        max_length=8,
        choices=DeliveryMode.choices,
        default=DeliveryMode.POLL,
        help_text=_("backchannel_token_delivery_mode: how the client receives the result."),
    )
    notification_endpoint = models.URLField(
        _("client notification endpoint"),
        max_length=2000,
        blank=True,
        help_text=_("backchannel_client_notification_endpoint (https); required for ping and push."),
    )
    request_signing_alg = models.CharField(
        _("request signing algorithm"),
        max_length=16,
        blank=True,
        help_text=_("backchannel_authentication_request_signing_alg; empty when the client does not sign."),
    )
    user_code_parameter = models.BooleanField(
        _("supports user_code"),
        default=False,
        help_text=_("backchannel_user_code_parameter: the client collects a user_code from the user."),
    )
    token_endpoint_auth_method = models.CharField(
        _("client authentication method"),
        max_length=32,
        choices=AuthMethod.choices,
        blank=True,
        default=AuthMethod.CLIENT_SECRET_BASIC,
        help_text=_("token_endpoint_auth_method, enforced at both endpoints; empty accepts any DOT method."),
    )
    scope = models.TextField(
        _("allowed scopes"),
        blank=True,
        help_text=_(
            "Space-separated scopes this client may request; empty allows every scope the OP offers."
        ),
    )
    token_endpoint_auth_signing_alg = models.CharField(
        _("client assertion algorithm"),
        max_length=16,
        blank=True,
        help_text=_("token_endpoint_auth_signing_alg for private_key_jwt; empty accepts any supported one."),
    )
    jwks = models.JSONField(
        _("JWK set"),
        null=True,
        blank=True,
        help_text=_("The client's public keys by value (jwks); use either this or the JWK set URL."),
    )
    jwks_uri = models.URLField(
        _("JWK set URL"),
        max_length=2000,
        blank=True,
        help_text=_("jwks_uri (https): where the client publishes its public keys."),
    )
    subject_type = models.CharField(
        _("subject type"),
        max_length=8,
        choices=SubjectType.choices,
        default=SubjectType.PUBLIC,
        help_text=_("subject_type: pairwise gives this client's sector its own sub for each user."),
    )
    sector_identifier_uri = models.URLField(
        _("sector identifier URL"),
        max_length=2000,
        blank=True,
        help_text=_(
            "sector_identifier_uri (https): a JSON list of this client's URLs; its host is the sector."
        ),
    )
    metadata = models.JSONField(
        _("other registered metadata"),
        default=dict,
        blank=True,
        help_text=_("Other client metadata sent at dynamic registration, returned as registered."),
    )
    registration_access_token_hash = models.CharField(
        _("registration access token hash"), max_length=64, blank=True, editable=False
    )
    ciba_only = models.BooleanField(
        _("CIBA only"),
        default=False,
        help_text=_("Refuse the client_credentials grant for this application (CIBA and refresh only)."),
    )
    enabled = models.BooleanField(_("enabled"), default=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("CIBA client")
        verbose_name_plural = _("CIBA clients")

    def __str__(self) -> str:
        return f"CIBA client #{self.pk} ({self.delivery_mode})"

    @property
    def allowed_scopes(self) -> set[str] | None:
        return set(self.scope.split()) if self.scope.strip() else None

    @property
    def has_keys(self) -> bool:
        return bool(self.jwks or self.jwks_uri)

    @property
    def sector_identifier(self) -> str:
        """The host that pairwise subjects are computed for (REG-06), "" when none can be told.

        ``sector_identifier_uri`` wins; otherwise the notification endpoint's host for push
        clients and the ``jwks_uri`` host for poll and ping clients.
        """
        from urllib.parse import urlsplit

        if self.sector_identifier_uri:
            source = self.sector_identifier_uri
        elif self.delivery_mode == DeliveryMode.PUSH:
            source = self.notification_endpoint
        else:
            source = self.jwks_uri
        return (urlsplit(source).hostname or "").lower() if source else ""

    def clean(self) -> None:
        if self.delivery_mode in (DeliveryMode.PING, DeliveryMode.PUSH):
            if not self.notification_endpoint:
                raise ValidationError(
                    {"notification_endpoint": _("Ping and push clients need a notification endpoint.")}
                )
            if not self.notification_endpoint.lower().startswith("https://"):
                raise ValidationError(
                    {"notification_endpoint": _("The notification endpoint must be https.")}
                )
        if self.notification_endpoint:
            from .outbound import UnsafeDestination, validate_endpoint_url

            try:
                validate_endpoint_url(self.notification_endpoint)  # SEC-01, SEC-05
            except UnsafeDestination as exc:
                raise ValidationError({"notification_endpoint": str(exc)}) from exc
        if self.request_signing_alg.lower() == "none":
            raise ValidationError({"request_signing_alg": _("'none' is not a signing algorithm.")})
        self._clean_keys()

    def _clean_keys(self) -> None:
        from .client_keys import InvalidClientKeys, parse_jwks
        from .outbound import UnsafeDestination, validate_endpoint_url

        if self.jwks and self.jwks_uri:
            raise ValidationError({"jwks": _("Register either a JWK set or a JWK set URL, not both.")})
        if self.jwks:
            try:
                parse_jwks(self.jwks)
            except InvalidClientKeys as exc:
                raise ValidationError({"jwks": str(exc)}) from exc
        for field in ("jwks_uri", "sector_identifier_uri"):
            if getattr(self, field):
                try:
                    validate_endpoint_url(getattr(self, field))
                except UnsafeDestination as exc:
                    raise ValidationError({field: str(exc)}) from exc
        if self.token_endpoint_auth_method == AuthMethod.PRIVATE_KEY_JWT and not self.has_keys:
            raise ValidationError(
                {"token_endpoint_auth_method": _("private_key_jwt needs a JWK set or a JWK set URL.")}
            )
        if self.request_signing_alg and not self.has_keys:
            raise ValidationError(
                {"request_signing_alg": _("Signed requests need a JWK set or a JWK set URL.")}
            )
        if self.subject_type == SubjectType.PAIRWISE and not self.sector_identifier:
            raise ValidationError(
                {
                    "subject_type": _(
                        "Pairwise subjects need a sector: a JWK set URL (poll, ping), the notification "
                        "endpoint (push) or a sector identifier URL."
                    )
                }
            )


class AuthenticationRequest(models.Model):
    """One CIBA authentication request. The auth_req_id itself is never stored, only its hash."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        APPROVED = "approved", _("Approved")
        DENIED = "denied", _("Denied")
        EXPIRED = "expired", _("Expired")
        CONSUMED = "consumed", _("Tokens issued")
        FAILED = "failed", _("Failed")

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
    # Kept sealed (encrypted, see django_ciba.sealing) for ping and push callbacks only.
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
    granted_scope = models.TextField(_("granted scope"), blank=True)
    acr = models.CharField(_("acr"), max_length=255, blank=True)
    amr = models.JSONField(_("amr"), default=list, blank=True)
    auth_time = models.DateTimeField(_("authenticated at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now, editable=False)
    updated_at = models.DateTimeField(_("updated"), default=timezone.now)
    decided_at = models.DateTimeField(_("decided at"), null=True, blank=True)
    tokens_issued_at = models.DateTimeField(_("tokens issued at"), null=True, blank=True)

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
        ]

    def __str__(self) -> str:
        return f"Authentication request #{self.pk}"

    @property
    def scopes(self) -> list[str]:
        return self.scope.split()

    @property
    def granted_scopes(self) -> list[str]:
        return self.granted_scope.split()

    def get_client_notification_token(self) -> str:
        """The client_notification_token in clear ("" when none was sent)."""
        from .sealing import unseal

        return unseal(self.client_notification_token_sealed) if self.client_notification_token_sealed else ""

    def get_auth_req_id(self) -> str:
        """The auth_req_id in clear; kept (sealed) for ping and push requests only, else ""."""
        from .sealing import unseal

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


class PairwiseSubject(models.Model):
    """The ``sub`` a user has within one sector (pairwise subject identifiers, OIDC Core §8.1)."""

    sector = models.CharField(_("sector"), max_length=255)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+", verbose_name=_("user")
    )
    subject = models.CharField(_("subject"), max_length=64)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("pairwise subject")
        verbose_name_plural = _("pairwise subjects")
        constraints = [
            models.UniqueConstraint(fields=["sector", "user"], name="ciba_pairwise_sector_user"),
            models.UniqueConstraint(fields=["sector", "subject"], name="ciba_pairwise_sector_sub"),
        ]

    def __str__(self) -> str:
        return f"Pairwise subject #{self.pk} ({self.sector})"


class InitialAccessToken(models.Model):
    """Lets its holder register clients dynamically (RFC 7591 §3); only the hash is stored."""

    token_hash = models.CharField(_("token hash"), max_length=64, unique=True, editable=False)
    label = models.CharField(_("label"), max_length=255, blank=True)
    expires_at = models.DateTimeField(_("expires at"), null=True, blank=True)
    uses_left = models.PositiveIntegerField(
        _("registrations left"), null=True, blank=True, help_text=_("Empty: unlimited.")
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("initial access token")
        verbose_name_plural = _("initial access tokens")

    def __str__(self) -> str:
        return f"Initial access token #{self.pk}" + (f" ({self.label})" if self.label else "")
