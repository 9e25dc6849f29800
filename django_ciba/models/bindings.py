"""Sender-constrained tokens: the key or certificate a DOT token is bound to (RFC 9449, RFC 8705)."""

from __future__ import annotations

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from oauth2_provider.settings import oauth2_settings


class TokenBinding(models.Model):
    """What one access or refresh token of DOT is bound to: a DPoP key, a TLS client certificate.

    DOT's token models are swappable and are not changed: this row sits next to the token and goes
    with it (deleted with it). ``jkt`` is the RFC 7638 thumbprint of the DPoP public key
    (``cnf.jkt``, RFC 9449 §6.1); ``x5t_s256`` the SHA-256 thumbprint of the certificate
    (``cnf.x5t#S256``, RFC 8705 §3.1). Exactly one token is named. Holds no secret.
    """

    access_token = models.OneToOneField(
        oauth2_settings.ACCESS_TOKEN_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="ciba_binding",
        editable=False,
        verbose_name=_("access token"),
    )
    refresh_token = models.OneToOneField(
        oauth2_settings.REFRESH_TOKEN_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="ciba_binding",
        editable=False,
        verbose_name=_("refresh token"),
    )
    jkt = models.CharField(_("DPoP key thumbprint (jkt)"), max_length=64, blank=True, editable=False)
    x5t_s256 = models.CharField(
        _("certificate thumbprint (x5t#S256)"), max_length=64, blank=True, editable=False
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now, editable=False)

    class Meta:
        verbose_name = _("token binding")
        verbose_name_plural = _("token bindings")
        constraints = [
            models.CheckConstraint(
                condition=models.Q(access_token__isnull=False, refresh_token__isnull=True)
                | models.Q(access_token__isnull=True, refresh_token__isnull=False),
                name="ciba_binding_one_token",
            ),
        ]

    def __str__(self) -> str:
        return f"Token binding #{self.pk}"

    @property
    def confirmation(self) -> dict[str, str]:
        """The ``cnf`` claim of the bound token (introspection, RFC 7800 §3.1)."""
        cnf = {}
        if self.jkt:
            cnf["jkt"] = self.jkt
        if self.x5t_s256:
            cnf["x5t#S256"] = self.x5t_s256
        return cnf
