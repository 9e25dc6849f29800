"""The approval pages: the signed-in user's pending requests, one request, and the outcome (AD-01..AD-03).

Plain Django views rendering overridable templates (``django_ciba/pages/*.html``); nothing here
needs JavaScript. The rules live in :mod:`django_ciba.approval.decisions`; these views only translate its
answers into pages. Every page is CSRF protected, may not be framed, is never cached and sends no
cross-origin referrer. ``CIBA["APPROVAL_URL"]`` should point at :class:`RequestDetailView`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import ObjectDoesNotExist
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.template import TemplateDoesNotExist
from django.template.loader import get_template
from django.urls import reverse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views import View
from django.views.decorators.cache import never_cache
from django.views.decorators.clickjacking import xframe_options_deny
from django.views.decorators.csrf import csrf_protect
from oauth2_provider.scopes import get_scopes_backend

from django_ciba import assurance
from django_ciba.approval import decisions, page_settings
from django_ciba.core import authorization_types, details_rendering
from django_ciba.exceptions import (
    InsufficientAssurance,
    InvalidDecision,
    RequestExpired,
    RequestNotFound,
    RequestNotPending,
)
from django_ciba.models import AbuseReport, AuthenticationRequest


WEBPUSH_TEMPLATE = "django_ciba/pages/_webpush.html"
#: Scopes the user cannot untick when approving (CIBA requires openid).
REQUIRED_SCOPES = frozenset({"openid"})
#: Longest logo URL rendered (registered metadata is client-controlled).
MAX_LOGO_URL_LENGTH = 2000
#: From this many seconds left on, the pages show the expiry's date as well as its time.
SHOW_EXPIRY_DATE_AFTER = 3600
#: Longest summary of a request's authorization details on the list page.
LIST_SUMMARY = 300

Status = AuthenticationRequest.Status


def secure_page(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
    """No framing (X-Frame-Options and CSP ``frame-ancestors``), no caching, same-origin referrers."""

    @xframe_options_deny
    @never_cache
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        response = view(request, *args, **kwargs)
        response.setdefault(
            "Content-Security-Policy",
            "frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'",
        )
        response.setdefault("Referrer-Policy", "same-origin")
        response.setdefault("X-Content-Type-Options", "nosniff")
        return response

    return wrapper


@dataclass
class ScopeChoice:
    """One requested scope as the user sees it."""

    name: str
    description: str
    required: bool


@dataclass
class DetailChoice:
    """One requested authorization detail (RFC 9396) as the user sees it: ``html`` is its rendering
    (:mod:`django_ciba.core.details_rendering`, autoescaped); ``optional`` when its type lets the
    user leave it out (``SUBSET``)."""

    position: int
    html: str
    optional: bool


@dataclass
class RequestSummary:
    """What the templates show about one request (``auth_request`` is the model instance)."""

    auth_request: AuthenticationRequest
    client_name: str
    logo_url: str
    binding_message: str
    scopes: list[ScopeChoice] = field(default_factory=list)
    details: list[DetailChoice] = field(default_factory=list)
    seconds_left: int = 0
    time_left: str = ""
    expires_at: datetime | None = None
    requested_at: datetime | None = None
    requested_ago: str = ""
    url: str = ""

    @property
    def pk(self) -> int:
        return self.auth_request.pk

    @property
    def long_wait(self) -> bool:
        """Whether the request lives long enough for its expiry date to matter."""
        return self.seconds_left >= SHOW_EXPIRY_DATE_AFTER

    @property
    def details_summary(self) -> str:
        """The details as one bounded line of text (the list page)."""
        return details_rendering.text_summary(self.auth_request.authorization_details, limit=LIST_SUMMARY)

    @property
    def any_optional_detail(self) -> bool:
        return any(detail.optional for detail in self.details)


def client_logo_url(application: Any) -> str:
    """The registered ``logo_uri`` when it is an absolute https URL, else ``""``."""
    try:
        metadata = application.ciba.metadata or {}
    except ObjectDoesNotExist:
        return ""
    logo = metadata.get("logo_uri") if isinstance(metadata, dict) else None
    if not isinstance(logo, str) or len(logo) > MAX_LOGO_URL_LENGTH:
        return ""
    try:
        parts = urlsplit(logo)
    except ValueError:
        return ""
    if parts.scheme != "https" or not parts.hostname or any(c.isspace() for c in logo):
        return ""
    return logo


def describe_scopes(scopes: list[str]) -> list[ScopeChoice]:
    """Each scope with its plain-language description from DOT's scopes backend."""
    descriptions = get_scopes_backend().get_all_scopes() or {}
    return [
        ScopeChoice(
            name=scope, description=str(descriptions.get(scope) or scope), required=scope in REQUIRED_SCOPES
        )
        for scope in scopes
    ]


