"""System checks of the DOT integration and the middleware (E001-E003, W004, W005, W070, W090).

The checks of the ``CIBA`` setting live by concept in :mod:`~django_ciba.checks.protocol`,
:mod:`~django_ciba.checks.names`, :mod:`~django_ciba.checks.outbound`,
:mod:`~django_ciba.checks.signed_requests` and :mod:`~django_ciba.checks.limits`; their check
functions are importable from here too, as before.
"""

from __future__ import annotations

from typing import Any

from django.core import checks

from django_ciba.checks.limits import check_abuse_settings
from django_ciba.checks.names import check_setting_names
from django_ciba.checks.outbound import check_delivery_settings
from django_ciba.checks.protocol import check_ciba_settings
from django_ciba.checks.signed_requests import check_client_key_settings
from django_ciba.core.conf import ciba_settings
from django_ciba.exceptions import CibaConfigurationError
from django_ciba.hashers import check_hasher_configuration


__all__ = [
    "check_abuse_settings",
    "check_ciba_settings",
    "check_client_key_settings",
    "check_delivery_settings",
    "check_dot_integration",
    "check_middleware",
    "check_setting_names",
]


# E040 / E041: the client-secret hasher must not hash user passwords, and must be installed.
checks.register(check_hasher_configuration)


@checks.register(checks.Tags.compatibility)
def check_dot_integration(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    from oauth2_provider.settings import oauth2_settings

    from django_ciba.oauthlib_core import CibaOAuthLibCoreMixin
    from django_ciba.server import CibaServerMixin
    from django_ciba.validators import CibaValidatorMixin

    errors: list[checks.CheckMessage] = []
    if not oauth2_settings.OIDC_ENABLED:
        errors.append(
            checks.Error(
                "django-ciba needs OpenID Connect: OAUTH2_PROVIDER['OIDC_ENABLED'] is off.",
                hint="Set OAUTH2_PROVIDER['OIDC_ENABLED'] = True and configure OIDC_RSA_PRIVATE_KEY.",
                id="django_ciba.E001",
            )
        )
    server_class = oauth2_settings.OAUTH2_SERVER_CLASS
    if not (isinstance(server_class, type) and issubclass(server_class, CibaServerMixin)):
        errors.append(
            checks.Error(
                "The OAuth2 server class does not register the CIBA grant.",
                hint="Set OAUTH2_PROVIDER['OAUTH2_SERVER_CLASS'] = 'django_ciba.server.Server', "
                "or add django_ciba.server.CibaServerMixin to your own server class.",
                id="django_ciba.E002",
            )
        )
    validator_class = oauth2_settings.OAUTH2_VALIDATOR_CLASS
    if not (isinstance(validator_class, type) and issubclass(validator_class, CibaValidatorMixin)):
        errors.append(
            checks.Error(
                "The OAuth2 validator class does not include the CIBA validator mixin.",
                hint="Set OAUTH2_PROVIDER['OAUTH2_VALIDATOR_CLASS'] = "
                "'django_ciba.validators.OAuth2Validator', "
                "or add django_ciba.validators.CibaValidatorMixin to your own validator.",
                id="django_ciba.E003",
            )
        )
    backend_class = oauth2_settings.OAUTH2_BACKEND_CLASS
    if not (isinstance(backend_class, type) and issubclass(backend_class, CibaOAuthLibCoreMixin)):
        errors.append(
            checks.Warning(
                "The OAuth2 backend class drops repeated parameters, so a repeated auth_req_id at the "
                "token endpoint is not refused.",
                hint="Set OAUTH2_PROVIDER['OAUTH2_BACKEND_CLASS'] = "
                "'django_ciba.oauthlib_core.OAuthLibCore'.",
                id="django_ciba.W004",
            )
        )
    try:
        modes = set(ciba_settings.DELIVERY_MODES or [])
    except (CibaConfigurationError, TypeError):
        modes = set()  # reported by check_ciba_settings (E010 / E016)
    if modes & {"ping", "push"} and not oauth2_settings.OIDC_ISS_ENDPOINT:
        errors.append(
            checks.Warning(
                "Ping and push need OAUTH2_PROVIDER['OIDC_ISS_ENDPOINT']: "
                "tokens are minted outside a request.",
                id="django_ciba.W005",
            )
        )
    return errors


def _installed(path: str, cls: type) -> bool:
    """Whether ``MIDDLEWARE`` lists ``path`` or a subclass of ``cls``."""
    from django.conf import settings
    from django.utils.module_loading import import_string

    for entry in getattr(settings, "MIDDLEWARE", None) or []:
        if entry == path:
            return True
        try:
            middleware = import_string(entry)
        except ImportError:
            continue  # Django reports unusable middleware itself
        if isinstance(middleware, type) and issubclass(middleware, cls):
            return True
    return False


@checks.register()
def check_middleware(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """W070: the middleware answering a database outage; W090: the one refusing non-UTF-8 forms."""
    from django_ciba import middleware

    errors: list[checks.CheckMessage] = []
    if not _installed(middleware.MIDDLEWARE_PATH, middleware.DatabaseUnavailableMiddleware):
        errors.append(
            checks.Warning(
                "DatabaseUnavailableMiddleware is not installed: while the database is unreachable, "
                "the protocol endpoints answer a bare 500 instead of 503 temporarily_unavailable.",
                hint=f"Add {middleware.MIDDLEWARE_PATH!r} to MIDDLEWARE.",
                id="django_ciba.W070",
            )
        )
    path = middleware.MALFORMED_BODY_MIDDLEWARE_PATH
    if not _installed(path, middleware.MalformedBodyMiddleware):
        errors.append(
            checks.Warning(
                "MalformedBodyMiddleware is not installed: a form body declared in a charset other "
                "than UTF-8 gets Django's HTML 400 (a 500 with DEBUG on) instead of invalid_request.",
                hint=f"Add {path!r} to MIDDLEWARE, first in the list.",
                id="django_ciba.W090",
            )
        )
    return errors
