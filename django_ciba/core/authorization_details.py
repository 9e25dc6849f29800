"""The ``authorization_details`` parameter (RFC 9396): parsing, limits, shape and types.

:func:`parse` takes the parameter as a form sends it (a JSON string, RFC 9396 §3) or as a signed
request carries it (a JSON array claim) and returns the list of detail objects, or raises
:class:`~django_ciba.exceptions.InvalidAuthorizationDetails` (RFC 9396 §5). In order:

1. the limits of ``CIBA["AUTHORIZATION_DETAILS"]``, before anything else: the size in bytes of the
   JSON text (``MAX_BYTES``), then the nesting depth (``MAX_DEPTH``, the outer array is level 1)
   and the members of every array and object (``MAX_ITEMS``), walked without recursion;
2. the shape (§2): an array of objects, each with a string ``type``; the common fields of §2.2
   (``locations``, ``actions``, ``datatypes``, ``privileges``: arrays of strings; ``identifier``: a
   string) have their types checked;
3. the types (§2.1, §5): offered by this OP, allowed for the client, accepted by the type's
   validator or schema (:mod:`django_ciba.core.authorization_types`).

Descriptions name the element by its index and the problem, and never quote the input. Strings
are data: they are stored and returned as JSON, never rendered here.

:func:`narrow` checks a later request against what was granted (RFC 9396 §6, §6.1).
"""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

from django_ciba.core import strict_json
from django_ciba.core.authorization_types import DetailRefused, check_detail, configured_types
from django_ciba.core.conf import ciba_settings
from django_ciba.exceptions import InvalidAuthorizationDetails


PARAMETER = "authorization_details"
#: RFC 9396 §2.2: common fields whose value is an array of strings.
STRING_ARRAY_FIELDS = ("locations", "actions", "datatypes", "privileges")
#: RFC 9396 §2.2: common fields whose value is a string.
STRING_FIELDS = ("identifier",)


def _refuse(message: str) -> InvalidAuthorizationDetails:
    return InvalidAuthorizationDetails(f"{PARAMETER}: {message}")


def _decode(raw: str) -> Any:
    try:
        return strict_json.loads(raw)
    except RecursionError:
        raise _refuse("nested too deeply.") from None
    except ValueError:
        raise _refuse("must be a JSON array (valid JSON, no repeated member).") from None


def check_limits(value: Any) -> None:
    """``MAX_DEPTH`` and ``MAX_ITEMS`` over the decoded value, walked iteratively (no recursion)."""
    max_depth = int(ciba_settings.AUTHORIZATION_DETAILS_MAX_DEPTH)
    max_items = int(ciba_settings.AUTHORIZATION_DETAILS_MAX_ITEMS)
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        node, depth = pending.pop()
        if isinstance(node, dict):
            children = list(node.values())
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > max_depth:
            raise _refuse(f"nested deeper than {max_depth} levels.")
        if len(children) > max_items:
            raise _refuse(f"an array or object holds more than {max_items} members.")
        pending.extend((child, depth + 1) for child in children)


def _size(value: Any) -> int:
    try:
        return len(json.dumps(value, separators=(",", ":"), allow_nan=False).encode("utf-8"))
    except (ValueError, TypeError, RecursionError):
        raise _refuse("must be a JSON array.") from None


def decode(raw: Any) -> list[Any]:
    """The parameter as a list, with the limits checked: a JSON string (form) or a list (JWT)."""
    max_bytes = int(ciba_settings.AUTHORIZATION_DETAILS_MAX_BYTES)
    if isinstance(raw, str):
        if len(raw.encode("utf-8")) > max_bytes:
            raise _refuse(f"larger than {max_bytes} bytes.")
        value = _decode(raw)
        check_limits(value)
    elif isinstance(raw, list):
        check_limits(raw)  # first: a deeply nested claim would not even serialize
        if _size(raw) > max_bytes:
            raise _refuse(f"larger than {max_bytes} bytes.")
        value = raw
    else:
        raise _refuse("must be a JSON array.")
    if not isinstance(value, list):
        raise _refuse("must be a JSON array.")
    if not value:
        raise _refuse("must hold at least one authorization detail.")
    return value


def _has_nul(value: Any) -> bool:
    pending = [value]
    while pending:
        node = pending.pop()
        if isinstance(node, str):
            if "\x00" in node:
                return True
        elif isinstance(node, dict):
            pending.extend(node.keys())
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
    return False


def _canonical(detail: Any) -> str:
    return json.dumps(detail, sort_keys=True, separators=(",", ":"))


def check_shape(details: list[Any]) -> list[dict[str, Any]]:
    """RFC 9396 §2, §2.2: objects with a string ``type``; the common fields of the right types."""
    for index, detail in enumerate(details):
        if not isinstance(detail, dict):
            raise _refuse(f"element {index} is not a JSON object.")
        kind = detail.get("type")
        if not isinstance(kind, str) or not kind:
            raise _refuse(f"element {index} has no type (a non-empty string).")
        for name in STRING_ARRAY_FIELDS:
            if name in detail and (
                not isinstance(detail[name], list) or not all(isinstance(item, str) for item in detail[name])
            ):
                raise _refuse(f"element {index}: {name} must be an array of strings.")
        for name in STRING_FIELDS:
            if name in detail and not isinstance(detail[name], str):
                raise _refuse(f"element {index}: {name} must be a string.")
        if _has_nul(detail):  # PostgreSQL's jsonb cannot store it
            raise _refuse(f"element {index} contains a NUL character.")
    return details


def check_types(details: list[dict[str, Any]], allowed: Collection[str] | None) -> None:
    """RFC 9396 §5: every type offered, allowed for the client (None: every offered type), valid."""
    offered = configured_types()
    for index, detail in enumerate(details):
        kind = detail["type"]
        if kind not in offered:
            raise _refuse(f"element {index} has a type this server does not support.")
        if allowed is not None and kind not in allowed:
            raise _refuse(f"element {index} has a type this client may not use.")
        try:
            check_detail(kind, detail)
        except DetailRefused as exc:
            raise _refuse(f"element {index} {exc}") from None


def enabled() -> bool:
    """Whether any type is configured. Without one the OP does not support RFC 9396, and the
    parameter is ignored like any unrecognised one (RFC 6749 §3.1, CIBA Core §7.1: BC-14)."""
    return bool(configured_types())


def parse(raw: Any, *, allowed: Collection[str] | None) -> list[dict[str, Any]]:
    """The validated details of a request (see the module); ``allowed``: the client's types."""
    details = check_shape(decode(raw))
    check_types(details, allowed)
    return details


def narrow(raw: Any, granted: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The details a later token request asks for, within ``granted`` (RFC 9396 §6, §6.1).

    Each requested detail must be one of the granted ones, as granted (no per-type comparison:
    asking for a detail changed in any way is refused, which never grants more).
    """
    details = check_shape(decode(raw))
    kept = {_canonical(detail) for detail in granted}
    for index, detail in enumerate(details):
        if _canonical(detail) not in kept:
            raise _refuse(f"element {index} was not granted.")
    return details
