"""The sign-in and sign-out pages shipped with the approval pages (``django_ciba/pages/login.html``).

Django's own :class:`~django.contrib.auth.views.LoginView` and
:class:`~django.contrib.auth.views.LogoutView` (``AuthenticationForm``, ``login()``, CSRF, a safe
``next``), in the pages' look and with their headers. ``login()`` sends ``user_logged_in``, so the
approvals made after this sign-in carry its time (:mod:`django_ciba.assurance`). There is no
throttling of failed attempts here: that belongs to the project (for example django-axes, which
hooks into ``authenticate()``).
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import views as auth_views
from django.utils.decorators import method_decorator

from django_ciba.approval import page_settings
from django_ciba.views.pages import secure_page


#: Where a plain sign-in (without ``next``) and a sign-out lead: the list of pending requests.
PAGES_HOME = "django_ciba:requests"


@method_decorator(secure_page, name="dispatch")
class SignInView(auth_views.LoginView):
    """Sign in with the project's authentication backends; back to ``next`` when it is safe
    (same host, and https when this request is), else to the pending requests."""

    template_name = "django_ciba/pages/login.html"
    next_page = PAGES_HOME

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["service_name"] = page_settings.service_name(self.request)
        return context


@method_decorator(secure_page, name="dispatch")
class SignOutView(auth_views.LogoutView):
    """Sign out (POST only, CSRF protected); then the pages' sign-in."""

    next_page = PAGES_HOME
