"""Models of dynamic registration: pairwise subjects and initial access tokens."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


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
