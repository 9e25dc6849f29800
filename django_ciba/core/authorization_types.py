"""The authorization details types this OP offers (RFC 9396 §2.1), and how one detail is checked.

``CIBA["AUTHORIZATION_DETAILS"]["TYPES"]`` maps a type name to ``{"VALIDATOR": "dotted.path"}``, a
callable ``validate(detail: dict) -> None`` that raises :class:`ValueError` or Django's
:class:`~django.core.exceptions.ValidationError` with a message for the client, or to
``{"SCHEMA": {...}}``, a JSON Schema the detail must match (checked with ``jsonschema``; schemas
never fetch a remote ``$ref``). The system checks (E240-E249) refuse anything else.

What a refusal tells the client never quotes the detail: a schema refusal names the rule of the
schema that failed (its keyword and its place in the schema), a validator's refusal passes on the
validator's own message (the site writes it, and must not quote the input either). A validator
that raises anything else is a bug of the site: the detail is refused all the same (fail closed)
and the exception's class is logged, never its message or the detail.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.core.exceptions import ValidationError
from django.utils.module_loading import import_string

from django_ciba.core.conf import ciba_settings


logger = logging.getLogger(__name__)

#: The keys that say how a detail of a type is checked; an entry holds exactly one of them.
TYPE_KEYS = ("VALIDATOR", "SCHEMA")
#: Keys an entry may hold besides: ``SUBSET`` (bool, default False) lets the user approve a request
#: without some of its details of this type; ``TEMPLATE`` and ``TEXT_TEMPLATE`` name the templates
#: that show a detail of this type as HTML and as text (:mod:`django_ciba.core.details_rendering`;
#: checks E250, E251).
OPTIONAL_KEYS = ("SUBSET", "TEMPLATE", "TEXT_TEMPLATE")
#: Longest validator message passed on to the client.
MAX_MESSAGE = 200


class DetailRefused(Exception):
    """One detail is refused by its type; ``str()`` is the reason the client may read."""


def configured_types() -> dict[str, Any]:
    """Type name -> its entry, as configured (empty when the setting is not a dict: check E240)."""
    types = ciba_settings.AUTHORIZATION_DETAILS_TYPES
    return types if isinstance(types, dict) else {}


def supported_types() -> list[str]:
    """The type names offered (discovery's ``authorization_details_types_supported``, RFC 9396 §10)."""
    return [name for name in configured_types() if isinstance(name, str)]


def entry_problem(entry: Any) -> str | None:
    """What is wrong with one type's entry, or None (the system checks and :func:`check_detail`)."""
    if not isinstance(entry, dict) or sum(key in entry for key in TYPE_KEYS) != 1:
        return 'must be a dict with exactly one of "VALIDATOR" (an import string) and "SCHEMA" (a dict).'
    unknown = sorted(str(key) for key in entry if key not in TYPE_KEYS + OPTIONAL_KEYS)
    if unknown:
        return f"has unknown keys: {', '.join(unknown)}."
    if not isinstance(entry.get("SUBSET", False), bool):
        return "SUBSET must be True or False."
    if "VALIDATOR" in entry:
        path = entry["VALIDATOR"]
        if not isinstance(path, str):
            return "VALIDATOR must be an import string."
        try:
            validator = import_string(path)
        except ImportError:
            return "VALIDATOR cannot be imported."
        return None if callable(validator) else "VALIDATOR does not name a callable."
    schema = entry["SCHEMA"]
    if not isinstance(schema, dict):
        return "SCHEMA must be a JSON Schema (a dict)."
    try:
        from jsonschema.exceptions import SchemaError
        from jsonschema.validators import validator_for
    except ImportError:  # pragma: no cover - jsonschema is an install requirement
        return "SCHEMA needs the jsonschema package."
    try:
        validator_for(schema).check_schema(schema)
    except SchemaError:
        return "SCHEMA is not a valid JSON Schema."
    return None


def allows_subset(type_name: str) -> bool:
    """Whether the user may approve a request while leaving out its details of ``type_name``."""
    entry = configured_types().get(type_name)
    return isinstance(entry, dict) and entry.get("SUBSET") is True


def check_detail(type_name: str, detail: dict[str, Any]) -> None:
    """Check one detail of type ``type_name`` (a configured type); raise :class:`DetailRefused`."""
    entry = configured_types()[type_name]
    if entry_problem(entry) is not None:
        # A misconfigured type (reported by the system checks) accepts nothing.
        raise DetailRefused("its type cannot be validated by this server.")
    if "SCHEMA" in entry:
        _check_schema(entry["SCHEMA"], detail)
    else:
        _check_validator(entry["VALIDATOR"], type_name, detail)


def _check_schema(schema: dict[str, Any], detail: dict[str, Any]) -> None:
    from jsonschema.exceptions import best_match
    from jsonschema.validators import validator_for

    error = best_match(validator_for(schema)(schema).iter_errors(detail))
    if error is not None:
        # The keyword and the schema path come from the site's schema, never from the detail.
        where = "/".join(str(part) for part in error.relative_schema_path)
        raise DetailRefused(f"does not match the schema of its type ({error.validator} at {where}).")


def _check_validator(path: str, type_name: str, detail: dict[str, Any]) -> None:
    validate: Callable[[dict[str, Any]], Any] = import_string(path)
    try:
        validate(detail)
    except ValidationError as exc:
        raise DetailRefused(_message(" ".join(exc.messages)))
    except ValueError as exc:
        raise DetailRefused(_message(str(exc)))
    except Exception as exc:
        logger.error(
            "The validator of authorization details type %r raised %s; the detail is refused.",
            type_name,
            type(exc).__name__,
        )
        raise DetailRefused("could not be validated.")


def _message(text: str) -> str:
    text = " ".join(text.split())[:MAX_MESSAGE]
    return text or "is refused by its type."
