"""Models of the user's side: Web Push subscriptions, abuse reports, operator pre-authorizations."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from oauth2_provider.settings import oauth2_settings


class WebPushSubscription(models.Model):
    """A browser's Web Push subscription (RFC 8030/8291) for one user and device."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="ciba_webpush_subscriptions",
        verbose_name=_("user"),
    )
    # The push service URL is a capability (whoever knows it may push): never shown in full.
    endpoint = models.URLField(_("push endpoint"), max_length=2000, unique=True)
    p256dh = models.CharField(_("p256dh key"), max_length=200)
    auth = models.CharField(_("auth secret"), max_length=100)
    device = models.CharField(_("device"), max_length=255, blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True)

    class Meta:
        verbose_name = _("Web Push subscription")
        verbose_name_plural = _("Web Push subscriptions")

    def __str__(self) -> str:
        return f"Web Push subscription #{self.pk}"


class AbuseReport(models.Model):
    """A user said "I did not request this" about a request: it was denied and the client reported."""

    auth_request = models.ForeignKey(
        "django_ciba.AuthenticationRequest",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="abuse_reports",
        verbose_name=_("authentication request"),
    )
    client = models.ForeignKey(
        oauth2_settings.APPLICATION_MODEL,
        on_delete=models.CASCADE,
        related_name="ciba_abuse_reports",
        verbose_name=_("client"),
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="ciba_abuse_reports",
        verbose_name=_("reported by"),
    )
    binding_message = models.TextField(_("binding message"), blank=True)
    created_at = models.DateTimeField(_("reported at"), default=timezone.now, editable=False)
    resolved = models.BooleanField(_("resolved"), default=False)
    operator_note = models.TextField(_("operator note"), blank=True)

    class Meta:
        verbose_name = _("abuse report")
        verbose_name_plural = _("abuse reports")
        indexes = [models.Index(fields=["client", "user", "created_at"], name="ciba_abuse_client_user")]

    def __str__(self) -> str:
        return f"Abuse report #{self.pk}"


class PreAuthorization(models.Model):
    """An operator's standing decision: requests from ``client`` (for ``user``, or for everyone)
    asking only for scopes within ``scope`` are approved without asking the user."""

    client = models.ForeignKey(
        oauth2_settings.APPLICATION_MODEL,
        on_delete=models.CASCADE,
        related_name="ciba_preauthorizations",
        verbose_name=_("client"),
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="ciba_preauthorizations",
        verbose_name=_("user"),
        help_text=_("Empty: every user."),
    )
    scope = models.TextField(
        _("scopes"),
        help_text=_("Space-separated scopes; a request asking for any other scope is not covered."),
    )
    expires_at = models.DateTimeField(_("expires at"), null=True, blank=True, help_text=_("Empty: never."))
    enabled = models.BooleanField(_("enabled"), default=True)
    note = models.CharField(_("note"), max_length=255, blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now, editable=False)

    class Meta:
        verbose_name = _("pre-authorization")
        verbose_name_plural = _("pre-authorizations")

    def __str__(self) -> str:
        return f"Pre-authorization #{self.pk}"

    @property
    def scopes(self) -> set[str]:
        return set(self.scope.split())
