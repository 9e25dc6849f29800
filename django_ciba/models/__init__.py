"""django-ciba's models: per-client CIBA metadata and the authentication requests themselves."""

from django_ciba.models.assurance import TokenAssurance
from django_ciba.models.auth_requests import AuthenticationRequest, Delivery, JwtUse, RequestEvent
from django_ciba.models.bindings import TokenBinding
from django_ciba.models.clients import AuthMethod, CibaClient, DeliveryMode, Profile, SubjectType
from django_ciba.models.end_users import AbuseReport, PreAuthorization, WebPushSubscription
from django_ciba.models.granted_details import TokenAuthorizationDetails
from django_ciba.models.registration import InitialAccessToken, PairwiseSubject


__all__ = [
    "AbuseReport",
    "PreAuthorization",
    "RequestEvent",
    "WebPushSubscription",
    "AuthMethod",
    "AuthenticationRequest",
    "CibaClient",
    "Delivery",
    "DeliveryMode",
    "InitialAccessToken",
    "JwtUse",
    "PairwiseSubject",
    "Profile",
    "SubjectType",
    "TokenAssurance",
    "TokenAuthorizationDetails",
    "TokenBinding",
]
