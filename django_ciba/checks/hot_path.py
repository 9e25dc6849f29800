"""System checks of the hot-path cache (``CIBA["HOT_PATH_CACHE"]``): E069 and W069."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks

from django_ciba.core import hot_path
from django_ciba.core.conf import ciba_settings, setting_name
from django_ciba.exceptions import CibaConfigurationError


HINT = "See the performance page, section 'Hot-path cache'."


@checks.register()
def check_hot_path_cache(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """E069: not one of "auto", True, False; W069: forced on with a per-process cache, DEBUG off."""
    try:
        mode = ciba_settings.HOT_PATH_CACHE
    except CibaConfigurationError:
        return []  # reported as E010 / E182
    if not any(mode is choice or (isinstance(mode, str) and mode == choice) for choice in hot_path.MODES):
        return [
            checks.Error(
                f'{setting_name("HOT_PATH_CACHE")} must be "auto", True or False (got {mode!r}).',
                hint=HINT,
                id="django_ciba.E069",
            )
        ]
    if mode is not True or settings.DEBUG:
        return []
    try:
        cache = hot_path.cache()
    except Exception:
        return []  # reported as E063
    if hot_path.is_local(cache):
        alias = hot_path.alias()
        return [
            checks.Warning(
                f"{setting_name('HOT_PATH_CACHE')} is True but the CIBA cache "
                f"{alias!r} ({type(cache).__name__}) is not shared between "
                "processes: a transition or a disabled client in one process is not seen by the others.",
                hint="Point CIBA['CACHE_ALIAS'] at Redis or Memcached, or set HOT_PATH_CACHE to \"auto\".",
                id="django_ciba.W069",
            )
        ]
    return []
