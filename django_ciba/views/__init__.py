from django_ciba.views.automation import AutomatedApprovalView
from django_ciba.views.bc_authorize import BackchannelAuthenticationView, BackchannelCancelView
from django_ciba.views.device_api import (
    DeviceRequestApproveView,
    DeviceRequestDenyView,
    DeviceRequestDetailView,
    DeviceRequestListView,
)
from django_ciba.views.discovery import CibaConnectDiscoveryInfoView
from django_ciba.views.introspect import IntrospectTokenView
from django_ciba.views.jwks import CibaJwksInfoView
from django_ciba.views.pages import RequestDetailView, RequestListView, RequestResultView
from django_ciba.views.registration import ClientConfigurationView, ClientRegistrationView
from django_ciba.views.signin import SignInView, SignOutView
from django_ciba.views.token import TokenView
from django_ciba.views.webpush import ServiceWorkerView, WebPushSubscribeView, WebPushUnsubscribeView


__all__ = [
    "AutomatedApprovalView",
    "BackchannelAuthenticationView",
    "BackchannelCancelView",
    "CibaConnectDiscoveryInfoView",
    "CibaJwksInfoView",
    "ClientConfigurationView",
    "ClientRegistrationView",
    "DeviceRequestApproveView",
    "DeviceRequestDenyView",
    "DeviceRequestDetailView",
    "DeviceRequestListView",
    "IntrospectTokenView",
    "RequestDetailView",
    "RequestListView",
    "RequestResultView",
    "ServiceWorkerView",
    "SignInView",
    "SignOutView",
    "TokenView",
    "WebPushSubscribeView",
    "WebPushUnsubscribeView",
]
