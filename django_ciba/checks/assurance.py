"""System checks of the assurance settings (``django_ciba.E080``-``E082``, ``W080``-``W081``).

An approval's ``acr`` and ``amr`` come from ``AUTHENTICATION_CONTEXT`` and ``ACR_REQUIREMENTS``
(:mod:`django_ciba.assurance`); these checks make sure the hook loads and that every advertised
``acr`` value can actually be issued.
"""

from __future__ import annotations

from typing import Any

from django.core import checks

from django_ciba.core.conf import ciba_settings
from django_ciba.exceptions import CibaConfigurationError


HINT = "See the assurance section of the security page (docs/security.rst)."


def _strings(value: Any) -> bool:
    return isinstance(value, list | tuple) and all(isinstance(item, str) and item for item in value)


@checks.register()
def check_assurance_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """E080 hook, E081 requirements, E082 supported values; W080 / W081 values never issued."""
    errors: list[checks.CheckMessage] = []

    def error(message: str, number: int) -> None:
        errors.append(checks.Error(message, hint=HINT, id=f"django_ciba.E{number:03d}"))

    def warning(message: str, number: int) -> None:
        errors.append(checks.Warning(message, hint=HINT, id=f"django_ciba.W{number:03d}"))

    try:
        _ = ciba_settings.user_settings
    except CibaConfigurationError:
        return []  # reported as E010
    try:
        hook = ciba_settings.AUTHENTICATION_CONTEXT
    except CibaConfigurationError as exc:
        error(str(exc), 80)
    else:
        if not callable(hook):
            error("CIBA['AUTHENTICATION_CONTEXT'] must name a callable hook(request, user).", 80)
    requirements = ciba_settings.ACR_REQUIREMENTS
    if not isinstance(requirements, dict) or not all(
        isinstance(acr, str) and acr and not any(c.isspace() for c in acr) and _strings(amr) and amr
        for acr, amr in requirements.items()
    ):
        error(
            "CIBA['ACR_REQUIREMENTS'] must map acr values (non-empty, without spaces) to non-empty "
            "lists of amr values.",
            81,
        )
        requirements = None
    supported = ciba_settings.ACR_VALUES_SUPPORTED
    if not _strings(supported):
        error("CIBA['ACR_VALUES_SUPPORTED'] must be a list of acr values (strings).", 82)
        supported = None
    if requirements is None or not supported:
        return errors
    undefined = [acr for acr in supported if acr not in requirements]
    if undefined:
        warning(
            f"CIBA['ACR_VALUES_SUPPORTED'] advertises {', '.join(undefined)}, which "
            "CIBA['ACR_REQUIREMENTS'] does not define: no approval can ever carry it.",
            80,
        )
    unadvertised = [acr for acr in requirements if acr not in supported]
    if unadvertised:
        warning(
            f"CIBA['ACR_REQUIREMENTS'] defines {', '.join(unadvertised)}, which "
            "CIBA['ACR_VALUES_SUPPORTED'] does not list: it is never issued.",
            81,
        )
    return errors
