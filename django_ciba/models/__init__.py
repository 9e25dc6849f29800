"""django-ciba's models: per-client CIBA metadata and the authentication requests themselves."""

from .auth_requests import AuthenticationRequest, Delivery, JwtUse
from .clients import AuthMethod, CibaClient, DeliveryMode, InitialAccessToken, PairwiseSubject, SubjectType


__all__ = [
    "AuthMethod",
    "AuthenticationRequest",
    "CibaClient",
    "Delivery",
    "DeliveryMode",
    "InitialAccessToken",
    "JwtUse",
    "PairwiseSubject",
    "SubjectType",
]
