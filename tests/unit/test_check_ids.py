"""Every system check ID names one problem: created at one place, documented, and every setting checked.

The IDs are read from the source (ast): each ``checks.Error(...)`` / ``checks.Warning(...)`` of
django_ciba passes ``id="django_ciba.X"`` as a literal, so the place that creates an ID, and so its
message template, can be found.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

from django_ciba.core.conf import DEFAULTS, setting_name


PACKAGE = Path(__file__).resolve().parents[2] / "django_ciba"
DOCS = Path(__file__).resolve().parents[2] / "docs"
CHECK_ID = re.compile(r"^django_ciba\.[EWC][0-9]{3}$")
MESSAGE_CLASSES = {"Error", "Warning", "Critical", "Info", "Debug"}

#: Settings no check has to examine, and why.
NEEDS_NO_CHECK = {
    "BINDING_MESSAGE_REQUIRED": "read for its truth value: every value means on or off",
    "REQUIRE_SIGNED_REQUESTS": "read for its truth value: every value means on or off",
    "REGISTRATION_OPEN": "read for its truth value: every value means on or off",
    "EQUALIZE_UNKNOWN_USER_TIMING": "read for its truth value: every value means on or off",
    "DPOP_NONCE_REQUIRED": "read for its truth value: every value means on or off",
    "WEBPUSH_VAPID_PRIVATE_KEY": "deprecated name (W180, E181); the value is checked as the Web Push "
    "backend's option (E032, E192-E195)",
    "WEBPUSH_VAPID_PUBLIC_KEY": "deprecated name (W180, E181); the value is checked as the Web Push "
    "backend's option (E032, E193, E194)",
    "WEBPUSH_VAPID_SUBJECT": "deprecated name (W180, E181); the value is checked as the Web Push "
    "backend's option (E032, E195)",
}


def _is_message_call(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in MESSAGE_CLASSES
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "checks"
    )


def message_calls():
    """``(path, line, id or None, source of the message argument)`` of every check message created."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = path.read_text()
        for node in ast.walk(ast.parse(source)):
            if not _is_message_call(node):
                continue
            value = next((keyword.value for keyword in node.keywords if keyword.arg == "id"), None)
            check_id = value.value if isinstance(value, ast.Constant) else None
            message = ast.get_source_segment(source, node.args[0]) if node.args else ""
            found.append((path.relative_to(PACKAGE.parent), node.lineno, check_id, message or ""))
    return found


def ids_by_setting() -> dict[str, set[str]]:
    """Setting (flat name) -> the IDs whose message names it (by its flat name or its current name)."""
    found: dict[str, set[str]] = defaultdict(set)
    for _, _, check_id, message in message_calls():
        for name in DEFAULTS:
            # A key of a section (``CIBA['DPOP']['SIGNING_ALGORITHMS']``) is not the top-level
            # setting of the same name (``SIGNING_ALGORITHMS``).
            if re.search(rf"(?<!\]\[')\b{name}\b", message) or setting_name(name) in message:
                found[name].add(check_id.removeprefix("django_ciba."))
    return found


def test_every_check_message_has_a_literal_id():
    dynamic = [f"{path}:{line}" for path, line, check_id, _ in message_calls() if check_id is None]
    assert dynamic == []
    malformed = [
        check_id for _, _, check_id, _ in message_calls() if check_id and not CHECK_ID.match(check_id)
    ]
    assert malformed == []


def test_each_check_id_is_created_at_exactly_one_place():
    places = defaultdict(list)
    for path, line, check_id, _ in message_calls():
        places[check_id].append(f"{path}:{line}")
    assert {check_id: where for check_id, where in places.items() if len(where) > 1} == {}
    assert len(places) > 100  # the scan found the checks


def test_each_check_id_is_documented():
    # The list of every check is on the operators page; the settings page names them per setting.
    text = (DOCS / "operators.rst").read_text()
    ids = {check_id for _, _, check_id, _ in message_calls()}
    assert sorted(check_id for check_id in ids if f"``{check_id}``" not in text) == []
    documented = set(re.findall(r"``(django_ciba\.[EWC][0-9]{3})``", text))
    assert sorted(documented - ids) == []  # no stale entry


def test_every_setting_has_a_check_or_a_reason():
    # A check "has" a setting when its message names it.
    found = ids_by_setting()
    assert sorted(name for name in DEFAULTS if not found.get(name) and name not in NEEDS_NO_CHECK) == []
    assert sorted(name for name in NEEDS_NO_CHECK if found.get(name)) == []  # no stale reason
