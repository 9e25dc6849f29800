"""CIBA registrations (inline on DOT's Application admin, and on their own); initial access tokens.

The registration access token hash and initial access token hashes are never shown or searchable.
Initial access tokens are created with ``manage.py ciba_initial_access_token`` only (the token is
printed once).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from django import forms
from django.contrib import admin
from django.db import models
from django.utils.translation import gettext_lazy as _
from oauth2_provider.models import AbstractApplication, get_application_model

from django_ciba.clients.sectors import validate_sector
from django_ciba.core import id_token_keys
from django_ciba.core.constants import CIBA_GRANT_TYPE
from django_ciba.exceptions import InvalidClientMetadata
from django_ciba.models import CibaClient, DeliveryMode, InitialAccessToken
from django_ciba.models.sectors import SECTOR_FIELDS


CIBA_CLIENT_FIELDS = (
    "enabled",
    "profile",
    "delivery_mode",
    "notification_endpoint",
    "token_endpoint_auth_method",
    "scope",
    "request_signing_alg",
    "user_code_parameter",
    "ciba_only",
    "token_endpoint_auth_signing_alg",
    "id_token_signed_response_alg",
    "dpop_bound_access_tokens",
    "authorization_details_types",
    "jwks",
    "jwks_uri",
    "subject_type",
    "sector_identifier_uri",
    "rate_limit_requests",
    "rate_limit_period",
    "max_requested_expiry",
)

#: Mutual TLS (RFC 8705): tls_client_auth's registered certificate value, certificate-bound tokens.
MTLS_FIELDS = (
    "tls_client_auth_subject_dn",
    "tls_client_auth_san_dns",
    "tls_client_auth_san_uri",
    "tls_client_auth_san_ip",
    "tls_client_auth_san_email",
    "tls_client_certificate_bound_access_tokens",
)
MTLS_FIELDSET: Any = (
    _("Mutual TLS (RFC 8705)"),
    {
        "fields": MTLS_FIELDS,
        "description": _(
            "tls_client_auth: exactly one certificate value (the subject DN in RFC 4514 form, or one "
            "subject alternative name). self_signed_tls_client_auth: the certificate's key is in the "
            "JWK set or at the JWK set URL."
        ),
    },
)


#: Every URL a CIBA client registers is https (a scheme-less entry is read as https).
URL_FIELDS: Mapping[type[models.Field[Any, Any]], Mapping[str, Any]] = {
    models.URLField: {"assume_scheme": "https"}
}


class OptionalJSONField(forms.JSONField):
    """A JSON field left empty when there is no value, instead of showing ``null``."""

    def prepare_value(self, value: Any) -> Any:
        return "" if value is None else super().prepare_value(value)


def grant_types_note(ciba: CibaClient | None) -> str:
    """Which grants the token endpoint accepts for this registration, and why DOT's single
    "authorization grant type" of the application (often "Client credentials") is not the list."""
    if ciba is None or ciba.pk is None:
        return str(
            _(
                "The CIBA grant and refresh_token, from this registration. DOT's “authorization grant "
                "type” of the application adds at most one grant; with “CIBA only”, client_credentials "
                "is refused."
            )
        )
    if not ciba.enabled:
        return str(_("None: the registration is disabled, so every grant is refused."))
    grants = [CIBA_GRANT_TYPE] if ciba.delivery_mode != DeliveryMode.PUSH else []
    grants.append("refresh_token")
    application = ciba.application
    if (
        application.authorization_grant_type == AbstractApplication.GRANT_CLIENT_CREDENTIALS
        and ciba.ciba_only
    ):
        note = _(
            "CIBA only: client_credentials is refused; DOT's “authorization grant type” "
            "(“Client credentials”) is not used for CIBA."
        )
    else:
        grants.append(str(application.get_authorization_grant_type_display()))
        note = _("The last one is DOT's “authorization grant type” of the application.")
    text = f"{', '.join(grants)}. {note}"
    if ciba.delivery_mode == DeliveryMode.PUSH:
        text += " " + str(_("Push: the tokens are sent to the notification endpoint, never polled."))
    return text


#: The ID token algorithms a client may be given (empty: the application's, as DOT signs).
ID_TOKEN_ALG_CHOICES = [("", _("the application's")), *((alg, alg) for alg in id_token_keys.ALGORITHMS)]


class CibaClientForm(forms.ModelForm):
    """Checks a pairwise sector as registration does, fetching a ``sector_identifier_uri`` (REG-06).

    Nothing is checked or fetched when none of the fields the sector depends on changed. An
    empty JWK set shows as an empty box (not ``null``); left empty, it stays empty.
    """

    class Meta:
        model = CibaClient
        fields = ("jwks",)  # the admin names the fields it shows
        field_classes = {"jwks": OptionalJSONField}
        widgets = {
            "jwks": forms.Textarea(attrs={"placeholder": _("none"), "rows": 4}),
            # IDT-06: the model's clean() refuses an algorithm without a configured key.
            "id_token_signed_response_alg": forms.Select(choices=ID_TOKEN_ALG_CHOICES),
        }

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        candidate = copy.copy(self.instance)
        for name in SECTOR_FIELDS:
            if name in cleaned:
                setattr(candidate, name, cleaned[name] or "")
        stored = self.instance if self.instance.pk is not None else None
        application = getattr(stored, "application", None)
        redirect_uris = (getattr(application, "redirect_uris", "") or "").split()
        try:
            validate_sector(candidate, redirect_uris=redirect_uris, previous=stored)
        except InvalidClientMetadata as exc:
            name, _sep, message = exc.description.partition(": ")
            self.add_error(name if name in self.fields else None, message)
        self._check_signing_keys(cleaned, stored)
        return cleaned

    def _check_signing_keys(self, cleaned: dict[str, Any], stored: CibaClient | None) -> None:
        """REG-04: an operator setting a request signing algorithm gives the keys with it.

        Dynamic registration may store the algorithm before the keys (the client adds them with
        RFC 7592); such a row can still be edited here as long as the algorithm stays the same.
        """
        alg = cleaned.get("request_signing_alg") or ""
        has_keys = bool(cleaned.get("jwks") or cleaned.get("jwks_uri"))
        unchanged = stored is not None and stored.request_signing_alg == alg and not stored.has_keys
        if alg and not has_keys and not unchanged and "request_signing_alg" in self.fields:
            self.add_error("request_signing_alg", _("Signed requests need a JWK set or a JWK set URL."))


class CibaClientInline(admin.StackedInline):
    model = CibaClient
    form = CibaClientForm
    can_delete = True
    extra = 0
    max_num = 1
    fieldsets = ((None, {"fields": (*CIBA_CLIENT_FIELDS, "grant_types")}), MTLS_FIELDSET)
    readonly_fields = ("grant_types",)
    formfield_overrides = URL_FIELDS

    @admin.display(description=_("grant types"))
    def grant_types(self, obj: CibaClient | None) -> str:
        return grant_types_note(obj)


@admin.register(CibaClient)
class CibaClientAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "application",
        "delivery_mode",
        "enabled",
        "token_endpoint_auth_method",
        "profile",
        "updated_at",
    )
    list_filter = ("delivery_mode", "enabled", "profile")
    list_select_related = ("application",)
    search_fields = ("application__name", "application__client_id")
    raw_id_fields = ("application",)
    fieldsets = (
        (None, {"fields": ("application", *CIBA_CLIENT_FIELDS, "grant_types")}),
        MTLS_FIELDSET,
        (None, {"fields": ("registered_dynamically", "created_at", "updated_at")}),
    )
    readonly_fields = ("grant_types", "registered_dynamically", "created_at", "updated_at")
    formfield_overrides = URL_FIELDS
    form = CibaClientForm

    @admin.display(description=_("grant types"))
    def grant_types(self, obj: CibaClient | None) -> str:
        return grant_types_note(obj)

    @admin.display(description=_("registered dynamically"), boolean=True)
    def registered_dynamically(self, obj: CibaClient) -> bool:
        """Whether the client manages its registration itself (RFC 7592); the token hash stays hidden."""
        return bool(obj.registration_access_token_hash)


@admin.register(InitialAccessToken)
class InitialAccessTokenAdmin(admin.ModelAdmin):
    """Label, expiry and uses left can be changed (or the token deleted); the token never shows."""

    list_display = ("id", "label", "expires_at", "uses_left", "created_at")
    search_fields = ("label",)
    date_hierarchy = "created_at"
    fields = ("label", "expires_at", "uses_left", "created_at")
    readonly_fields = ("created_at",)

    def has_add_permission(self, request: Any) -> bool:
        return False  # manage.py ciba_initial_access_token prints the token once


def add_inline_to_application_admin(site: admin.AdminSite) -> None:
    """Give whatever admin class the host registered for DOT's Application the CIBA inline."""
    application_model = get_application_model()
    if not site.is_registered(application_model):
        return
    current = site.get_model_admin(application_model)
    if CibaClientInline in (current.inlines or ()):
        return
    base = type(current)
    site.unregister(application_model)
    site.register(
        application_model,
        type(f"Ciba{base.__name__}", (base,), {"inlines": [*(base.inlines or ()), CibaClientInline]}),
    )
