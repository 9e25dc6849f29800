"""The authorization details (RFC 9396) one access token of DOT was issued with."""

from __future__ import annotations

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from oauth2_provider.settings import oauth2_settings


class TokenAuthorizationDetails(models.Model):
    """What one access token grants in ``authorization_details`` (RFC 9396 §7), for introspection
    (§9.2). DOT's token models are swappable and are not changed: this row sits next to the token
    and is deleted with it. ``receipt_id`` refers to the approval receipt the token was issued for.
    A token issued with neither details nor a receipt has no row. Holds no secret.
    """

    access_token = models.OneToOneField(
        oauth2_settings.ACCESS_TOKEN_MODEL,
        on_delete=models.CASCADE,
        related_name="ciba_authorization_details",
        editable=False,
        verbose_name=_("access token"),
    )
    details = models.JSONField(_("authorization details"), default=list, editable=False)
    receipt_id = models.CharField(
        _("approval receipt id"),
        max_length=64,
        blank=True,
        editable=False,
        help_text=_("The jti of the approval receipt this token was issued for; a single-use reference."),
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now, editable=False)

    class Meta:
        verbose_name = _("token authorization details")
        verbose_name_plural = _("token authorization details")

    def __str__(self) -> str:
        return f"Token authorization details #{self.pk}"