def format_time_left(seconds: int) -> str:
    """ "3 minutes", "1 hour 5 minutes", "less than a minute"."""
    if seconds < 60:
        return _("less than a minute")
    hours, minutes = divmod(seconds // 60, 60)
    minutes_text = ngettext("%(count)d minute", "%(count)d minutes", minutes) % {"count": minutes}
    if not hours:
        return minutes_text
    hours_text = ngettext("%(count)d hour", "%(count)d hours", hours) % {"count": hours}
    return f"{hours_text} {minutes_text}" if minutes else hours_text


def describe_details(details: Any) -> list[DetailChoice]:
    """Each requested authorization detail rendered, and whether the user may leave it out."""
    if not isinstance(details, list):
        return []
    return [
        DetailChoice(
            position=index,
            html=details_rendering.render_detail(detail, position=index),
            optional=detail_is_optional(detail),
        )
        for index, detail in enumerate(details)
    ]


def detail_is_optional(detail: Any) -> bool:
    """Whether the user may approve without this detail (its type's ``SUBSET``)."""
    return isinstance(detail, dict) and authorization_types.allows_subset(str(detail.get("type", "")))


def summarize(auth_request: AuthenticationRequest) -> RequestSummary:
    client = auth_request.client
    seconds = auth_request.seconds_left()
    age = max(0, int((timezone.now() - auth_request.created_at).total_seconds()))
    return RequestSummary(
        auth_request=auth_request,
        client_name=client.name or client.client_id,
        logo_url=client_logo_url(client),
        binding_message=auth_request.binding_message,
        scopes=describe_scopes(auth_request.scopes),
        details=describe_details(auth_request.authorization_details),
        seconds_left=seconds,
        time_left=format_time_left(seconds),
        expires_at=auth_request.expires_at,
        requested_at=auth_request.created_at,
        requested_ago=format_time_left(age),
        url=reverse("django_ciba:request", kwargs={"pk": auth_request.pk}),
    )


def template_exists(name: str) -> bool:
    try:
        get_template(name)
    except TemplateDoesNotExist:
        return False
    return True


def result_url(pk: int, *, already: bool = False) -> str:
    url = reverse("django_ciba:request-result", kwargs={"pk": pk})
    return f"{url}?already=1" if already else url


@method_decorator(secure_page, name="dispatch")
@method_decorator(csrf_protect, name="dispatch")
class ApprovalPageMixin(LoginRequiredMixin):
    """Sign-in required (:func:`django_ciba.approval.page_settings.login_url`), CSRF protected, never framed
    or cached. Every page gets ``service_name`` in its context."""

    request: HttpRequest  # set by View.setup()

    def get_login_url(self) -> str:
        return page_settings.login_url()

    def page_context(self, **context: Any) -> dict[str, Any]:
        return {"service_name": page_settings.service_name(self.request), **context}

    def get_auth_request(self, pk: Any) -> AuthenticationRequest:
        """The signed-in user's request; another user's request, or none, is a 404."""
        try:
            return decisions.get_for_user(self.request.user, pk)
        except RequestNotFound:
            raise Http404(_("No such request."))


class RequestListView(ApprovalPageMixin, View):
    """The signed-in user's pending requests, soonest expiry first."""

    template_name = "django_ciba/pages/list.html"

    def get(self, request: HttpRequest) -> HttpResponse:
        pending = [summarize(auth_request) for auth_request in decisions.requests_for_user(request.user)]
        context = self.page_context(
            requests=pending,
            webpush_available=template_exists(WEBPUSH_TEMPLATE),
        )
        return render(request, self.template_name, context)


class RequestDetailView(ApprovalPageMixin, View):
    """One pending request (GET) and the user's decision on it (POST ``action``: approve, deny, report).

    ``approve`` grants ``openid`` and the ticked ``scope`` values: consent is opt-in, so the
    optional scopes start unticked and a POST without any ``scope`` grants ``openid`` alone.
    """

    template_name = "django_ciba/pages/detail.html"
    actions = ("approve", "deny", "report")

    def get(self, request: HttpRequest, pk: int) -> HttpResponse:
        return self.render_page(self.get_auth_request(pk))

    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        auth_request = self.get_auth_request(pk)
        action = request.POST.get("action", "")
        if action not in self.actions:
            return self.render_page(auth_request, error=_("Choose Approve, Deny or I did not request this."))
        try:
            if action == "approve":
                details = self.granted_details(auth_request)
                if details is not None and not details:
                    return self.render_page(
                        auth_request, error=_("Tick at least one of the details, or deny the request.")
                    )
                decisions.approve(
                    auth_request,
                    user=request.user,
                    scopes=self.granted_scopes(auth_request),
                    details=details,
                    **self.get_decision_kwargs(),
                )
            elif action == "deny":
                decisions.deny(auth_request, user=request.user)
            else:
                decisions.report_abuse(auth_request, user=request.user)
        except InsufficientAssurance:
            return self.render_page(auth_request, error=self.assurance_error(auth_request), status=403)
        except InvalidDecision:
            return self.render_page(auth_request, error=_("Only the requested access can be approved."))
        except (RequestNotPending, RequestExpired):
            return HttpResponseRedirect(result_url(auth_request.pk, already=True))
        except RequestNotFound:
            raise Http404(_("No such request."))
        return HttpResponseRedirect(result_url(auth_request.pk))

    def granted_scopes(self, auth_request: AuthenticationRequest) -> list[str]:
        """The required scopes the request has, then the ticked ones (never more than requested:
        :func:`decisions.approve` refuses a scope that was not requested)."""
        required = [scope for scope in auth_request.scopes if scope in REQUIRED_SCOPES]
        return list(dict.fromkeys([*required, *self.request.POST.getlist("scope")]))

    def granted_details(self, auth_request: AuthenticationRequest) -> list[int] | None:
        """The positions of the authorization details approved: those the user cannot leave out,
        then the ticked ``authorization_detail`` values; None when the request has no details. A
        value that is not a position is kept as -1, which :func:`decisions.approve` refuses."""
        details = auth_request.authorization_details
        if not isinstance(details, list) or not details:
            return None
        required = [index for index, detail in enumerate(details) if not detail_is_optional(detail)]
        ticked = []
        for value in self.request.POST.getlist("authorization_detail"):
            ticked.append(int(value) if value.isascii() and value.isdigit() and len(value) < 6 else -1)
        return list(dict.fromkeys([*required, *ticked]))

    def get_decision_kwargs(self) -> dict[str, Any]:
        """Extra arguments of :func:`decisions.approve`: the session's ``context``, from
        ``CIBA["AUTHENTICATION_CONTEXT"]`` (never from the posted form)."""
        return {"context": assurance.context_for(self.request, self.request.user)}

    def assurance_error(self, auth_request: AuthenticationRequest) -> str:
        """What the user is told when this sign-in is weaker than the client asked for."""
        return _(
            "This request needs a stronger sign-in than the one you used: sign in again with your "
            "second factor, then approve. You can still deny it."
        )

    def render_page(
        self, auth_request: AuthenticationRequest, error: str = "", status: int | None = None
    ) -> HttpResponse:
        """The request with its choices; a request that can no longer be answered shows its outcome."""
        if auth_request.status != Status.PENDING or auth_request.is_expired():
            return HttpResponseRedirect(result_url(auth_request.pk, already=True))
        context = self.page_context(request_summary=summarize(auth_request), error=error)
        return render(self.request, self.template_name, context, status=status or (400 if error else 200))


class RequestResultView(ApprovalPageMixin, View):
    """The outcome of one request: approved, denied, reported, already decided or expired."""

    template_name = "django_ciba/pages/result.html"

    def get(self, request: HttpRequest, pk: int) -> HttpResponse:
        auth_request = self.get_auth_request(pk)
        outcome = self.outcome(auth_request)
        if outcome == "pending":
            return HttpResponseRedirect(reverse("django_ciba:request", kwargs={"pk": auth_request.pk}))
        context = self.page_context(
            outcome=outcome,
            status=auth_request.status,
            status_label=auth_request.get_status_display(),
            already_decided=request.GET.get("already") == "1" and outcome != "expired",
            request_summary=summarize(auth_request),
            reported=outcome == "reported",
        )
        return render(request, self.template_name, context)

    def outcome(self, auth_request: AuthenticationRequest) -> str:
        """``pending``, ``approved``, ``denied``, ``reported``, ``expired``, ``cancelled`` or ``failed``."""
        status = auth_request.status
        if status == Status.PENDING:
            return "expired" if auth_request.is_expired() else "pending"
        if status in (Status.APPROVED, Status.CONSUMED):
            return "approved"
        if status == Status.DENIED:
            user = self.request.user  # signed in (LoginRequiredMixin)
            reported = AbuseReport.objects.filter(auth_request=auth_request, user=user).exists()  # type: ignore[misc]
            return "reported" if reported else "denied"
        if status in (Status.EXPIRED, Status.CANCELLED):
            return status
        return "failed"
