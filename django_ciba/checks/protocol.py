"""System checks of the protocol settings and of the ``CIBA`` dict itself.

The dict (E010), its sections (E182), unknown keys (E011); lifetimes and interval (E012-E015,
E140-E143), delivery modes (E016), ``auth_req_id`` entropy (E017), users and user codes (E018-E020,
E144), and the small protocol knobs (E145-E149, E165-E167). Each ID names one problem of one setting.
"""

from __future__ import annotations

import re
from typing import Any

from django.core import checks

from django_ciba.checks.values import (
    non_negative_number,
    positive_int,
    strings,
)
from django_ciba.core.conf import DEFAULTS, SECTIONS, ciba_settings, nearest_setting, setting_name
from django_ciba.exceptions import CibaConfigurationError


VALID_MODES = {"poll", "ping", "push"}
ONE_YEAR = 365 * 24 * 3600


def _unknown_keys(user: dict[str, Any]) -> list[tuple[str, str | None]]:
    """``(where, nearest valid spelling)`` of every key of ``CIBA`` and of its sections nobody reads."""
    known = set(DEFAULTS) | set(SECTIONS)
    found: list[tuple[str, str | None]] = [
        (f"{name!r}", nearest_setting(name)) for name in sorted(set(user) - known, key=str)
    ]
    for section, keys in SECTIONS.items():
        for key in sorted(set(user.get(section, {})) - set(keys), key=str):
            found.append((f"{section!r}][{key!r}", nearest_setting(key, section)))
    return found


def _structure(raw: Any) -> list[checks.CheckMessage]:
    """E010 / E182 / E011: the shape of the ``CIBA`` dict."""
    if not isinstance(raw, dict):
        return [checks.Error("The CIBA setting must be a dict.", id="django_ciba.E010")]
    errors: list[checks.CheckMessage] = [
        checks.Error(
            f"CIBA[{section!r}] must be a dict of the keys listed on the settings page.",
            id="django_ciba.E182",
        )
        for section in SECTIONS
        if section in raw and not isinstance(raw[section], dict)
    ]
    if errors:
        return errors
    for where, close in _unknown_keys(raw):
        hint = f"Did you mean {close}? " if close else "Remove it. "
        errors.append(
            checks.Error(
                f"Unknown CIBA setting {where}.",
                hint=f"{hint}The valid keys are listed on the settings page.",
                id="django_ciba.E011",
            )
        )
    return errors


@checks.register()
def check_ciba_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    from django.conf import settings

    errors = _structure(getattr(settings, "CIBA", None) or {})
    if any(message.id in ("django_ciba.E010", "django_ciba.E182") for message in errors):
        return errors
    errors.extend(_lifetimes())
    modes = ciba_settings.DELIVERY_MODES
    if (
        not isinstance(modes, list | tuple)
        or not modes
        or not all(isinstance(mode, str) and mode in VALID_MODES for mode in modes)
    ):
        errors.append(
            checks.Error(
                "CIBA['DELIVERY_MODES'] must be a non-empty subset of poll, ping and push.",
                id="django_ciba.E016",
            )
        )
    if not isinstance(ciba_settings.AUTH_REQ_ID_BYTES, int) or ciba_settings.AUTH_REQ_ID_BYTES < 16:
        errors.append(
            checks.Error(
                "CIBA['AUTH_REQ_ID_BYTES'] must be at least 16 (128 bits, CIBA Core 7.3).",
                id="django_ciba.E017",
            )
        )
    errors.extend(_users())
    errors.extend(_knobs())
    return errors


def _lifetimes() -> list[checks.CheckMessage]:
    """E012-E015, E140-E143: expiry, interval, slow_down and binding message length."""
    errors: list[checks.CheckMessage] = []
    default, maximum, interval = (
        ciba_settings.DEFAULT_EXPIRES_IN,
        ciba_settings.MAX_EXPIRES_IN,
        ciba_settings.INTERVAL,
    )
    if not positive_int(interval):
        errors.append(checks.Error("CIBA['INTERVAL'] must be a positive integer.", id="django_ciba.E012"))
    if not positive_int(default):
        errors.append(
            checks.Error("CIBA['DEFAULT_EXPIRES_IN'] must be a positive integer.", id="django_ciba.E140")
        )
    if not positive_int(maximum):
        errors.append(
            checks.Error("CIBA['MAX_EXPIRES_IN'] must be a positive integer.", id="django_ciba.E141")
        )
    length = ciba_settings.BINDING_MESSAGE_MAX_LENGTH
    if not positive_int(length):
        errors.append(
            checks.Error(
                f"{setting_name('BINDING_MESSAGE_MAX_LENGTH')} must be a positive integer.",
                id="django_ciba.E142",
            )
        )
    if positive_int(default) and positive_int(maximum) and default > maximum:
        errors.append(
            checks.Error(
                "CIBA['DEFAULT_EXPIRES_IN'] must not exceed CIBA['MAX_EXPIRES_IN'].", id="django_ciba.E013"
            )
        )
    if positive_int(maximum) and maximum > ONE_YEAR:
        errors.append(checks.Error("CIBA['MAX_EXPIRES_IN'] must not exceed one year.", id="django_ciba.E143"))
    if positive_int(interval) and positive_int(default) and interval >= default:
        errors.append(
            checks.Error(
                "CIBA['INTERVAL'] must be shorter than CIBA['DEFAULT_EXPIRES_IN'].", id="django_ciba.E014"
            )
        )
    if not positive_int(ciba_settings.SLOW_DOWN_INCREMENT):
        errors.append(
            checks.Error("CIBA['SLOW_DOWN_INCREMENT'] must be a positive integer.", id="django_ciba.E015")
        )
    return errors


