"""Where the approval pages send a visitor who is not signed in, and the service name they show.

``CIBA["LOGIN_URL"]`` wins when set. Otherwise the project's ``settings.LOGIN_URL`` is used when the
project chose it (it is set in the settings) or serves it (Django's default ``/accounts/login/``
resolves in the URLconf), so an existing site keeps its own sign-in. A project that has neither,
such as a fresh ``startproject``, gets the sign-in page shipped with the pages
(``django_ciba:login``), instead of a redirect to a page that does not exist.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest
from django.shortcuts import resolve_url
from django.urls import NoReverseMatch, Resolver404, resolve, reverse
from django.utils.functional import Promise
from django.utils.translation import gettext as _

from django_ciba.core.conf import ciba_settings


#: URL name of the sign-in page shipped with the approval pages.
SHIPPED_LOGIN = "django_ciba:login"


def is_text(value: Any) -> bool:
    """A non-empty string (lazy translations included)."""
    return isinstance(value, str | Promise) and bool(str(value).strip())


def served(value: Any) -> bool:
    """Whether ``value`` (a URL name, a path or an absolute URL) leads somewhere: a name that
    reverses, a path of this site that resolves, or an absolute URL (another site; not checked)."""
    try:
        url = str(resolve_url(value))
    except NoReverseMatch:
        return False
    parts = urlsplit(url)
    if parts.scheme or parts.netloc:
        return True
    if not parts.path.startswith("/"):
        return False
    try:
        resolve(parts.path)
    except Resolver404:
        return False
    return True


def login_url_overridden() -> bool:
    """Whether the project sets ``settings.LOGIN_URL`` itself."""
    overridden: bool = settings.is_overridden("LOGIN_URL")  # type: ignore[misc]  # missing from django-stubs
    return overridden


def project_login_used() -> bool:
    """Whether the pages use the project's ``settings.LOGIN_URL`` (when ``CIBA["LOGIN_URL"]`` is unset)."""
    return login_url_overridden() or served(settings.LOGIN_URL)


def login_url() -> str:
    """The sign-in page of the approval pages (see the module docstring for the order)."""
    configured = ciba_settings.LOGIN_URL
    if configured:
        return str(resolve_url(configured))
    if project_login_used():
        return str(resolve_url(settings.LOGIN_URL))
    return reverse(SHIPPED_LOGIN)


def service_name(request: HttpRequest) -> str:
    """``CIBA["SERVICE_NAME"]``, else the host the user reached (what the address bar shows)."""
    configured = ciba_settings.SERVICE_NAME
    if is_text(configured):
        return str(configured)
    try:
        return request.get_host()
    except DisallowedHost:
        return _("this service")
