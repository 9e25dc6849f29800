"""What the user reads about the authorization details (RFC 9396) they are asked to approve.

Each detail renders through a template of its type, as HTML (autoescaped: the approval pages and
HTML e-mails) and as plain text (e-mail text bodies, Web Push notifications, webhook summaries).
The template of a type is, in this order:

1. ``"TEMPLATE"`` (HTML) / ``"TEXT_TEMPLATE"`` (text) in the type's entry of
   ``CIBA["AUTHORIZATION_DETAILS"]["TYPES"]`` (checks E250, E251);
2. ``django_ciba/authorization_details/<type>.html`` / ``.txt`` when the site provides one;
3. the generic ``django_ciba/authorization_details/generic.html`` / ``.txt``, which lists the
   detail's members (nested values flattened, bounded).

Details are client input, kept as sent. Before any template sees one, :func:`clean` makes a copy in
which every string is bounded and stripped of control and bidirectional formatting characters
(which could reorder what the user reads), nesting is cut at :data:`MAX_DEPTH` and arrays at
:data:`MAX_LIST`. The HTML templates autoescape; text output is plain text for plain-text places
(never put it into HTML unescaped).

Amounts are parsed with :class:`decimal.Decimal` (never a float) and formatted for the active
language (:func:`format_amount`); an amount that is not a plain decimal number is shown as sent.
"""

from __future__ import annotations

import re
import unicodedata
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.template import TemplateDoesNotExist
from django.template.loader import get_template, select_template
from django.utils.formats import number_format
from django.utils.safestring import SafeString
from django.utils.translation import check_for_language, gettext

from django_ciba.core.authorization_types import configured_types


#: Where a site puts a type's own templates (``<type>.html`` and ``<type>.txt``).
TEMPLATE_DIR = "django_ciba/authorization_details"
GENERIC_HTML = f"{TEMPLATE_DIR}/generic.html"
GENERIC_TEXT = f"{TEMPLATE_DIR}/generic.txt"
#: Shipped templates of the two generic types (use them with the schemas of
#: :mod:`django_ciba.core.authorization_schemas`).
PAYMENT_HTML = f"{TEMPLATE_DIR}/payment.html"
PAYMENT_TEXT = f"{TEMPLATE_DIR}/payment.txt"
AGENT_ACTION_HTML = f"{TEMPLATE_DIR}/agent_action.html"
AGENT_ACTION_TEXT = f"{TEMPLATE_DIR}/agent_action.txt"

#: Longest string shown (longer ones end with "…").
MAX_STRING = 300
#: Nesting shown below a detail (deeper values read "…").
MAX_DEPTH = 4
#: Items shown of an array, members shown of an object (the rest is summarised as "…").
MAX_LIST = 20
#: Longest text summary of a request's details (Web Push bodies, webhook summaries).
MAX_SUMMARY = 1000
#: A plain decimal amount: what :func:`format_amount` formats; anything else is shown as sent.
AMOUNT = re.compile(r"^-?[0-9]{1,18}(\.[0-9]{1,8})?$")
ELLIPSIS = "…"
_TYPE_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")


def clean_text(value: str, limit: int = MAX_STRING) -> str:
    """``value`` without control or formatting characters (bidi overrides, zero-width), newlines
    and tabs turned into spaces, at most ``limit`` characters."""
    kept = []
    for char in value:
        category = unicodedata.category(char)
        if char in "\n\r\t":
            kept.append(" ")
        elif category not in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
            kept.append(char)
    text = "".join(kept).strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + ELLIPSIS