def _users() -> list[checks.CheckMessage]:
    """E018-E020, E144: the user resolvers and the user_code verifier."""
    errors: list[checks.CheckMessage] = []
    try:
        resolvers = ciba_settings.USER_RESOLVERS
    except CibaConfigurationError as exc:
        errors.append(checks.Error(f"CIBA['USER_RESOLVERS'] cannot be used: {exc}", id="django_ciba.E018"))
    else:
        if not resolvers:
            errors.append(
                checks.Error("CIBA['USER_RESOLVERS'] must name at least one resolver.", id="django_ciba.E020")
            )
    try:
        verifier = ciba_settings.USER_CODE_VERIFIER
    except CibaConfigurationError as exc:
        errors.append(
            checks.Error(f"CIBA['USER_CODE_VERIFIER'] cannot be used: {exc}", id="django_ciba.E144")
        )
    else:
        if ciba_settings.USER_CODE_SUPPORTED and verifier is None:
            errors.append(
                checks.Error(
                    "CIBA['USER_CODE_SUPPORTED'] is on but CIBA['USER_CODE_VERIFIER'] is not set.",
                    id="django_ciba.E019",
                )
            )
    return errors


def _knobs() -> list[checks.CheckMessage]:
    """E145-E149, E165-E167: tolerances, the binding message pattern, login_hint_token keys."""
    errors: list[checks.CheckMessage] = []
    if not non_negative_number(ciba_settings.SLOW_DOWN_TOLERANCE):
        errors.append(
            checks.Error(
                "CIBA['SLOW_DOWN_TOLERANCE'] must be zero or a positive number of seconds.",
                id="django_ciba.E145",
            )
        )
    if not non_negative_number(ciba_settings.JWT_LEEWAY):
        errors.append(
            checks.Error(
                "CIBA['JWT_LEEWAY'] must be zero or a positive number of seconds.", id="django_ciba.E146"
            )
        )
    pattern = ciba_settings.BINDING_MESSAGE_PATTERN
    if pattern is not None:
        try:
            re.compile(pattern)
        except (TypeError, re.error) as exc:
            errors.append(
                checks.Error(
                    f"{setting_name('BINDING_MESSAGE_PATTERN')} must be None or a regular expression: {exc}",
                    id="django_ciba.E147",
                )
            )
    scope = ciba_settings.REFRESH_TOKEN_SCOPE
    if scope is not None and not (isinstance(scope, str) and scope and " " not in scope):
        errors.append(
            checks.Error(
                "CIBA['REFRESH_TOKEN_SCOPE'] must be None or one scope (a string without spaces).",
                id="django_ciba.E148",
            )
        )
    if not non_negative_number(ciba_settings.UNKNOWN_USER_MAX_DELAY):
        errors.append(
            checks.Error(
                "CIBA['UNKNOWN_USER_MAX_DELAY'] must be zero or a positive number of seconds.",
                id="django_ciba.E149",
            )
        )
    if not strings(ciba_settings.LOGIN_HINT_TOKEN_ALGORITHMS):
        errors.append(
            checks.Error(
                f"{setting_name('LOGIN_HINT_TOKEN_ALGORITHMS')} must be a list of JWS algorithm names.",
                id="django_ciba.E165",
            )
        )
    if not strings(ciba_settings.LOGIN_HINT_TOKEN_ISSUERS):
        errors.append(
            checks.Error(
                f"{setting_name('LOGIN_HINT_TOKEN_ISSUERS')} must be a list of issuers (strings).",
                id="django_ciba.E166",
            )
        )
    keys = ciba_settings.LOGIN_HINT_TOKEN_KEYS
    if not (isinstance(keys, list | tuple | str) or callable(keys)):
        errors.append(
            checks.Error(
                f"{setting_name('LOGIN_HINT_TOKEN_KEYS')} must be a list of keys (JWK dicts or PEM strings) "
                "or the import string of a callable returning one.",
                id="django_ciba.E167",
            )
        )
    return errors


__all__ = ["VALID_MODES", "check_ciba_settings"]
