"""The operator console: live requests, their deliveries (the outbox) and their history.

Requests, deliveries and events are read-only. The actions (deny, expire now, resend the device
notification, retry now) need the *change* permission on their model; *view* alone shows the
console. Each action on a request is recorded in its history with the operator as actor.

No secret is shown or searchable: not the auth_req_id (only its hash is stored, and the hash is
hidden too), the sealed auth_req_id and client_notification_token, sealed push payloads, or the
pushed access token. Search covers the request number, the user and the client's name and id.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.contrib.auth import get_permission_codename, get_user_model
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from django_ciba import audit, lifecycle
from django_ciba.admin.displays import NOTHING, ActorNames, short_datetime, truncated
from django_ciba.approval import decisions
from django_ciba.exceptions import DecisionError
from django_ciba.models import AuthenticationRequest, Delivery, RequestEvent


if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise


Status = AuthenticationRequest.Status
#: Statuses with a clock running: waiting for the user, or approved but not redeemed yet.
LIVE = (Status.PENDING, Status.APPROVED)
#: The console's own stylesheet: compact lists that fit an ordinary desktop width.
CONSOLE_CSS = {"all": ("django_ciba/admin.css",)}


def user_search_fields(prefix: str = "user__") -> tuple[str, ...]:
    """The user's username field, and e-mail when the user model has one (never a secret)."""
    User = get_user_model()
    names = [User.USERNAME_FIELD]
    if any(field.name == "email" for field in User._meta.get_fields()) and "email" not in names:
        names.append("email")
    return tuple(prefix + name for name in names)


class OperatorActions:
    """Actions declared with ``permissions=["operate"]`` need the model's change permission."""

    def has_operate_permission(self, request: Any) -> bool:
        opts = self.opts  # type: ignore[attr-defined]
        return bool(request.user.has_perm(f"{opts.app_label}.{get_permission_codename('change', opts)}"))

    def tell(
        self, request: Any, count: int, message: str, level: int = messages.SUCCESS, **values: Any
    ) -> None:
        """Show ``message`` (``%(n)d`` is ``count``) unless ``count`` is 0."""
        if count:
            self.message_user(request, message % {"n": count, **values}, level)  # type: ignore[attr-defined]


