"""Strict JSON decoding for protocol input: no repeated member, no ``NaN`` or ``Infinity``.

Python's ``json`` keeps the last of repeated members and accepts ``NaN``; RFC 8259 §4 leaves
repeated names undefined and §6 has no such numbers, so two parsers could read the same document
differently. Client metadata (RFC 7591) and ``authorization_details`` (RFC 9396) are read with
:func:`loads`, which refuses both with ``ValueError`` (as for malformed JSON).
"""

from __future__ import annotations

import json
from typing import Any


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError("duplicate member")
        result[key] = value
    return result


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def loads(text: str) -> Any:
    """``json.loads`` without repeated members or ``NaN``/``Infinity`` (``ValueError``; a too deeply
    nested document raises ``RecursionError``, as with ``json.loads``)."""
    return json.loads(text, object_pairs_hook=_unique_members, parse_constant=_no_constants)


class _Repeating(dict):
    """An object of the document that repeated one of its members (the last one kept)."""


def _marking(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    return _Repeating(result) if len(result) < len(pairs) else result


def members_repeating(text: str) -> list[str]:
    """Read a JSON object that another parser already accepted (a JWT payload decoded by PyJWT,
    which keeps the last of repeated members) and name where it repeats a member: ``""`` for the
    object itself, else each of its members whose value holds an object that does. Raises
    ``ValueError`` when ``text`` is not a JSON object."""
    document = json.loads(text, object_pairs_hook=_marking)
    if not isinstance(document, dict):
        raise ValueError("not a JSON object")
    found = [""] if isinstance(document, _Repeating) else []
    for name, value in document.items():
        pending = [value]
        while pending:
            node = pending.pop()
            if isinstance(node, _Repeating):
                found.append(name)
                break
            pending.extend(
                node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
            )
    return found
