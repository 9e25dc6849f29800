"""System checks for a misconfigured django-ciba (ids ``django_ciba.E0xx`` / ``W0xx``)."""

from __future__ import annotations

from typing import Any

from django.core import checks

from django_ciba.core.conf import DEFAULTS, ciba_settings, nearest_setting
from django_ciba.exceptions import CibaConfigurationError
from django_ciba.hashers import check_hasher_configuration


# E040 / E041: the client-secret hasher must not hash user passwords, and must be installed.
checks.register(check_hasher_configuration)


VALID_MODES = {"poll", "ping", "push"}


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


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


@checks.register()
def check_ciba_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    errors: list[checks.CheckMessage] = []

    def error(message: str, number: int) -> None:
        errors.append(checks.Error(message, id=f"django_ciba.E{number:03d}"))

    try:
        unknown = sorted(set(ciba_settings.user_settings) - set(DEFAULTS))
    except CibaConfigurationError as exc:
        return [checks.Error(str(exc), id="django_ciba.E010")]
    for name in unknown:
        close = nearest_setting(name)
        hint = f"Did you mean {close!r}? " if close else "Remove it. "
        errors.append(
            checks.Error(
                f"Unknown CIBA setting {name!r}.",
                hint=f"{hint}The valid keys are listed on the settings page.",
                id="django_ciba.E011",
            )
        )
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


def _positive_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


