"""System checks of the approval pages' settings (``django_ciba.E120``-``E121``, ``W120``-``W121``).

The pages send a visitor who is not signed in to :func:`django_ciba.approval.page_settings.login_url`; a
login URL that leads nowhere would only show up when a user follows a notification, so these checks
report it at start-up.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks

from django_ciba.approval.page_settings import is_text, login_url_overridden, served
from django_ciba.core.conf import ciba_settings
from django_ciba.exceptions import CibaConfigurationError


HINT = "See 'Signing in' on the approval pages' documentation (docs/approval-pages.rst)."


@checks.register(checks.Tags.urls)
def check_page_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """E120 service name, E121 login URL type; W120 / W121 a login URL that leads nowhere."""
    errors: list[checks.CheckMessage] = []
    try:
        _ = ciba_settings.user_settings
    except CibaConfigurationError:
        return []  # reported as E010
    name = ciba_settings.SERVICE_NAME
    if name is not None and not is_text(name):
        errors.append(
            checks.Error(
                "CIBA['SERVICE_NAME'] must be a non-empty string, or None (the host name).",
                hint=HINT,
                id="django_ciba.E120",
            )
        )
    login = ciba_settings.LOGIN_URL
    if login is not None and not is_text(login):
        errors.append(
            checks.Error(
                "CIBA['LOGIN_URL'] must be a URL name, a path or a URL, or None.",
                hint=HINT,
                id="django_ciba.E121",
            )
        )
    elif login is not None and not served(login):
        errors.append(
            checks.Warning(
                f"CIBA['LOGIN_URL'] ({login!r}) does not lead to a page of this site: the approval pages "
                "would send users who are not signed in to a missing page.",
                hint="Name a URL pattern that exists, or remove the key to use the shipped sign-in page "
                "(django_ciba:login).",
                id="django_ciba.W120",
            )
        )
    elif login is None and login_url_overridden() and not served(settings.LOGIN_URL):
        errors.append(
            checks.Warning(
                f"settings.LOGIN_URL ({settings.LOGIN_URL!r}), which the approval pages use, does not lead "
                "to a page of this site: users who are not signed in would get a missing page.",
                hint="Fix LOGIN_URL, or set CIBA['LOGIN_URL'] = 'django_ciba:login' to use the shipped "
                "sign-in page for the approval pages.",
                id="django_ciba.W121",
            )
        )
    return errors
