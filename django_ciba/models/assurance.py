"""What an approval established about the user's authentication, kept for the refresh grant."""

from __future__ import annotations

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class TokenAssurance(models.Model):
    """The ``acr``, ``amr`` and ``auth_time`` of the approval that started a refresh-token family,
    and the authorization details it granted (RFC 9396).

    DOT keeps one ``token_family`` across refresh-token rotations, so ID tokens minted by the
    refresh grant carry the original authentication's claims (OpenID Connect Core 12.2), however
    long after the authentication request itself was cleaned up. Holds no secret.
    """

    token_family = models.UUIDField(_("refresh token family"), unique=True, editable=False)
    auth_request = models.ForeignKey(
        "django_ciba.AuthenticationRequest",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        editable=False,
        verbose_name=_("authentication request"),
    )
    acr = models.CharField(_("acr"), max_length=255, blank=True, editable=False)
    amr = models.JSONField(_("amr"), default=list, blank=True, editable=False)
    auth_time = models.DateTimeField(_("authenticated at"), null=True, blank=True, editable=False)
    #: RFC 9396 §6: what was granted; a refresh request may only ask for a part of it.
    authorization_details = models.JSONField(
        _("granted authorization details"), default=list, blank=True, editable=False
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now, editable=False)

    class Meta:
        verbose_name = _("token assurance")
        verbose_name_plural = _("token assurances")

    def __str__(self) -> str:
        return f"Token assurance #{self.pk}"
