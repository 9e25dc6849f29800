"""System checks of the assurance settings (``django_ciba.E080``-``E083``, ``W080``-``W081``).

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
    """E080 / E083 hook, E081 requirements, E082 supported values; W080 / W081 values never issued."""
    errors: list[checks.CheckMessage] = []
    try:
        _ = ciba_settings.user_settings
    except CibaConfigurationError:
        return []  # reported as E010
    try:
        hook = ciba_settings.AUTHENTICATION_CONTEXT
    except CibaConfigurationError as exc:
        errors.append(
            checks.Error(
                f"CIBA['AUTHENTICATION_CONTEXT'] cannot be imported: {exc}", hint=HINT, id="django_ciba.E080"
            )
        )
    else:
        if not callable(hook):
            errors.append(
                checks.Error(
                    "CIBA['AUTHENTICATION_CONTEXT'] must name a callable hook(request, user).",
                    hint=HINT,
                    id="django_ciba.E083",
                )
            )
    requirements = ciba_settings.ACR_REQUIREMENTS
    if not isinstance(requirements, dict) or not all(
        isinstance(acr, str) and acr and not any(c.isspace() for c in acr) and _strings(amr) and amr
        for acr, amr in requirements.items()
    ):
        errors.append(
            checks.Error(
                "CIBA['ACR_REQUIREMENTS'] must map acr values (non-empty, without spaces) to non-empty "
                "lists of amr values.",
                hint=HINT,
                id="django_ciba.E081",
            )
        )
        requirements = None
    supported = ciba_settings.ACR_VALUES_SUPPORTED
    if not _strings(supported):
        errors.append(
            checks.Error(
                "CIBA['ACR_VALUES_SUPPORTED'] must be a list of acr values (strings).",
                hint=HINT,
                id="django_ciba.E082",
            )
        )
        supported = None
    if requirements is None or not supported:
        return errors
    undefined = [acr for acr in supported if acr not in requirements]
    if undefined:
        errors.append(
            checks.Warning(
                f"CIBA['ACR_VALUES_SUPPORTED'] advertises {', '.join(undefined)}, which "
                "CIBA['ACR_REQUIREMENTS'] does not define: no approval can ever carry it.",
                hint=HINT,
                id="django_ciba.W080",
            )
        )
    unadvertised = [acr for acr in requirements if acr not in supported]
    if unadvertised:
        errors.append(
            checks.Warning(
                f"CIBA['ACR_REQUIREMENTS'] defines {', '.join(unadvertised)}, which "
                "CIBA['ACR_VALUES_SUPPORTED'] does not list: it is never issued.",
                hint=HINT,
                id="django_ciba.W081",
            )
        )
    return errors
