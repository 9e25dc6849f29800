"""System checks of a django-ciba deployment, one module per area (ids ``django_ciba.E0xx`` / ``W0xx``).

Importing this package registers every check with Django's check framework.
"""

from django_ciba.checks import (
    assurance,
    authorization_details,
    automation,
    clients,
    dpop,
    hot_path,
    id_tokens,
    integration,
    limits,
    mtls,
    names,
    outbound,
    pages,
    profiles,
    protocol,
    receipts,
    reminders,
    settings,
    signed_requests,
)


__all__ = [
    "assurance",
    "authorization_details",
    "automation",
    "clients",
    "dpop",
    "hot_path",
    "id_tokens",
    "integration",
    "limits",
    "mtls",
    "names",
    "outbound",
    "pages",
    "profiles",
    "protocol",
    "receipts",
    "reminders",
    "settings",
    "signed_requests",
]
