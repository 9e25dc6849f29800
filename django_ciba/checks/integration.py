"""System checks of how django-ciba is wired into the project (E100-E105, W106-W107, E110).

Each of these misconfigurations passes Django's own checks and only shows at run time: the URLs
mounted in the wrong order, no usable OpenID Connect signing key, tasks that no worker ever runs.
"""

from __future__ import annotations

from typing import Any

from django.core import checks


#: The views that must answer django-ciba's discovery and token paths (or subclasses of them). Named,
#: not imported, so that these checks do not load the views.
DISCOVERY_VIEW = "django_ciba.views.discovery.CibaConnectDiscoveryInfoView"
TOKEN_VIEW = "django_ciba.views.token.TokenView"


def _is_view(view_class: type | None, dotted: str) -> bool:
    """Whether ``view_class`` is the class named ``dotted`` or a subclass of it."""
    if view_class is None:
        return False
    return any(f"{cls.__module__}.{cls.__qualname__}" == dotted for cls in view_class.__mro__)


def _view_class(path: str) -> type | None:
    """The class of the view Django's URL resolver picks for ``path`` (None: a function or nothing)."""
    from django.urls import Resolver404, resolve

    try:
        match = resolve(path)
    except Resolver404:
        return None
    view_class = getattr(match.func, "view_class", None)
    return view_class if isinstance(view_class, type) else None


def _reverse(name: str) -> str | None:
    from django.urls import NoReverseMatch, reverse

    try:
        return reverse(name)
    except NoReverseMatch:
        return None


MOUNT_HINT = (
    "Mount django-ciba before DOT, under the same prefix: path('o/', include('django_ciba.urls')), "
    "then path('o/', include('oauth2_provider.urls', namespace='oauth2_provider'))."
)


