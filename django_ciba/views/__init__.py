from .automation import AutomatedApprovalView
from .backchannel import BackchannelAuthenticationView
from .device import (
    DeviceRequestApproveView,
    DeviceRequestDenyView,
    DeviceRequestDetailView,
    DeviceRequestListView,
)
from .discovery import CibaConnectDiscoveryInfoView
from .introspect import IntrospectTokenView
from .pages import RequestDetailView, RequestListView, RequestResultView
from .registration import ClientConfigurationView, ClientRegistrationView
from .signin import SignInView, SignOutView
from .token import TokenView
from .webpush import ServiceWorkerView, WebPushSubscribeView, WebPushUnsubscribeView


__all__ = [
    "AutomatedApprovalView",
    "BackchannelAuthenticationView",
    "CibaConnectDiscoveryInfoView",
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
