"""``{% load ciba_details %}``: what the templates of authorization details types need.

``{{ detail.instructedAmount|ciba_amount }}`` formats an amount object (``{"amount": "1234.56",
"currency": "EUR"}``; a bare amount is taken as the amount) for the active language
(:func:`django_ciba.core.details_rendering.format_amount`: ``1,234.56 EUR`` in English,
``1.234,56 EUR`` in German; an amount that is not a plain decimal number is shown as sent).
The result is plain text: autoescaping still applies in HTML templates.
"""

from __future__ import annotations

from typing import Any

from django import template

from django_ciba.core.details_rendering import format_amount


register = template.Library()


@register.filter
def ciba_amount(value: Any) -> str:
    if isinstance(value, dict):
        return format_amount(value.get("amount"), value.get("currency") or "")
    return format_amount(value)