@checks.register(checks.Tags.urls)
def check_url_mounting(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """E100: not mounted; E101 / E102: discovery or token shadowed by DOT's; E103: DOT's discovery
    served elsewhere without the CIBA metadata."""
    discovery = _reverse("django_ciba:oidc-connect-discovery-info")
    token = _reverse("django_ciba:token")
    if discovery is None or token is None or _reverse("django_ciba:bc-authorize") is None:
        return [
            checks.Error(
                "django_ciba.urls is not mounted: there is no backchannel authentication endpoint, "
                "and discovery lists no backchannel_* metadata.",
                hint=MOUNT_HINT,
                id="django_ciba.E100",
            )
        ]
    errors: list[checks.CheckMessage] = []
    served = _view_class(discovery)
    shadowed = not _is_view(served, DISCOVERY_VIEW)
    if shadowed:
        errors.append(
            checks.Error(
                f"{discovery} is answered by {getattr(served, '__name__', 'another view')}, not by "
                "django-ciba's discovery view: the document lacks every backchannel_* field and the "
                "CIBA grant (django_ciba.urls is mounted after oauth2_provider.urls).",
                hint=MOUNT_HINT,
                id="django_ciba.E101",
            )
        )
    served = _view_class(token)
    if not _is_view(served, TOKEN_VIEW):
        errors.append(
            checks.Error(
                f"{token} is answered by {getattr(served, '__name__', 'another view')}, not by "
                "django-ciba's token view (django_ciba.urls is mounted after oauth2_provider.urls).",
                hint=MOUNT_HINT,
                id="django_ciba.E102",
            )
        )
    dot_discovery = _reverse("oauth2_provider:oidc-connect-discovery-info")
    if not shadowed and dot_discovery is not None and dot_discovery != discovery:
        served = _view_class(dot_discovery)
        if not _is_view(served, DISCOVERY_VIEW):
            errors.append(
                checks.Error(
                    f"DOT's discovery document ({dot_discovery}) is served without the CIBA metadata; "
                    f"django-ciba's is at {discovery} (the two URL sets are mounted under different "
                    "prefixes).",
                    hint=MOUNT_HINT,
                    id="django_ciba.E103",
                )
            )
    return errors


@checks.register(checks.Tags.security)
def check_oidc_signing_key(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """E104: no OIDC signing key; E105: a key that cannot be read (both only with OIDC on)."""
    from oauth2_provider.settings import oauth2_settings

    if not oauth2_settings.OIDC_ENABLED:
        return []  # reported as E001
    pem = oauth2_settings.OIDC_RSA_PRIVATE_KEY
    hint = (
        "Set OAUTH2_PROVIDER['OIDC_RSA_PRIVATE_KEY'] to an RSA private key in PEM, e.g. read from a "
        "file made with: openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048"
    )
    if not pem or (isinstance(pem, str) and not pem.strip()):
        return [
            checks.Error(
                "OAUTH2_PROVIDER['OIDC_RSA_PRIVATE_KEY'] is not set: ID tokens cannot be signed, so "
                "every approved request fails at the token endpoint.",
                hint=hint,
                id="django_ciba.E104",
            )
        ]
    problem = signing_key_problem(pem)
    if problem is None:
        return []
    return [
        checks.Error(
            f"OAUTH2_PROVIDER['OIDC_RSA_PRIVATE_KEY'] cannot be used to sign ID tokens: {problem}",
            hint=hint,
            id="django_ciba.E105",
        )
    ]


def signing_key_problem(pem: Any) -> str | None:
    """Why DOT could not sign with ``pem`` (read as DOT reads it), or None."""
    from jwcrypto import jwk

    if not isinstance(pem, str | bytes):
        return f"a PEM string is expected, not {type(pem).__name__}."
    data = pem.encode("utf-8") if isinstance(pem, str) else pem
    try:
        key = jwk.JWK.from_pem(data)
    except Exception as exc:  # jwcrypto and cryptography raise several types for unreadable keys
        return f"it is not a readable PEM private key ({type(exc).__name__})."
    if not key.has_private:
        return "it is a public key; the private key is needed."
    if key.get("kty") != "RSA":
        return f"it is a {key.get('kty')} key; DOT signs ID tokens with RS256, an RSA key."
    return None


CELERY_HINT = (
    "Create the project's Celery app (app.config_from_object('django.conf:settings', "
    "namespace='CELERY')) and import it from the project package's __init__.py; then set "
    "CELERY_BROKER_URL and run a worker, or CELERY_TASK_ALWAYS_EAGER = True to run the tasks in the web "
    "process (see the installation page)."
)


@checks.register()
def check_celery(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """W106: the ``CELERY_*`` settings do not reach the tasks' app; W107: no broker and not eager."""
    from django.conf import settings

    from django_ciba.tasks import deliver

    return celery_messages(deliver.app, settings)


def celery_messages(app: Any, settings: Any) -> list[checks.CheckMessage]:
    """The Celery checks for ``app`` (the one django-ciba's tasks run on) under Django ``settings``."""
    conf = app.conf
    ignored = []
    for setting, key in (
        ("CELERY_TASK_ALWAYS_EAGER", "task_always_eager"),
        ("CELERY_BROKER_URL", "broker_url"),
    ):
        # Compared by truth value: an empty URL and no URL are the same configuration.
        if hasattr(settings, setting) and (getattr(settings, setting) or None) != (conf.get(key) or None):
            ignored.append(setting)
    messages: list[checks.CheckMessage] = []
    if ignored:
        messages.append(
            checks.Warning(
                f"The Celery app django-ciba's tasks run on ({app.main!r}) has not read "
                f"{' and '.join(ignored)}: no project Celery app reads the CELERY_* settings.",
                hint=CELERY_HINT,
                id="django_ciba.W106",
            )
        )
    if not conf.task_always_eager and not conf.broker_url:
        messages.append(
            checks.Warning(
                "Celery tasks do not run in-process (task_always_eager is off) and no broker is "
                "configured: device notifications and ping and push callbacks go to Celery's default "
                "broker, where no worker of this project reads them; they are sent late, if at all, "
                "by the outbox sweep of manage.py ciba_cleanup.",
                hint=CELERY_HINT,
                id="django_ciba.W107",
            )
        )
    return messages


@checks.register()
def check_decision_policies(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """E110: ``DECISION_POLICIES`` is not a list of importable policies (every bc-authorize fails)."""
    from django_ciba.core.conf import DEFAULTS, ciba_settings
    from django_ciba.exceptions import CibaConfigurationError

    try:
        policies = ciba_settings.user_settings.get("DECISION_POLICIES", DEFAULTS["DECISION_POLICIES"])
    except CibaConfigurationError:
        return []  # reported as E010
    problem = None
    if not isinstance(policies, list | tuple):
        problem = f"a list of import strings is expected, not {type(policies).__name__}"
    else:
        from django.utils.module_loading import import_string

        for entry in policies:
            if not isinstance(entry, str):
                if not callable(entry):
                    problem = f"{entry!r} is neither an import string nor a policy"
                continue
            try:
                import_string(entry)
            except ImportError as exc:
                problem = f"{entry!r} cannot be imported ({exc})"
    if problem is None:
        return []
    return [
        checks.Error(
            f"CIBA['DECISION_POLICIES'] cannot be used: {problem}. Every backchannel authentication "
            "request would fail.",
            hint="List the import paths of DecisionPolicy subclasses, e.g. "
            "['django_ciba.policies.PreAuthorizationPolicy'], or [] to always ask the user.",
            id="django_ciba.E110",
        )
    ]
