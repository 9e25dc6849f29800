from .backchannel import BackchannelAuthenticationView
from .device import (
    DeviceRequestApproveView,
    DeviceRequestDenyView,
    DeviceRequestDetailView,
    DeviceRequestListView,
)
from .discovery import CibaConnectDiscoveryInfoView
from .token import TokenView


__all__ = [
    "BackchannelAuthenticationView",
    "CibaConnectDiscoveryInfoView",
    "DeviceRequestApproveView",
    "DeviceRequestDenyView",
    "DeviceRequestDetailView",
    "DeviceRequestListView",
    "TokenView",
]
