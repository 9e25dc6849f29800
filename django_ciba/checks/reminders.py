"""System checks of the reminder policy, ``CIBA["REMINDERS"]`` (E260-E262)."""

from __future__ import annotations

from typing import Any

from django.core import checks

from django_ciba.checks.values import positive_int
from django_ciba.core.conf import ciba_settings
from django_ciba.exceptions import CibaConfigurationError


HINT = "See docs/authorization-details.rst, 'Agent requests: long waits'."


@checks.register()
def check_reminder_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """AFTER and EVERY are positive integers (E260, E261); MAX is zero or more (E262)."""
    try:
        _ = ciba_settings.user_settings
    except CibaConfigurationError:
        return []  # reported as E010 / E182
    errors: list[checks.CheckMessage] = []
    if not positive_int(ciba_settings.REMINDER_AFTER):
        errors.append(
            checks.Error(
                "CIBA['REMINDERS']['AFTER'] must be a positive integer (seconds).",
                hint=HINT,
                id="django_ciba.E260",
            )
        )
    if not positive_int(ciba_settings.REMINDER_EVERY):
        errors.append(
            checks.Error(
                "CIBA['REMINDERS']['EVERY'] must be a positive integer (seconds).",
                hint=HINT,
                id="django_ciba.E261",
            )
        )
    most = ciba_settings.REMINDER_MAX
    if not (positive_int(most) or most == 0) or isinstance(most, bool):
        errors.append(
            checks.Error(
                "CIBA['REMINDERS']['MAX'] must be an integer, 0 (no reminders) or more.",
                hint=HINT,
                id="django_ciba.E262",
            )
        )
    return errors
