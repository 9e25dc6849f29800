"""The Django admin: CIBA registrations and the operator console.

* :mod:`.clients`: CIBA registrations (inline on DOT's Application admin, and on their own) and
  initial access tokens;
* :mod:`.auth_requests`: authentication requests with their time left, history and deliveries,
  the deliveries (the outbox), and the operator actions;
* :mod:`.device`: abuse reports, pre-authorizations and Web Push subscriptions.

No secret is ever shown or searchable (see each module).
"""

from django.contrib import admin

from django_ciba.admin.auth_requests import (
    AuthenticationRequestAdmin,
    DeliveryAdmin,
    DeliveryInline,
    RequestEventInline,
)
from django_ciba.admin.clients import (
    CibaClientAdmin,
    CibaClientInline,
    InitialAccessTokenAdmin,
    add_inline_to_application_admin,
)
from django_ciba.admin.end_users import (
    AbuseReportAdmin,
    PreAuthorizationAdmin,
    PreAuthorizationForm,
    WebPushSubscriptionAdmin,
)


__all__ = [
    "AbuseReportAdmin",
    "AuthenticationRequestAdmin",
    "CibaClientAdmin",
    "CibaClientInline",
    "DeliveryAdmin",
    "DeliveryInline",
    "InitialAccessTokenAdmin",
    "PreAuthorizationAdmin",
    "PreAuthorizationForm",
    "RequestEventInline",
    "WebPushSubscriptionAdmin",
]

add_inline_to_application_admin(admin.site)
