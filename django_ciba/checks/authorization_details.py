"""System checks of the authorization details settings, RFC 9396 (E240-E248, E250, E251)."""

from __future__ import annotations

from typing import Any

from django.core import checks
from django.template import TemplateDoesNotExist, TemplateSyntaxError
from django.template.loader import get_template

from django_ciba.checks.values import positive_int
from django_ciba.core.authorization_types import entry_problem
from django_ciba.core.conf import ciba_settings
from django_ciba.exceptions import CibaConfigurationError


HINT = "See docs/authorization-details.rst."


@checks.register()
def check_authorization_details_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """The types and their validators or schemas, and the limits (E240-E246)."""
    try:
        _ = ciba_settings.user_settings
    except CibaConfigurationError:
        return []  # reported as E010 / E182
    errors = _types() + _templates()
    if not positive_int(ciba_settings.AUTHORIZATION_DETAILS_MAX_BYTES):
        errors.append(
            checks.Error(
                "CIBA['AUTHORIZATION_DETAILS']['MAX_BYTES'] must be a positive integer (bytes).",
                hint=HINT,
                id="django_ciba.E244",
            )
        )
    depth = ciba_settings.AUTHORIZATION_DETAILS_MAX_DEPTH
    if not positive_int(depth) or depth < 2:
        errors.append(
            checks.Error(
                "CIBA['AUTHORIZATION_DETAILS']['MAX_DEPTH'] must be an integer of at least 2 (the array "
                "and its objects).",
                hint=HINT,
                id="django_ciba.E245",
            )
        )
    if not positive_int(ciba_settings.AUTHORIZATION_DETAILS_MAX_ITEMS):
        errors.append(
            checks.Error(
                "CIBA['AUTHORIZATION_DETAILS']['MAX_ITEMS'] must be a positive integer.",
                hint=HINT,
                id="django_ciba.E246",
            )
        )
    return errors


def _types() -> list[checks.CheckMessage]:
    types = ciba_settings.AUTHORIZATION_DETAILS_TYPES
    if not isinstance(types, dict) or not all(isinstance(name, str) and name for name in types):
        return [
            checks.Error(
                "CIBA['AUTHORIZATION_DETAILS']['TYPES'] must be a dict of type names (non-empty strings).",
                hint=HINT,
                id="django_ciba.E240",
            )
        ]
    errors: list[checks.CheckMessage] = []
    for name, entry in types.items():
        problem = entry_problem(entry)
        if problem is None:
            continue
        if problem.startswith("VALIDATOR"):
            errors.append(
                checks.Error(
                    f"CIBA['AUTHORIZATION_DETAILS']['TYPES'][{name!r}]: {problem}",
                    hint=HINT,
                    id="django_ciba.E242",
                )
            )
        elif problem.startswith("SCHEMA"):
            errors.append(
                checks.Error(
                    f"CIBA['AUTHORIZATION_DETAILS']['TYPES'][{name!r}]: {problem}",
                    hint=HINT,
                    id="django_ciba.E243",
                )
            )
        elif problem.startswith("SUBSET"):
            errors.append(
                checks.Error(
                    f"CIBA['AUTHORIZATION_DETAILS']['TYPES'][{name!r}]: {problem}",
                    hint=HINT,
                    id="django_ciba.E248",
                )
            )
        elif problem.startswith("has unknown keys"):
            errors.append(
                checks.Error(
                    f"CIBA['AUTHORIZATION_DETAILS']['TYPES'][{name!r}] {problem}",
                    hint=HINT,
                    id="django_ciba.E247",
                )
            )
        else:
            errors.append(
                checks.Error(
                    f"CIBA['AUTHORIZATION_DETAILS']['TYPES'][{name!r}] {problem}",
                    hint=HINT,
                    id="django_ciba.E241",
                )
            )
    return errors


def _template_problem(name: Any) -> bool:
    if not isinstance(name, str) or not name:
        return True
    try:
        get_template(name)
    except (TemplateDoesNotExist, TemplateSyntaxError):
        return True
    return False


def _templates() -> list[checks.CheckMessage]:
    """E250 / E251: a type's ``TEMPLATE`` / ``TEXT_TEMPLATE`` that names no loadable template."""
    types = ciba_settings.AUTHORIZATION_DETAILS_TYPES
    if not isinstance(types, dict):
        return []  # E240
    errors: list[checks.CheckMessage] = []
    for name, entry in types.items():
        if not isinstance(entry, dict):
            continue
        if "TEMPLATE" in entry and _template_problem(entry["TEMPLATE"]):
            errors.append(
                checks.Error(
                    f"CIBA['AUTHORIZATION_DETAILS']['TYPES'][{name!r}]['TEMPLATE'] does not name a template "
                    "that can be loaded.",
                    hint=HINT,
                    id="django_ciba.E250",
                )
            )
        if "TEXT_TEMPLATE" in entry and _template_problem(entry["TEXT_TEMPLATE"]):
            errors.append(
                checks.Error(
                    f"CIBA['AUTHORIZATION_DETAILS']['TYPES'][{name!r}]['TEXT_TEMPLATE'] does not name a "
                    "template that can be loaded.",
                    hint=HINT,
                    id="django_ciba.E251",
                )
            )
    return errors