@checks.register()
def check_delivery_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Delivery, outbound-call, sealing and notification-backend settings (E021-E026, W027)."""
    import ipaddress

    from django.conf import settings

    errors: list[checks.CheckMessage] = []

    def error(message: str, number: int) -> None:
        errors.append(checks.Error(message, id=f"django_ciba.E{number:03d}"))

    try:
        _ = ciba_settings.user_settings
    except CibaConfigurationError:
        return []  # reported as E010
    for name in (
        "OUTBOUND_CONNECT_TIMEOUT",
        "OUTBOUND_READ_TIMEOUT",
        "RETRY_BASE_DELAY",
        "RETRY_MAX_DELAY",
        "RETRY_MIN_WINDOW",
        "DELIVERY_LEASE",
        "ACKNOWLEDGEMENT_GRACE",
    ):
        if not _positive_number(getattr(ciba_settings, name)):
            error(f"CIBA[{name!r}] must be a positive number of seconds.", 21)
    if not _positive_int(ciba_settings.BATCH_SIZE):
        error("CIBA['BATCH_SIZE'] must be a positive integer.", 21)
    retention = ciba_settings.RETENTION
    if not isinstance(retention, int) or isinstance(retention, bool) or retention < 0:
        error("CIBA['RETENTION'] must be zero or a positive number of seconds.", 21)
    timeouts = (ciba_settings.OUTBOUND_CONNECT_TIMEOUT, ciba_settings.OUTBOUND_READ_TIMEOUT)
    if all(_positive_number(value) for value in (*timeouts, ciba_settings.DELIVERY_LEASE)):
        if ciba_settings.DELIVERY_LEASE <= sum(timeouts):
            error(
                "CIBA['DELIVERY_LEASE'] must be longer than the outbound connect and read timeouts "
                "together, or a slow delivery could be taken over while it still runs.",
                22,
            )
    networks = ciba_settings.OUTBOUND_ALLOWED_NETWORKS
    try:
        if isinstance(networks, str):
            raise ValueError("a list is expected")
        for network in networks or []:
            ipaddress.ip_network(network, strict=False)
    except (TypeError, ValueError) as exc:
        error(f"CIBA['OUTBOUND_ALLOWED_NETWORKS'] must be a list of CIDR networks: {exc}", 23)
    approval_url = ciba_settings.APPROVAL_URL
    if approval_url is not None:
        try:
            ok = isinstance(approval_url, str) and approval_url.format(pk=1) != approval_url
        except (KeyError, IndexError, ValueError):
            ok = False
        if not ok:
            error("CIBA['APPROVAL_URL'] must be None or a URL containing '{pk}' (and no other field).", 24)
    try:
        from django_ciba.core.sealing import seal

        seal("check")
    except (CibaConfigurationError, TypeError, ValueError) as exc:
        error(f"CIBA['SEALING_KEYS'] cannot be used: {exc}", 25)
    errors.extend(_check_backend(settings))
    return errors


def _check_backend(settings: Any) -> list[checks.CheckMessage]:
    from django_ciba.backends import get_backend

    try:
        backend = get_backend()
    except CibaConfigurationError as exc:
        return [checks.Error(str(exc), id="django_ciba.E026")]
    messages = list(backend.check())
    module = type(backend).__module__
    if not settings.DEBUG and module in ("django_ciba.backends.console", "django_ciba.backends.locmem"):
        messages.append(
            checks.Warning(
                f"Device notifications go to {type(backend).__name__}: no user is ever notified.",
                hint="Set CIBA['NOTIFICATION_BACKEND'] to a real backend (email, webhook or your own).",
                id="django_ciba.W027",
            )
        )
    return messages


#: JWS algorithms PyJWT verifies with public keys (SIGNING_ALGORITHMS must stay within these).
ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)


@checks.register()
def check_client_key_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Signed requests, client assertions, JWK sets, registration and subjects (E050-E053)."""
    errors: list[checks.CheckMessage] = []

    def error(message: str, number: int) -> None:
        errors.append(checks.Error(message, id=f"django_ciba.E{number:03d}"))

    try:
        _ = ciba_settings.user_settings
    except CibaConfigurationError:
        return []  # reported as E010
    algorithms = ciba_settings.SIGNING_ALGORITHMS
    if (
        not isinstance(algorithms, list | tuple)
        or not algorithms
        or any(algorithm not in ASYMMETRIC_ALGORITHMS for algorithm in algorithms)
    ):
        error(
            "CIBA['SIGNING_ALGORITHMS'] must be a non-empty list of asymmetric JWS algorithms "
            f"({', '.join(sorted(ASYMMETRIC_ALGORITHMS))}); none and HS* are never accepted.",
            50,
        )
    for name in (
        "REQUEST_OBJECT_MAX_LIFETIME",
        "REQUEST_OBJECT_MAX_AGE",
        "CLIENT_ASSERTION_MAX_LIFETIME",
        "JWKS_CACHE_TTL",
        "JWKS_MAX_BYTES",
        "JWKS_REFRESH_INTERVAL",
    ):
        if not _positive_number(getattr(ciba_settings, name)):
            error(f"CIBA[{name!r}] must be a positive number.", 51)
    types = ciba_settings.SUBJECT_TYPES_SUPPORTED
    if (
        not isinstance(types, list | tuple)
        or "public" not in types
        or not set(types) <= {"public", "pairwise"}
    ):
        error("CIBA['SUBJECT_TYPES_SUPPORTED'] must list public, and may add pairwise.", 52)
    salt = ciba_settings.PAIRWISE_SALT
    if salt is not None and not isinstance(salt, str | bytes):
        error("CIBA['PAIRWISE_SALT'] must be None or a string.", 53)
    return errors


