"""JSON Schemas of two generic authorization details types (RFC 9396 §2), ready to configure.

::

    from django_ciba.core.authorization_schemas import AGENT_ACTION, PAYMENT

    CIBA = {
        "AUTHORIZATION_DETAILS": {
            "TYPES": {
                "payment_initiation": {
                    "SCHEMA": PAYMENT,
                    "TEMPLATE": "django_ciba/authorization_details/payment.html",
                    "TEXT_TEMPLATE": "django_ciba/authorization_details/payment.txt",
                },
                "agent_action": {
                    "SCHEMA": AGENT_ACTION,
                    "TEMPLATE": "django_ciba/authorization_details/agent_action.html",
                    "TEXT_TEMPLATE": "django_ciba/authorization_details/agent_action.txt",
                },
            },
        },
    }

The type names are the site's choice (a detail's ``type`` is not checked by these schemas).
Amounts are strings of a plain decimal number, as in RFC 9396's examples, so no float rounding
ever touches them. Members other than the listed ones are allowed (the generic template does not
show them; a site's own template may).
"""

from __future__ import annotations

from typing import Any


_TEXT = {"type": "string", "minLength": 1, "maxLength": 200}
_AMOUNT = {
    "type": "object",
    "required": ["currency", "amount"],
    "properties": {
        "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
        "amount": {"type": "string", "pattern": "^-?[0-9]{1,18}(\\.[0-9]{1,8})?$"},
    },
}
_ACCOUNT = {
    "type": "object",
    "minProperties": 1,
    "properties": {
        "iban": {"type": "string", "pattern": "^[A-Z]{2}[0-9]{2}[A-Z0-9]{1,30}$"},
        "bban": _TEXT,
        "number": _TEXT,
    },
}

#: A payment (the shape of RFC 9396 §2's ``payment_initiation`` example): ``instructedAmount``
#: ``{"currency", "amount"}``, ``creditorName``, ``creditorAccount`` (``iban``, ``bban`` or ``number``),
#: optional ``debtorAccount`` and ``remittanceInformationUnstructured``.
PAYMENT: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["type", "instructedAmount", "creditorName", "creditorAccount"],
    "properties": {
        "type": {"type": "string"},
        "instructedAmount": _AMOUNT,
        "creditorName": {"type": "string", "minLength": 1, "maxLength": 140},
        "creditorAccount": _ACCOUNT,
        "debtorAccount": _ACCOUNT,
        "remittanceInformationUnstructured": {"type": "string", "maxLength": 140},
    },
}

#: An action a software agent asks to take for the user: ``agent`` (who: ``name``, ``client_id``
#: or ``id`` of the agent at its platform, ``operator`` running it), ``action`` (what), optional
#: ``resource`` or ``target`` (on what), ``description``, ``limits`` (``max_amount``
#: ``{"currency", "amount"}``, ``max_count``) and ``expires`` (until when, RFC 3339).
AGENT_ACTION: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["type", "agent", "action"],
    "properties": {
        "type": {"type": "string"},
        "agent": {
            "type": "object",
            "required": ["name"],
            "properties": {"name": _TEXT, "client_id": _TEXT, "id": _TEXT, "operator": _TEXT},
        },
        "action": {"type": "string", "minLength": 1, "maxLength": 100},
        "resource": _TEXT,
        "target": _TEXT,
        "description": {"type": "string", "maxLength": 500},
        "limits": {
            "type": "object",
            "properties": {"max_amount": _AMOUNT, "max_count": {"type": "integer", "minimum": 1}},
        },
        "expires": {"type": "string", "format": "date-time", "maxLength": 40},
    },
}
