"""Client-side models: the CIBA registration metadata of a DOT application."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _
from oauth2_provider.settings import oauth2_settings

from django_ciba.core.tls_client_auth import registration_problem as tls_registration_problem
from django_ciba.models.choices import AuthMethod, DeliveryMode, Profile, SubjectType
from django_ciba.models.querysets import CibaClientQuerySet
from django_ciba.models.sectors import SECTOR_FIELDS, legacy_sector, proven_sector, sector_problem


#: The longest ``max_requested_expiry`` a client may be given: 7 days, in seconds.
MAX_REQUESTED_EXPIRY = 7 * 24 * 3600

# The choices are re-exported: callers name them from this module too.
__all__ = ["AuthMethod", "CibaClient", "CibaClientManager", "DeliveryMode", "Profile", "SubjectType"]


class CibaClientManager(models.Manager.from_queryset(CibaClientQuerySet)):  # type: ignore[misc]
    """Finds an application's CIBA registration: every caller asks through these two methods."""

    def registration_of(self, application: Any) -> CibaClient | None:
        """The application's CIBA registration, enabled or not; None when it has none."""
        if application is None:
            return None
        try:
            return application.ciba  # the reverse one-to-one, cached on the application
        except self.model.DoesNotExist:
            return None

    def get_ciba_client(self, application: Any) -> CibaClient | None:
        """The application's CIBA registration if it is enabled, else None."""
        ciba = self.registration_of(application)
        return ciba if ciba is not None and ciba.enabled else None


