"""Rich authorization requests (RFC 9396) on the served example project: the types configured for
it (through ``CIBA_EXAMPLE_SETTINGS``, read by example_project/settings.py) and sample details.

Payments may be approved one by one (``SUBSET``); account access comes whole.
"""

from __future__ import annotations

import json


PAYMENT_SCHEMA = {
    "type": "object",
    "required": ["type", "instructedAmount", "creditorName"],
    "properties": {
        "instructedAmount": {
            "type": "object",
            "required": ["currency", "amount"],
            "properties": {"currency": {"type": "string", "maxLength": 3}, "amount": {"type": "string"}},
        },
        "creditorName": {"type": "string", "maxLength": 70},
    },
}
ACCOUNTS_SCHEMA = {"type": "object", "required": ["type", "actions"]}
TYPES = {
    "payment_initiation": {"SCHEMA": PAYMENT_SCHEMA, "SUBSET": True},
    "account_information": {"SCHEMA": ACCOUNTS_SCHEMA},
}
#: The environment that gives the served example project these types.
ENV = {"CIBA_EXAMPLE_SETTINGS": json.dumps({"AUTHORIZATION_DETAILS": {"TYPES": TYPES}})}

PAYMENT = {
    "type": "payment_initiation",
    "actions": ["initiate"],
    "locations": ["https://bank.example.com/payments"],
    "instructedAmount": {"currency": "EUR", "amount": "1234.56"},
    "creditorName": "Müller GmbH",
}
#: Markup in strings is data: accepted, stored and returned unchanged.
SCRIPTED_PAYMENT = {
    **PAYMENT,
    "instructedAmount": {"currency": "EUR", "amount": "9.99"},
    "creditorName": "<script>alert('x')</script> & Co",
    "remittanceInformationUnstructured": '"><img src=x onerror=alert(1)>',
}
ACCOUNTS = {"type": "account_information", "actions": ["read"], "identifier": "acc-1"}


def approve_subset(project, auth_req_id: str, positions: list[int]) -> str:
    """Approve the request as its user with the details at ``positions`` (the approval service,
    as the approval pages and the device API call it); the granted details, as JSON."""
    return project.shell(
        "import json; from django_ciba.approval import decisions; "
        "from django_ciba.models import AuthenticationRequest as R; "
        f"r = R.objects.by_auth_req_id({auth_req_id!r}).select_related('user').get(); "
        f"decisions.approve(r, user=r.user, details={positions!r}); r.refresh_from_db(); "
        "print(json.dumps(r.granted_authorization_details))"
    )
