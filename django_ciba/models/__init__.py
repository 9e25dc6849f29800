"""django-ciba's models: per-client CIBA metadata and the authentication requests themselves."""

from .assurance import TokenAssurance
from .auth_requests import AuthenticationRequest, Delivery, JwtUse, RequestEvent
from .clients import AuthMethod, CibaClient, DeliveryMode, InitialAccessToken, PairwiseSubject, SubjectType
from .device import AbuseReport, PreAuthorization, WebPushSubscription


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
    "SubjectType",
    "TokenAssurance",
]