def format_seconds(seconds: int) -> str:
    if seconds < 60:
        return _("%(s)d s") % {"s": seconds}
    if seconds < 3600:
        return _("%(m)d min %(s)02d s") % {"m": seconds // 60, "s": seconds % 60}
    return _("%(h)d h %(m)02d min") % {"h": seconds // 3600, "m": seconds % 3600 // 60}


class TimeLeftFilter(admin.SimpleListFilter):
    title = _("time left")
    parameter_name = "time_left"

    def lookups(self, request: Any, model_admin: Any) -> Any:
        return (("live", _("Running")), ("overdue", _("Past expiry, not marked yet")))

    def queryset(self, request: Any, queryset: Any) -> Any:
        now = timezone.now()
        if self.value() == "live":
            return queryset.filter(status__in=LIVE, expires_at__gt=now)
        if self.value() == "overdue":
            return queryset.filter(status__in=LIVE, expires_at__lte=now)
        return queryset


DELIVERY_FIELDS = (
    "kind",
    "status",
    "error",
    "attempts",
    "next_attempt",
    "last_status_code",
    "last_error",
    "created_at",
    "finished_at",
)
#: Short names of the delivery kinds, for the lists (the detail page shows the full name).
SHORT_KINDS: dict[str, StrOrPromise] = {
    Delivery.Kind.DEVICE: _("Device"),
    Delivery.Kind.PING: _("Ping"),
    Delivery.Kind.PUSH_TOKENS: _("Push (tokens)"),
    Delivery.Kind.PUSH_ERROR: _("Push (error)"),
}


class DeliveryDisplays:
    """Cells shared by the outbox and the deliveries on a request's page."""

    @admin.display(description=_("kind"), ordering="kind")
    def kind_short(self, obj: Delivery) -> str:
        return str(SHORT_KINDS.get(obj.kind, obj.get_kind_display()))

    @admin.display(description=_("next attempt"), ordering="next_attempt_at")
    def next_attempt(self, obj: Delivery) -> Any:
        """Only a pending delivery has a next attempt; a finished one shows nothing."""
        if obj.status != Delivery.Status.PENDING:
            return NOTHING
        return short_datetime(obj.next_attempt_at)

    @admin.display(description=_("last error"), ordering="last_error")
    def last_error_short(self, obj: Delivery) -> Any:
        return truncated(obj.last_error)


class DeliveryInline(DeliveryDisplays, admin.TabularInline):
    """The deliveries of a request, in as many columns as fit; each links to its full page."""

    model = Delivery
    extra = 0
    can_delete = False
    fields = ("kind", "status", "attempts", "next_attempt", "last_error_short", "finished_at")
    readonly_fields = fields
    ordering = ("created_at", "pk")
    show_change_link = True

    def has_add_permission(self, request: Any, obj: Any = None) -> bool:
        return False


class RequestEventInline(admin.TabularInline):
    """The request's history: every transition, who or what caused it, and when (read-only)."""

    model = RequestEvent
    extra = 0
    can_delete = False
    fields = ("at", "event", "who", "details")
    readonly_fields = fields
    ordering = ("created_at", "pk")
    verbose_name = _("history entry")
    verbose_name_plural = _("history")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.actor_names = ActorNames()

    def has_add_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_view_permission(self, request: Any, obj: Any = None) -> bool:
        # Whoever may see the request may see its history.
        opts = AuthenticationRequest._meta
        return bool(request.user.has_perm(f"{opts.app_label}.{get_permission_codename('view', opts)}"))

    @admin.display(description=_("at"), ordering="created_at")
    def at(self, obj: RequestEvent) -> str:
        return timezone.localtime(obj.created_at).strftime("%Y-%m-%d %H:%M:%S %Z")

    @admin.display(description=_("by"))
    def who(self, obj: RequestEvent) -> str:
        """The actor, named: the client's name, or the username of a user or operator."""
        return self.actor_names.label(obj)

    @admin.display(description=_("detail"))
    def details(self, obj: RequestEvent) -> str:
        return ", ".join(f"{key}={value}" for key, value in sorted((obj.detail or {}).items()))


@admin.register(Delivery)
class DeliveryAdmin(OperatorActions, DeliveryDisplays, admin.ModelAdmin):
    # The last HTTP status is in the last error ("HTTP 503") and on the delivery's page.
    list_display = (
        "id",
        "request_number",
        "kind_short",
        "status",
        "attempts",
        "next_attempt",
        "last_error_short",
    )
    list_filter = ("status", "kind", "created_at")
    list_select_related = ("auth_request",)
    search_fields = ("=id", "=auth_request__id")
    date_hierarchy = "created_at"
    fields = ("auth_request", *DELIVERY_FIELDS, "updated_at")
    readonly_fields = fields
    actions = ("retry_now",)

    class Media:
        css = CONSOLE_CSS

    def has_add_permission(self, request: Any) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    @admin.display(description=_("request"), ordering="auth_request")
    def request_number(self, obj: Delivery) -> str:
        return f"#{obj.auth_request_id}"

    @admin.action(description=_("Retry selected pending deliveries now"), permissions=["operate"])
    def retry_now(self, request: Any, queryset: Any) -> None:
        selected = list(queryset.values_list("pk", flat=True))
        pks = lifecycle.retry_deliveries(selected)
        self.tell(request, len(pks), ngettext("%(n)d delivery queued.", "%(n)d deliveries queued.", len(pks)))
        finished = len(selected) - len(pks)
        message = ngettext(
            "%(n)d delivery was finished already and was left alone.",
            "%(n)d deliveries were finished already and were left alone.",
            finished,
        )
        self.tell(request, finished, message, messages.WARNING)


@admin.register(AuthenticationRequest)
class AuthenticationRequestAdmin(OperatorActions, admin.ModelAdmin):
    # Creation is in the date hierarchy, the filters and on each request's page; the list is
    # newest first. Its column would push expiry and time left out of an ordinary screen.
    list_display = ("id", "client", "user", "status", "mode", "expires", "time_left")
    list_filter = ("status", TimeLeftFilter, "delivery_mode", "client", "created_at")
    list_select_related = ("client", "user")
    search_fields = ("=id", *user_search_fields(), "client__name", "client__client_id")
    date_hierarchy = "created_at"
    ordering = ("-created_at", "-pk")
    actions = ("deny_selected", "expire_selected", "resend_notification")
    fields = (
        "client",
        "user",
        "status",
        "time_left",
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
    inlines = [RequestEventInline, DeliveryInline]

    class Media:
        css = CONSOLE_CSS

    def has_add_permission(self, request: Any) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    @admin.display(description=_("mode"), ordering="delivery_mode")
    def mode(self, obj: AuthenticationRequest) -> str:
        return str(obj.get_delivery_mode_display())

    @admin.display(description=_("expires at"), ordering="expires_at")
    def expires(self, obj: AuthenticationRequest) -> Any:
        return short_datetime(obj.expires_at)

    @admin.display(description=_("time left"), ordering="expires_at")
    def time_left(self, obj: AuthenticationRequest) -> str:
        """Time until expiry while the clock runs; "expired" once past it; "—" when finished."""
        if obj.status not in LIVE:
            return NOTHING
        if obj.is_expired():
            return str(_("expired"))
        return format_seconds(obj.seconds_left())

    def _decide(self, request: Any, queryset: Any, action: Callable[..., Any], verb: str) -> None:
        actor = audit.operator_actor(request.user)
        done = refused = 0
        for auth_request in queryset.select_related("client"):
            try:
                action(auth_request, actor=actor)
                done += 1
            except DecisionError:
                refused += 1
        self.tell(
            request, done, ngettext("%(n)d request %(verb)s.", "%(n)d requests %(verb)s.", done), verb=verb
        )
        self.tell(
            request,
            refused,
            ngettext(
                "%(n)d request was no longer pending and was left alone.",
                "%(n)d requests were no longer pending and were left alone.",
                refused,
            ),
            messages.WARNING,
        )

    @admin.action(description=_("Deny selected requests"), permissions=["operate"])
    def deny_selected(self, request: Any, queryset: Any) -> None:
        self._decide(request, queryset, decisions.deny, "denied")

    @admin.action(description=_("Expire selected requests now"), permissions=["operate"])
    def expire_selected(self, request: Any, queryset: Any) -> None:
        self._decide(request, queryset, decisions.expire, "expired")

    @admin.action(description=_("Resend the device notification"), permissions=["operate"])
    def resend_notification(self, request: Any, queryset: Any) -> None:
        """A new device delivery for each pending, unexpired request (sent once this commits).

        Device deliveries of the request still pending (e.g. waiting for a retry) are cancelled,
        so the user is not notified twice.
        """
        actor = audit.operator_actor(request.user)
        sent = skipped = 0
        for auth_request in queryset.select_related("client"):
            if lifecycle.resend_notification(auth_request, actor=actor):
                sent += 1
            else:
                skipped += 1
        self.tell(request, sent, ngettext("%(n)d notification queued.", "%(n)d notifications queued.", sent))
        self.tell(
            request,
            skipped,
            ngettext(
                "%(n)d request was not pending (or had expired) and was left alone.",
                "%(n)d requests were not pending (or had expired) and were left alone.",
                skipped,
            ),
            messages.WARNING,
        )
