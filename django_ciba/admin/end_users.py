"""The users' side of the console: abuse reports, pre-authorizations, Web Push subscriptions.

A Web Push subscription's endpoint is a capability (whoever knows it may push to the device): only
its origin is shown, its keys never, and neither is searchable. Deleting a subscription revokes it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from oauth2_provider.scopes import get_scopes_backend

from django_ciba.admin.auth_requests import user_search_fields
from django_ciba.models import AbuseReport, CibaClient, PreAuthorization, WebPushSubscription


@admin.register(AbuseReport)
class AbuseReportAdmin(admin.ModelAdmin):
    """Reports are filed by users ("I did not request this"); operators note and resolve them."""

    list_display = ("id", "created_at", "client", "user", "request_link", "resolved")
    list_filter = ("resolved", "client", "created_at")
    list_select_related = ("client", "user")
    search_fields = ("client__name", "client__client_id", *user_search_fields())
    date_hierarchy = "created_at"
    ordering = ("-created_at", "-pk")
    fields = ("client", "user", "request_link", "binding_message", "created_at", "resolved", "operator_note")
    readonly_fields = ("client", "user", "request_link", "binding_message", "created_at")
    actions = ("mark_resolved",)

    def has_add_permission(self, request: Any) -> bool:
        return False

    @admin.display(description=_("request"))
    def request_link(self, obj: AbuseReport) -> str | None:
        """A link to the reported request (nothing once the request has been purged)."""
        if obj.auth_request_id is None:
            return None
        url = reverse(
            "admin:django_ciba_authenticationrequest_change",
            args=[obj.auth_request_id],
            current_app=self.admin_site.name,
        )
        return format_html('<a href="{}">#{}</a>', url, obj.auth_request_id)

    @admin.action(description=_("Mark selected reports resolved"), permissions=["change"])
    def mark_resolved(self, request: Any, queryset: Any) -> None:
        reports = list(queryset.filter(resolved=False))
        AbuseReport.objects.filter(pk__in=[report.pk for report in reports]).update(resolved=True)
        for report in reports:
            self.log_change(request, report, [{"changed": {"fields": ["resolved"]}}])
        count = len(reports)
        message = ngettext("%(n)d report marked resolved.", "%(n)d reports marked resolved.", count)
        self.message_user(request, message % {"n": count}, messages.SUCCESS)


class PreAuthorizationForm(forms.ModelForm):
    """Scopes must be known to DOT's scopes backend, include ``openid`` (every CIBA request asks for
    it, so a pre-authorization without it would cover nothing) and be allowed to the client."""

    class Meta:
        model = PreAuthorization
        fields = ("client", "user", "scope", "expires_at", "enabled", "note")
        widgets = {"scope": forms.TextInput(attrs={"size": 60})}

    def clean_scope(self) -> str:
        scopes = list(dict.fromkeys(self.cleaned_data.get("scope", "").split()))
        if not scopes:
            raise ValidationError(_("Name at least one scope."), code="required")
        unknown = [scope for scope in scopes if scope not in get_scopes_backend().get_all_scopes()]
        if unknown:
            raise ValidationError(
                _("Unknown scopes: %(scopes)s."), code="unknown", params={"scopes": " ".join(unknown)}
            )
        if "openid" not in scopes:
            raise ValidationError(
                _("Include openid: every CIBA request asks for it, so nothing would be covered."),
                code="openid",
            )
        return " ".join(scopes)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        client, scope = cleaned.get("client"), cleaned.get("scope")
        if client is not None:
            ciba = CibaClient.objects.filter(application=client).first()
            if ciba is None:
                self.add_error("client", _("This application has no CIBA registration."))
            elif scope and ciba.allowed_scopes is not None:
                extra = [name for name in scope.split() if name not in ciba.allowed_scopes]
                if extra:
                    message = _("The client may not request: %(scopes)s.") % {"scopes": " ".join(extra)}
                    self.add_error("scope", message)
        return cleaned


@admin.register(PreAuthorization)
class PreAuthorizationAdmin(admin.ModelAdmin):
    form = PreAuthorizationForm
    list_display = ("id", "client", "for_user", "scope", "expires_at", "enabled", "note", "created_at")
    list_filter = ("enabled", "client", "created_at")
    list_select_related = ("client", "user")
    search_fields = ("client__name", "client__client_id", *user_search_fields(), "note")
    raw_id_fields = ("client", "user")
    fields = ("client", "user", "scope", "expires_at", "enabled", "note", "created_at")
    readonly_fields = ("created_at",)
    actions = ("disable_selected",)

    @admin.display(description=_("user"), ordering="user")
    def for_user(self, obj: PreAuthorization) -> Any:
        return obj.user if obj.user_id is not None else _("all users")

    @admin.action(description=_("Disable selected pre-authorizations"), permissions=["change"])
    def disable_selected(self, request: Any, queryset: Any) -> None:
        count = queryset.filter(enabled=True).update(enabled=False)
        message = ngettext("%(n)d pre-authorization disabled.", "%(n)d pre-authorizations disabled.", count)
        self.message_user(request, message % {"n": count}, messages.SUCCESS)


def endpoint_origin(endpoint: str) -> str:
    """``scheme://host[:port]`` of a push endpoint: which push service, never the capability URL."""
    try:
        parts = urlsplit(endpoint)
        host, port = parts.hostname or "", parts.port
    except ValueError:
        return "?"
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}" + (f":{port}" if port else "")


@admin.register(WebPushSubscription)
class WebPushSubscriptionAdmin(admin.ModelAdmin):
    """Read-only; delete a subscription to revoke it (the browser must subscribe again)."""

    list_display = ("id", "user", "device", "push_service", "created_at", "last_used_at")
    list_filter = ("created_at", "last_used_at")
    list_select_related = ("user",)
    search_fields = (*user_search_fields(), "device")
    date_hierarchy = "created_at"
    ordering = ("-created_at", "-pk")
    fields = ("user", "device", "push_service", "created_at", "last_used_at")
    readonly_fields = fields

    def has_add_permission(self, request: Any) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    @admin.display(description=_("push service"))
    def push_service(self, obj: WebPushSubscription) -> str:
        return endpoint_origin(obj.endpoint)
