"""django-ciba settings: one dict, ``CIBA = {...}``, read at call time.

Related keys are grouped into sections (``CIBA["OUTBOUND"]["READ_TIMEOUT"]``, see :data:`SECTIONS`);
``ciba_settings`` keeps one flat attribute per setting (``ciba_settings.OUTBOUND_READ_TIMEOUT``), and
the old flat keys of ``CIBA`` keep working (the system checks warn). :data:`DEFAULTS` is keyed by those
flat names. ``ciba_settings.NAME`` returns the user's value or the default; import strings are resolved
lazily and cached until the ``CIBA`` setting changes (``setting_changed`` reloads the object,
so ``override_settings(CIBA={...})`` works in tests).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.utils.module_loading import import_string

from django_ciba.core.defaults import DEFAULTS as DEFAULTS  # re-exported: the settings' defaults
from django_ciba.exceptions import CibaConfigurationError


IMPORT_STRINGS = ("USER_RESOLVERS", "USER_CODE_VERIFIER", "DECISION_POLICIES", "AUTHENTICATION_CONTEXT")

#: The nested sections of ``CIBA``: section -> {key in the section: the flat name it replaces}. The
#: flat name stays the attribute of :data:`ciba_settings` (``ciba_settings.OUTBOUND_READ_TIMEOUT``
#: reads ``CIBA["OUTBOUND"]["READ_TIMEOUT"]``) and, deprecated, a key of ``CIBA`` (check W180).
SECTIONS: dict[str, dict[str, str]] = {
    "LOGIN_HINT_TOKEN": {
        "KEYS": "LOGIN_HINT_TOKEN_KEYS",
        "ISSUERS": "LOGIN_HINT_TOKEN_ISSUERS",
        "ALGORITHMS": "LOGIN_HINT_TOKEN_ALGORITHMS",
    },
    "BINDING_MESSAGE": {
        "MAX_LENGTH": "BINDING_MESSAGE_MAX_LENGTH",
        "PATTERN": "BINDING_MESSAGE_PATTERN",
        "REQUIRED": "BINDING_MESSAGE_REQUIRED",
    },
    "OUTBOUND": {
        "ALLOWED_NETWORKS": "OUTBOUND_ALLOWED_NETWORKS",
        "CONNECT_TIMEOUT": "OUTBOUND_CONNECT_TIMEOUT",
        "READ_TIMEOUT": "OUTBOUND_READ_TIMEOUT",
    },
    "DELIVERY": {
        "RETRY_BASE_DELAY": "RETRY_BASE_DELAY",
        "RETRY_MAX_DELAY": "RETRY_MAX_DELAY",
        "RETRY_MIN_WINDOW": "RETRY_MIN_WINDOW",
        "LEASE": "DELIVERY_LEASE",
        "ACKNOWLEDGEMENT_GRACE": "ACKNOWLEDGEMENT_GRACE",
    },
    "MAINTENANCE": {"RETENTION": "RETENTION", "BATCH_SIZE": "BATCH_SIZE"},
    "SIGNED_REQUESTS": {
        "REQUIRED": "REQUIRE_SIGNED_REQUESTS",
        "MAX_LIFETIME": "REQUEST_OBJECT_MAX_LIFETIME",
        "MAX_AGE": "REQUEST_OBJECT_MAX_AGE",
    },
    "JWKS": {
        "CACHE_TTL": "JWKS_CACHE_TTL",
        "MAX_BYTES": "JWKS_MAX_BYTES",
        "REFRESH_INTERVAL": "JWKS_REFRESH_INTERVAL",
        "FETCH_TIMEOUT": "JWKS_FETCH_TIMEOUT",
        "FAILURE_BACKOFF": "JWKS_FAILURE_BACKOFF",
        "FAILURE_MAX_BACKOFF": "JWKS_FAILURE_MAX_BACKOFF",
        "FETCH_LIMIT": "JWKS_FETCH_LIMIT",
        "MAX_CONCURRENT_FETCHES": "JWKS_MAX_CONCURRENT_FETCHES",
    },
    "DPOP": {
        "ENABLED": "DPOP_ENABLED",
        "SIGNING_ALGORITHMS": "DPOP_SIGNING_ALGORITHMS",
        "NONCE_REQUIRED": "DPOP_NONCE_REQUIRED",
        "NONCE_LIFETIME": "DPOP_NONCE_LIFETIME",
        "PROOF_MAX_AGE": "DPOP_PROOF_MAX_AGE",
    },
    "MTLS": {
        "CERTIFICATE_HEADER": "MTLS_CERTIFICATE_HEADER",
        "VERIFIED_HEADER": "MTLS_VERIFIED_HEADER",
        "TRUSTED_PROXIES": "MTLS_TRUSTED_PROXIES",
        "ENDPOINT_ALIASES": "MTLS_ENDPOINT_ALIASES",
    },
    "LIMITS": {
        "CLIENT_RATE": "CLIENT_RATE_LIMIT",
        "USER_RATE": "USER_RATE_LIMIT",
        "UNAPPROVED_PROMPTS": "UNAPPROVED_PROMPT_LIMIT",
        "UNAPPROVED_PROMPTS_CEILING": "UNAPPROVED_PROMPT_CEILING",
        "PENDING_PER_CLIENT_USER": "MAX_PENDING_PER_CLIENT_USER",
        "USER_CODE_MAX_FAILURES": "USER_CODE_MAX_FAILURES",
        "USER_CODE_LOCKOUT": "USER_CODE_LOCKOUT",
        "ABUSE_REPORTS": "ABUSE_REPORT_LIMIT",
    },
    "AUTHORIZATION_DETAILS": {
        "TYPES": "AUTHORIZATION_DETAILS_TYPES",
        "MAX_BYTES": "AUTHORIZATION_DETAILS_MAX_BYTES",
        "MAX_DEPTH": "AUTHORIZATION_DETAILS_MAX_DEPTH",
        "MAX_ITEMS": "AUTHORIZATION_DETAILS_MAX_ITEMS",
    },
    "REMINDERS": {"AFTER": "REMINDER_AFTER", "EVERY": "REMINDER_EVERY", "MAX": "REMINDER_MAX"},
    "RECEIPTS": {"ISSUE": "RECEIPTS_ISSUE", "ALGORITHM": "RECEIPTS_ALGORITHM"},
}

#: Flat name -> (section, key) for every setting that moved into a section.
LOCATIONS: dict[str, tuple[str, str]] = {
    flat: (section, key) for section, keys in SECTIONS.items() for key, flat in keys.items()
}

#: Deprecated top-level keys that became options of a notification backend:
#: flat name -> (the backend's import path, its option).
BACKEND_OPTIONS: dict[str, tuple[str, str]] = {
    "WEBPUSH_VAPID_PRIVATE_KEY": ("django_ciba.backends.webpush.WebPushBackend", "vapid_private_key"),
    "WEBPUSH_VAPID_PUBLIC_KEY": ("django_ciba.backends.webpush.WebPushBackend", "vapid_public_key"),
    "WEBPUSH_VAPID_SUBJECT": ("django_ciba.backends.webpush.WebPushBackend", "vapid_subject"),
}


def setting_name(flat: str) -> str:
    """How messages and the docs name a setting: ``CIBA['OUTBOUND']['READ_TIMEOUT']``."""
    if flat in LOCATIONS:
        section, key = LOCATIONS[flat]
        return f"CIBA[{section!r}][{key!r}]"
    if flat in BACKEND_OPTIONS:
        return f"CIBA['NOTIFICATION_BACKEND']['OPTIONS'][{BACKEND_OPTIONS[flat][1]!r}]"
    return f"CIBA[{flat!r}]"


def nested_defaults() -> dict[str, Any]:
    """:data:`DEFAULTS` in the documented spelling: the sections as dicts (backend options left out)."""
    nested: dict[str, Any] = {}
    for flat, value in DEFAULTS.items():
        if flat in BACKEND_OPTIONS:
            continue
        if flat in LOCATIONS:
            section, key = LOCATIONS[flat]
            nested.setdefault(section, {})[key] = value
        else:
            nested[flat] = value
    return nested


class CibaSettings:
    """Lazy view over ``settings.CIBA`` with defaults; see :data:`DEFAULTS`.

    Attributes keep the flat names; a setting that moved into a section is read there first, then
    under its old flat key (deprecated, check W180).
    """

    def __init__(self, defaults: dict[str, Any] | None = None) -> None:
        self.defaults = defaults or DEFAULTS
        self._cached: set[str] = set()

    @property
    def user_settings(self) -> dict[str, Any]:
        value = getattr(settings, "CIBA", None) or {}
        if not isinstance(value, dict):
            raise CibaConfigurationError("The CIBA setting must be a dict.")
        for section in SECTIONS:
            if section in value and not isinstance(value[section], dict):
                raise CibaConfigurationError(f"CIBA[{section!r}] must be a dict.")
        return value

    def given(self, name: str) -> bool:
        """Whether the project sets ``name`` (a flat name), in either spelling."""
        return bool(self.spellings(name))

    def spellings(self, name: str) -> list[str]:
        """The spellings of ``name`` the project uses: ``"new"`` and/or ``"old"``."""
        user = self.user_settings
        found = []
        if name in LOCATIONS:
            section, key = LOCATIONS[name]
            if key in user.get(section, {}):
                found.append("new")
            if name in user:
                found.append("old")
        elif name in user:
            found.append("new" if name not in BACKEND_OPTIONS else "old")
        return found

    def __getattr__(self, name: str) -> Any:
        if name not in self.defaults:
            raise AttributeError(f"Invalid django-ciba setting: {name!r}")
        user = self.user_settings
        value = self.defaults[name]
        if name in LOCATIONS:
            section, key = LOCATIONS[name]
            # The new spelling wins over the old one (both given: check E181).
            nested = user.get(section, {})
            if key in nested:
                value = nested[key]
            elif name in user:
                value = user[name]
        elif name in user:
            value = user[name]
        if name in IMPORT_STRINGS:
            value = _perform_import(value, name)
        self._cached.add(name)
        setattr(self, name, value)
        return value

    def reload(self) -> None:
        for name in self._cached:
            self.__dict__.pop(name, None)
        self._cached.clear()


def _perform_import(value: Any, name: str) -> Any:
    if value is None:
        return None
    if isinstance(value, str):
        return _import(value, name)
    if isinstance(value, list | tuple):
        return [_import(item, name) if isinstance(item, str) else item for item in value]
    return value


def _import(path: str, name: str) -> Any:
    try:
        return import_string(path)
    except ImportError as exc:
        raise CibaConfigurationError(f"Could not import {path!r} for CIBA[{name!r}]: {exc}") from exc


def nearest_setting(name: Any, section: str | None = None) -> str | None:
    """The valid spelling closest to an unknown key ``name`` (a misspelling, the wrong case, or an old
    flat name inside a section), in the form :func:`setting_name` gives, or None."""
    import difflib

    if section is not None:
        candidates = {key: f"CIBA[{section!r}][{key!r}]" for key in SECTIONS.get(section, {})}
    else:
        candidates = {flat: setting_name(flat) for flat in DEFAULTS}
        candidates.update({section_name: f"CIBA[{section_name!r}]" for section_name in SECTIONS})
    close = difflib.get_close_matches(str(name).upper(), list(candidates), n=1, cutoff=0.6)
    return candidates[close[0]] if close else None


ciba_settings = CibaSettings(DEFAULTS)


def _reload(*, setting: str, **kwargs: Any) -> None:
    if setting == "CIBA":
        ciba_settings.reload()


setting_changed.connect(_reload)
