"""System checks for a misconfigured django-ciba (ids ``django_ciba.E0xx`` / ``W0xx``)."""

from __future__ import annotations

from typing import Any

from django.core import checks

from .conf import DEFAULTS, ciba_settings
from .exceptions import CibaConfigurationError


VALID_MODES = {"poll", "ping", "push"}


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


@checks.register(checks.Tags.compatibility)
def check_dot_integration(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    from oauth2_provider.settings import oauth2_settings

    from .oauthlib_core import CibaOAuthLibCoreMixin
    from .server import CibaServerMixin
    from .validators import CibaValidatorMixin

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


@checks.register()
def check_ciba_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    errors: list[checks.CheckMessage] = []

    def error(message: str, number: int) -> None:
        errors.append(checks.Error(message, id=f"django_ciba.E{number:03d}"))

    try:
        unknown = sorted(set(ciba_settings.user_settings) - set(DEFAULTS))
    except CibaConfigurationError as exc:
        return [checks.Error(str(exc), id="django_ciba.E010")]
    if unknown:
        error(f"Unknown CIBA settings: {', '.join(unknown)}.", 11)
    for name in ("DEFAULT_EXPIRES_IN", "MAX_EXPIRES_IN", "INTERVAL", "BINDING_MESSAGE_MAX_LENGTH"):
        if not _positive_int(getattr(ciba_settings, name)):
            error(f"CIBA[{name!r}] must be a positive integer.", 12)
    if _positive_int(ciba_settings.DEFAULT_EXPIRES_IN) and _positive_int(ciba_settings.MAX_EXPIRES_IN):
        if ciba_settings.DEFAULT_EXPIRES_IN > ciba_settings.MAX_EXPIRES_IN:
            error("CIBA['DEFAULT_EXPIRES_IN'] must not exceed CIBA['MAX_EXPIRES_IN'].", 13)
        if ciba_settings.MAX_EXPIRES_IN > 365 * 24 * 3600:
            error("CIBA['MAX_EXPIRES_IN'] must not exceed one year.", 13)
    if _positive_int(ciba_settings.INTERVAL) and _positive_int(ciba_settings.DEFAULT_EXPIRES_IN):
        if ciba_settings.INTERVAL >= ciba_settings.DEFAULT_EXPIRES_IN:
            error("CIBA['INTERVAL'] must be shorter than CIBA['DEFAULT_EXPIRES_IN'].", 14)
    if not _positive_int(ciba_settings.SLOW_DOWN_INCREMENT):
        error("CIBA['SLOW_DOWN_INCREMENT'] must be a positive integer.", 15)
    modes = ciba_settings.DELIVERY_MODES
    if (
        not isinstance(modes, list | tuple)
        or not modes
        or not all(isinstance(mode, str) and mode in VALID_MODES for mode in modes)
    ):
        error("CIBA['DELIVERY_MODES'] must be a non-empty subset of poll, ping and push.", 16)
    if not isinstance(ciba_settings.AUTH_REQ_ID_BYTES, int) or ciba_settings.AUTH_REQ_ID_BYTES < 16:
        error("CIBA['AUTH_REQ_ID_BYTES'] must be at least 16 (128 bits, CIBA Core 7.3).", 17)
    try:
        verifier = ciba_settings.USER_CODE_VERIFIER
        resolvers = ciba_settings.USER_RESOLVERS
    except CibaConfigurationError as exc:
        return [*errors, checks.Error(str(exc), id="django_ciba.E018")]
    if ciba_settings.USER_CODE_SUPPORTED and verifier is None:
        error("CIBA['USER_CODE_SUPPORTED'] is on but CIBA['USER_CODE_VERIFIER'] is not set.", 19)
    if not resolvers:
        error("CIBA['USER_RESOLVERS'] must name at least one resolver.", 20)
    return errors