def clean(value: Any, depth: int = 0) -> Any:
    """A bounded copy of a JSON value, safe to show (see the module's documentation)."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, bool) or value is None or isinstance(value, int | float):
        return value
    if depth >= MAX_DEPTH:
        return ELLIPSIS
    if isinstance(value, list):
        items = [clean(item, depth + 1) for item in value[:MAX_LIST]]
        return items + [ELLIPSIS] if len(value) > MAX_LIST else items
    if isinstance(value, dict):
        members = list(value.items())
        cleaned = {clean_text(str(key), 100): clean(item, depth + 1) for key, item in members[:MAX_LIST]}
        if len(members) > MAX_LIST:
            cleaned[ELLIPSIS] = ELLIPSIS
        return cleaned
    return clean_text(str(value))


def flatten(value: Any, prefix: str = "") -> list[tuple[str, str]]:
    """``(label, text)`` pairs of a cleaned value: nested members are labelled ``a.b`` / ``a[0]``."""
    if isinstance(value, dict):
        pairs: list[tuple[str, str]] = []
        for key, item in value.items():
            pairs.extend(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return pairs
    if isinstance(value, list):
        if all(not isinstance(item, dict | list) for item in value):
            return [(prefix, ", ".join(display(item) for item in value))]
        pairs = []
        for index, item in enumerate(value):
            pairs.extend(flatten(item, f"{prefix}[{index}]"))
        return pairs
    return [(prefix, display(value))]


def display(value: Any) -> str:
    """A scalar as the user reads it."""
    if value is True:
        return gettext("yes")
    if value is False:
        return gettext("no")
    if value is None:
        return "–"
    return str(value)


def format_amount(amount: Any, currency: Any = "") -> str:
    """``amount`` for the active language (``1,234.56`` in English, ``1.234,56`` in German) followed
    by the currency code; an amount that is not a plain decimal number is returned as sent (cleaned)."""
    text = clean_text(str(amount), 40) if amount is not None else ""
    code = clean_text(str(currency), 12) if currency else ""
    if isinstance(amount, bool) or not AMOUNT.match(text):
        return f"{text} {code}".strip()
    try:
        value = Decimal(text)
    except InvalidOperation:  # pragma: no cover - the pattern only lets plain decimals through
        return f"{text} {code}".strip()
    places = max(0, -int(value.as_tuple().exponent))
    formatted = number_format(value, decimal_pos=places, use_l10n=True, force_grouping=True)
    return f"{formatted} {code}".strip()


def _template_names(type_name: str, key: str, extension: str, generic: str) -> list[str]:
    entry = configured_types().get(type_name)
    names: list[str] = []
    if isinstance(entry, dict) and isinstance(entry.get(key), str) and entry[key]:
        names.append(entry[key])
    if _TYPE_NAME.match(type_name):
        names.append(f"{TEMPLATE_DIR}/{type_name}.{extension}")
    names.append(generic)
    return names


def detail_context(detail: Any, position: int = 0) -> dict[str, Any]:
    """What a detail's template receives: ``detail`` (the cleaned copy), ``type``, ``position``
    and ``members`` (the flattened ``(label, text)`` pairs, without ``type``)."""
    cleaned = clean(detail) if isinstance(detail, dict) else {"value": clean(detail)}
    type_name = cleaned.get("type") if isinstance(cleaned.get("type"), str) else ""
    members = flatten({key: value for key, value in cleaned.items() if key != "type"})
    return {"detail": cleaned, "type": type_name, "position": position, "members": members}


def render_detail(detail: Any, *, position: int = 0, text: bool = False) -> str:
    """One detail as HTML (a :class:`~django.utils.safestring.SafeString`) or as plain text."""
    raw_type = detail.get("type") if isinstance(detail, dict) else None
    type_name = raw_type if isinstance(raw_type, str) else ""
    if text:
        names = _template_names(type_name, "TEXT_TEMPLATE", "txt", GENERIC_TEXT)
    else:
        names = _template_names(type_name, "TEMPLATE", "html", GENERIC_HTML)
    try:
        template = select_template(names)
    except TemplateDoesNotExist:  # only when the generic one was removed: checks E250 / E251
        template = get_template(GENERIC_TEXT if text else GENERIC_HTML)
    rendered = template.render(detail_context(detail, position))
    if text:
        return " ".join(rendered.split())
    return SafeString(rendered.strip())


def render_details(details: Any, *, text: bool = False) -> list[str]:
    """Each detail of a request (a list; anything else renders nothing), in order."""
    if not isinstance(details, list):
        return []
    return [render_detail(detail, position=index, text=text) for index, detail in enumerate(details)]


def text_summary(details: Any, limit: int = MAX_SUMMARY) -> str:
    """The details as one plain-text paragraph ("; " between them), at most ``limit`` characters;
    a cut ends with "…" at a word boundary when there is one."""
    summary = "; ".join(line for line in render_details(details, text=True) if line)
    if len(summary) <= limit:
        return summary
    cut = summary[: limit - 1]
    if " " in cut[limit // 2 :]:
        cut = cut[: cut.rindex(" ")]
    return cut.rstrip(" ;,") + ELLIPSIS


def user_language(user: Any) -> str:
    """The language notifications to ``user`` are written in: the user's ``language`` attribute
    when the project's user model has one and it names an available language, else
    ``settings.LANGUAGE_CODE``."""
    language = getattr(user, "language", None)
    if isinstance(language, str) and language and len(language) <= 20 and check_for_language(language):
        return language
    return str(settings.LANGUAGE_CODE)