@checks.register()
def check_abuse_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Rate limits, pending limits, approval fatigue, user_code lockout, abuse reports and their cache
    (E060-E063, W064-W065, E066-E068, W066, E108-E109)."""
    from django.conf import settings
    from django.core.cache import InvalidCacheBackendError, caches
    from django.core.cache.backends.db import DatabaseCache
    from django.core.cache.backends.dummy import DummyCache
    from django.core.cache.backends.filebased import FileBasedCache
    from django.core.cache.backends.locmem import LocMemCache

    errors: list[checks.CheckMessage] = []

    def error(message: str, number: int) -> None:
        errors.append(
            checks.Error(message, hint="See the abuse controls page.", id=f"django_ciba.E{number:03d}")
        )

    try:
        _ = ciba_settings.user_settings
    except CibaConfigurationError:
        return []  # reported as E010
    # One ID per setting: E060 the client limit, E108 the user limit, E109 the abuse-report limit.
    for name, number in (("CLIENT_RATE_LIMIT", 60), ("USER_RATE_LIMIT", 108), ("ABUSE_REPORT_LIMIT", 109)):
        if not _none_or_pair(getattr(ciba_settings, name)):
            error(f"CIBA[{name!r}] must be None or [requests, seconds], two positive integers.", number)
    if not _none_or_positive_int(ciba_settings.MAX_PENDING_PER_USER):
        error("CIBA['MAX_PENDING_PER_USER'] must be None or a positive integer.", 61)
    errors.extend(_check_prompt_settings(error))
    failures = ciba_settings.USER_CODE_MAX_FAILURES
    if failures is not None and not _positive_int(failures):
        error("CIBA['USER_CODE_MAX_FAILURES'] must be None or a positive integer.", 62)
    if not _positive_int(ciba_settings.USER_CODE_LOCKOUT):
        error("CIBA['USER_CODE_LOCKOUT'] must be a positive number of seconds (an integer).", 62)
    alias = ciba_settings.CACHE_ALIAS
    try:
        cache = caches[alias]
    except (InvalidCacheBackendError, TypeError, ImportError) as exc:
        error(f"CIBA['CACHE_ALIAS'] must name a cache of the CACHES setting ({alias!r}: {exc}).", 63)
        return errors
    if isinstance(cache, DummyCache):
        errors.append(
            checks.Warning(
                f"The CIBA cache {alias!r} is a DummyCache: rate limits, the user_code lockout and "
                "slow_down never take effect.",
                hint="Point CIBA['CACHE_ALIAS'] at a Redis or Memcached cache shared by all servers.",
                id="django_ciba.W064",
            )
        )
    elif isinstance(cache, DatabaseCache | FileBasedCache) or (
        isinstance(cache, LocMemCache) and not settings.DEBUG
    ):
        reason = (
            "is local to each process, so every process counts on its own"
            if isinstance(cache, LocMemCache)
            else "does not increment atomically, so concurrent requests can be missed"
        )
        errors.append(
            checks.Warning(
                f"The CIBA cache {alias!r} ({type(cache).__name__}) {reason}: rate limits and the "
                "user_code lockout are not enforced reliably.",
                hint="Point CIBA['CACHE_ALIAS'] at a Redis or Memcached cache shared by all servers.",
                id="django_ciba.W065",
            )
        )
    return errors


def _check_prompt_settings(error: Any) -> list[checks.CheckMessage]:
    """The pending limit per client and user, approval fatigue, the deprecated per-user cap (E066-E068,
    W066); errors go through ``error``, warnings are returned."""
    if not _none_or_positive_int(ciba_settings.MAX_PENDING_PER_CLIENT_USER):
        error("CIBA['MAX_PENDING_PER_CLIENT_USER'] must be None or a positive integer.", 66)
    for name, number in (("UNAPPROVED_PROMPT_LIMIT", 67), ("UNAPPROVED_PROMPT_CEILING", 68)):
        if not _none_or_pair(getattr(ciba_settings, name)):
            error(f"CIBA[{name!r}] must be None or [prompts, seconds], two positive integers.", number)
    if (
        "MAX_PENDING_PER_USER" in ciba_settings.user_settings
        and ciba_settings.MAX_PENDING_PER_USER is not None
    ):
        return [
            checks.Warning(
                "CIBA['MAX_PENDING_PER_USER'] is deprecated: it refuses every client once one user has "
                "that many requests waiting, so a busy or testing client is refused.",
                hint="Remove it; CIBA['MAX_PENDING_PER_CLIENT_USER'] supersedes a client's oldest requests "
                "instead of refusing new ones.",
                id="django_ciba.W066",
            )
        ]
    return []


def _none_or_positive_int(value: Any) -> bool:
    return value is None or _positive_int(value)


def _none_or_pair(value: Any) -> bool:
    return value is None or (
        isinstance(value, list | tuple) and len(value) == 2 and all(_positive_int(item) for item in value)
    )


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
