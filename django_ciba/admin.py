"""Admin: CIBA settings inline on DOT's Application admin and on their own; requests read-only.

No secret is shown or searchable: the auth_req_id hash, the sealed auth_req_id and
client_notification_token, sealed push payloads, registration access token hashes and initial
access token hashes are excluded, and search covers only user, client name, client_id and token
labels. Deliveries (the outbox) are listed read-only, with a "retry now" action. Initial access
tokens are created with ``manage.py ciba_initial_access_token`` only (the token is shown once).
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from oauth2_provider.models import get_application_model

from . import decisions, outbox
from .exceptions import DecisionError
from .models import AuthenticationRequest, CibaClient, Delivery, InitialAccessToken


CIBA_CLIENT_FIELDS = (
    "enabled",
    "delivery_mode",
    "notification_endpoint",
    "token_endpoint_auth_method",
    "scope",
    "request_signing_alg",
    "user_code_parameter",
    "ciba_only",
    "token_endpoint_auth_signing_alg",
    "jwks",
    "jwks_uri",
    "subject_type",
    "sector_identifier_uri",
)


#: Every URL a CIBA client registers is https (a scheme-less entry is read as https).
URL_FIELDS = {models.URLField: {"assume_scheme": "https"}}


class CibaClientInline(admin.StackedInline):
    model = CibaClient
    can_delete = True
    extra = 0
    max_num = 1
    fields = CIBA_CLIENT_FIELDS
    formfield_overrides = URL_FIELDS


@admin.register(CibaClient)
class CibaClientAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "application",
        "delivery_mode",
        "enabled",
        "token_endpoint_auth_method",
        "updated_at",
    )
    list_filter = ("delivery_mode", "enabled")
    list_select_related = ("application",)
    search_fields = ("application__name", "application__client_id")
    raw_id_fields = ("application",)
    fields = ("application", *CIBA_CLIENT_FIELDS, "registered_dynamically", "created_at", "updated_at")
    readonly_fields = ("registered_dynamically", "created_at", "updated_at")
    formfield_overrides = URL_FIELDS

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


def _apply(modeladmin: Any, request: Any, queryset: Any, action: Any, verb: str) -> None:
    done = refused = 0
    for auth_request in queryset:
        try:
            action(auth_request)
            done += 1
        except DecisionError:
            refused += 1
    if done:
        modeladmin.message_user(
            request,
            ngettext("%(n)d request %(verb)s.", "%(n)d requests %(verb)s.", done) % {"n": done, "verb": verb},
            messages.SUCCESS,
        )
    if refused:
        modeladmin.message_user(
            request,
            ngettext(
                "%(n)d request was no longer pending and was left alone.",
                "%(n)d requests were no longer pending and were left alone.",
                refused,
            )
            % {"n": refused},
            messages.WARNING,
        )


DELIVERY_FIELDS = (
    "kind",
    "status",
    "error",
    "attempts",
    "next_attempt_at",
    "last_status_code",
    "last_error",
    "created_at",
    "finished_at",
)


class DeliveryInline(admin.TabularInline):
    model = Delivery
    extra = 0
    can_delete = False
    fields = DELIVERY_FIELDS
    readonly_fields = DELIVERY_FIELDS
    ordering = ("created_at",)

    def has_add_permission(self, request: Any, obj: Any = None) -> bool:
        return False


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = ("id", "auth_request", "kind", "status", "attempts", "last_status_code", "next_attempt_at")
    list_filter = ("status", "kind", "created_at")
    list_select_related = ("auth_request",)
    search_fields = ("=id", "=auth_request__id")
    date_hierarchy = "created_at"
    fields = ("auth_request", *DELIVERY_FIELDS, "updated_at")
    readonly_fields = fields
    actions = ("retry_now",)

    def has_add_permission(self, request: Any) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    @admin.action(description=_("Retry selected pending deliveries now"), permissions=["view"])
    def retry_now(self, request: Any, queryset: Any) -> None:
        pks = list(queryset.filter(status=Delivery.Status.PENDING).values_list("pk", flat=True))
        Delivery.objects.pending().filter(pk__in=pks).update(next_attempt_at=timezone.now())
        for pk in pks:
            outbox.dispatch(pk)
        self.message_user(
            request,
            ngettext("%(n)d delivery queued.", "%(n)d deliveries queued.", len(pks)) % {"n": len(pks)},
            messages.SUCCESS,
        )


@admin.register(AuthenticationRequest)
class AuthenticationRequestAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "client",
        "user",
        "status",
        "delivery_mode",
        "created_at",
        "expires_at",
        "time_left",
    )
    list_filter = ("status", "delivery_mode", "client", "created_at")
    list_select_related = ("client", "user")
    search_fields = ("=id", "user__username", "user__email", "client__name", "client__client_id")
    date_hierarchy = "created_at"
    actions = ("deny_selected", "expire_selected")
    fields = (
        "client",
        "user",
        "status",
        "delivery_mode",
        "hint_type",
        "scope",
        "acr_values",
        "binding_message",
        "requested_expiry",
        "interval",
        "created_at",
        "expires_at",
        "decided_at",
        "granted_scope",
        "acr",
        "amr",
        "auth_time",
        "tokens_issued_at",
        "acknowledged_at",
        "updated_at",
    )
    readonly_fields = fields
    inlines = [DeliveryInline]

    def has_add_permission(self, request: Any) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    @admin.display(description=_("time left (s)"))
    def time_left(self, obj: AuthenticationRequest) -> int:
        return obj.seconds_left() if obj.status == AuthenticationRequest.Status.PENDING else 0

    @admin.action(description=_("Deny selected requests"), permissions=["view"])
    def deny_selected(self, request: Any, queryset: Any) -> None:
        _apply(self, request, queryset, lambda obj: decisions.deny(obj), "denied")

    @admin.action(description=_("Expire selected requests now"), permissions=["view"])
    def expire_selected(self, request: Any, queryset: Any) -> None:
        _apply(self, request, queryset, decisions.expire, "expired")


def _add_inline_to_application_admin(site: admin.AdminSite) -> None:
    """Give whatever admin class the host registered for DOT's Application the CIBA inline."""
    application_model = get_application_model()
    current = site._registry.get(application_model)
    if current is None or CibaClientInline in (current.inlines or ()):
        return
    base = type(current)
    site.unregister(application_model)
    site.register(
        application_model,
        type(f"Ciba{base.__name__}", (base,), {"inlines": [*(base.inlines or ()), CibaClientInline]}),
    )


_add_inline_to_application_admin(admin.site)
