from .backchannel import BackchannelAuthenticationView
from .device import (
    DeviceRequestApproveView,
    DeviceRequestDenyView,
    DeviceRequestDetailView,
    DeviceRequestListView,
)
from .discovery import CibaConnectDiscoveryInfoView
from .registration import ClientConfigurationView, ClientRegistrationView
from .token import TokenView


__all__ = [
    "BackchannelAuthenticationView",
    "CibaConnectDiscoveryInfoView",
    "ClientConfigurationView",
    "ClientRegistrationView",
    "DeviceRequestApproveView",
    "DeviceRequestDenyView",
    "DeviceRequestDetailView",
    "DeviceRequestListView",
    "TokenView",
]
