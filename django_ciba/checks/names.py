"""System checks of how settings are spelt: old flat names (W180) and a setting given twice (E181).

Settings grouped into sections (``CIBA["OUTBOUND"]["READ_TIMEOUT"]``) and the Web Push keys that
became options of their backend keep working under their old flat names; each old name in use is
reported once, with its new place.
"""

from __future__ import annotations

from typing import Any

from django.core import checks

from django_ciba.core.conf import BACKEND_OPTIONS, LOCATIONS, ciba_settings, setting_name
from django_ciba.exceptions import CibaConfigurationError


HINT = "The old names are listed with their new places on the settings page."


def _given_twice(flat: str, user: dict[str, Any]) -> bool:
    if flat in LOCATIONS:
        return ciba_settings.spellings(flat) == ["new", "old"]
    option = BACKEND_OPTIONS[flat][1]
    backend = user.get("NOTIFICATION_BACKEND")
    options = backend.get("OPTIONS") if isinstance(backend, dict) else None
    return isinstance(options, dict) and option in options


@checks.register()
def check_setting_names(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """W180: a deprecated (flat) setting name is used; E181: a setting is given under both names."""
    try:
        user = ciba_settings.user_settings
    except CibaConfigurationError:
        return []  # reported as E010 / E182
    messages: list[checks.CheckMessage] = []
    for flat in sorted(set(user) & (set(LOCATIONS) | set(BACKEND_OPTIONS))):
        if _given_twice(flat, user):
            messages.append(
                checks.Error(
                    f"CIBA[{flat!r}] and {setting_name(flat)} are both set: they are the same setting "
                    "(the new name wins).",
                    hint=f"Remove CIBA[{flat!r}]. {HINT}",
                    id="django_ciba.E181",
                )
            )
        else:
            messages.append(
                checks.Warning(
                    f"CIBA[{flat!r}] is a deprecated setting name: it is now {setting_name(flat)}.",
                    hint=HINT,
                    id="django_ciba.W180",
                )
            )
    return messages