class CibaClient(models.Model):
    """CIBA registration metadata of one DOT Application (CIBA Core §4)."""

    objects = CibaClientManager()

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
    rate_limit_requests = models.PositiveIntegerField(
        _("rate limit: requests"),
        null=True,
        blank=True,
        help_text=_(
            "At most this many bc-authorize requests per rate limit period. Empty: "
            "CIBA['LIMITS']['CLIENT_RATE'] (off by default); 0: no limit for this client."
        ),
    )
    rate_limit_period = models.PositiveIntegerField(
        _("rate limit: period (s)"),
        null=True,
        blank=True,
        help_text=_("The period of this client's rate limit, in seconds."),
    )
    max_requested_expiry = models.PositiveIntegerField(
        _("longest requested expiry (s)"),
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_REQUESTED_EXPIRY)],
        help_text=_(
            "The longest requested_expiry granted to this client, in seconds, up to 7 days (an agent "
            "waiting hours for its user). Empty: CIBA['MAX_EXPIRES_IN']."
        ),
    )
    id_token_signed_response_alg = models.CharField(
        _("ID token signing algorithm"),
        max_length=8,
        blank=True,
        help_text=_("id_token_signed_response_alg (RS256, PS256 or ES256); empty: the application's."),
    )
    tls_client_auth_subject_dn = models.CharField(
        _("certificate subject DN"),
        max_length=1000,
        blank=True,
        help_text=_("tls_client_auth: the subject distinguished name of the client's certificate."),
    )
    tls_client_auth_san_dns = models.CharField(
        _("certificate SAN (DNS)"), max_length=255, blank=True, help_text=_("tls_client_auth_san_dns")
    )
    tls_client_auth_san_uri = models.CharField(
        _("certificate SAN (URI)"), max_length=2000, blank=True, help_text=_("tls_client_auth_san_uri")
    )
    tls_client_auth_san_ip = models.CharField(
        _("certificate SAN (IP)"), max_length=45, blank=True, help_text=_("tls_client_auth_san_ip")
    )
    tls_client_auth_san_email = models.CharField(
        _("certificate SAN (e-mail)"), max_length=255, blank=True, help_text=_("tls_client_auth_san_email")
    )
    tls_client_certificate_bound_access_tokens = models.BooleanField(
        _("certificate-bound tokens"),
        default=False,
        help_text=_("Bind this client's tokens to its TLS client certificate (RFC 8705 §3)."),
    )
    dpop_bound_access_tokens = models.BooleanField(
        _("DPoP-bound tokens"),
        default=False,
        help_text=_(
            "Require a DPoP proof at the token endpoint; tokens are bound to its key (RFC 9449 §5.2)."
        ),
    )
    authorization_details_types = models.JSONField(
        _("authorization details types"),
        default=list,
        blank=True,
        help_text=_(
            "authorization_details_types (RFC 9396 §10): a JSON list of the types of "
            "CIBA['AUTHORIZATION_DETAILS']['TYPES'] this client may request; empty: every configured type."
        ),
    )
    profile = models.CharField(
        _("security profile"),
        max_length=16,
        choices=Profile.choices,
        blank=True,
        help_text=_("A profile this client is held to; empty: CIBA['PROFILE'] (the OP's)."),
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
    def rate_limit(self) -> tuple[int, int] | None:
        """This client's own rate limit as ``(requests, seconds)``; ``(0, 0)`` means "no limit for
        this client"; None: the global ``CLIENT_RATE_LIMIT`` applies."""
        if self.rate_limit_requests is None:
            return None
        if self.rate_limit_requests == 0:
            return (0, 0)
        if not self.rate_limit_period:  # incomplete (clean() refuses it): the global limit applies
            return None
        return (self.rate_limit_requests, self.rate_limit_period)

    @property
    def has_keys(self) -> bool:
        return bool(self.jwks or self.jwks_uri)

    @property
    def sector_identifier(self) -> str:
        """The host that pairwise subjects are computed for (REG-06), "" when none can be told.

        The sector the client proves (:func:`proven_sector`). A registration stored before sectors
        had to be proven and still lacking a proof keeps the sector it had then
        (:func:`legacy_sector`), so that the subjects it was given stay the same; check
        ``django_ciba.W085`` lists such clients.
        """
        return proven_sector(self) or legacy_sector(self)

    def sector_inputs(self) -> tuple[str, ...]:
        """The fields the sector depends on (validation is skipped for a row where none changed)."""
        return tuple(str(getattr(self, name) or "") for name in SECTOR_FIELDS)

    def _sector_unchanged(self) -> bool:
        if self.pk is None:
            return False
        stored = CibaClient.objects.filter(pk=self.pk).values_list(*SECTOR_FIELDS).first()
        return stored is not None and tuple(str(value or "") for value in stored) == self.sector_inputs()

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
            from django_ciba.core.outbound import UnsafeDestination, validate_endpoint_url

            try:
                validate_endpoint_url(self.notification_endpoint)  # SEC-01, SEC-05
            except UnsafeDestination as exc:
                raise ValidationError({"notification_endpoint": str(exc)}) from exc
        self._clean_rate_limit()
        if self.request_signing_alg.lower() == "none":
            raise ValidationError({"request_signing_alg": _("'none' is not a signing algorithm.")})
        self._clean_id_token_alg()
        self._clean_keys()
        self._clean_authorization_details_types()

    def _clean_authorization_details_types(self) -> None:
        """RFC 9396 §10: a list of configured type names."""
        from django_ciba.core.authorization_types import supported_types

        types = self.authorization_details_types
        if types in (None, ""):
            self.authorization_details_types = []
            return
        if not isinstance(types, list) or not all(isinstance(name, str) for name in types):
            raise ValidationError({"authorization_details_types": _("Must be a JSON list of type names.")})
        unknown = [name for name in types if name not in supported_types()]
        if unknown:
            raise ValidationError(
                {
                    "authorization_details_types": _(
                        "Not a type of CIBA['AUTHORIZATION_DETAILS']['TYPES']: %(name)s."
                    )
                    % {"name": unknown[0][:64]}
                }
            )
        self.authorization_details_types = list(dict.fromkeys(types))

    @property
    def allowed_authorization_details_types(self) -> list[str] | None:
        """The types this client may request; None: every configured type (an empty list)."""
        return list(self.authorization_details_types) if self.authorization_details_types else None

    def _clean_id_token_alg(self) -> None:
        """IDT-06: an ID token algorithm the OP has a key for (RS256 with DOT's, or
        ``CIBA["ID_TOKEN_SIGNING_KEYS"]``)."""
        from django_ciba.core.id_token_keys import available_algorithms

        alg = self.id_token_signed_response_alg
        if alg and alg not in (offered := available_algorithms()):
            raise ValidationError(
                {
                    "id_token_signed_response_alg": _(
                        "No signing key for %(alg)s: the OP signs ID tokens with %(offered)s "
                        "(see CIBA['ID_TOKEN_SIGNING_KEYS'])."
                    )
                    % {"alg": alg, "offered": ", ".join(offered) or "no algorithm"}
                }
            )

    def _clean_rate_limit(self) -> None:
        requests, period = self.rate_limit_requests, self.rate_limit_period
        if requests and not period:
            raise ValidationError(
                {"rate_limit_period": _("A rate limit needs a period of at least 1 second.")}
            )
        if period and not requests:
            raise ValidationError(
                {"rate_limit_requests": _("Give the number of requests allowed in the period (0: no limit).")}
            )

    def _clean_keys(self) -> None:
        from django_ciba.core.jwk import InvalidClientKeys, parse_jwks
        from django_ciba.core.outbound import UnsafeDestination, validate_endpoint_url

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
        problem = tls_registration_problem(self)  # RFC 8705 §2.1.2, §2.2
        if problem is not None:
            raise ValidationError({problem[0]: problem[1]})
        # A request signing algorithm without keys is allowed: the keys may follow (RFC 7592), and
        # until they do request_object refuses the client's requests with invalid_request.
        problem = sector_problem(self)
        if problem is not None and not self._sector_unchanged():
            raise ValidationError({problem[0]: problem[1]})


#: The CibaClient fields its pairwise sector depends on.
