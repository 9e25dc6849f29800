"""Mount before DOT's URLs, under the same prefix::

path("o/", include("django_ciba.urls")),
path("o/", include("oauth2_provider.urls", namespace="oauth2_provider")),
"""

from django.urls import path, re_path

from django_ciba import views


app_name = "django_ciba"

urlpatterns = [
    path("bc-authorize", views.BackchannelAuthenticationView.as_view(), name="bc-authorize"),
    # A django-ciba extension: the client cancels one of its requests (docs/authorization-details.rst).
    path("bc-authorize/cancel", views.BackchannelCancelView.as_view(), name="bc-cancel"),
    path("token/", views.TokenView.as_view(), name="token"),
    path("introspect/", views.IntrospectTokenView.as_view(), name="introspect"),
    path("register", views.ClientRegistrationView.as_view(), name="register"),
    path("register/<str:client_id>", views.ClientConfigurationView.as_view(), name="register-client"),
    re_path(
        r"^\.well-known/openid-configuration/?$",
        views.CibaConnectDiscoveryInfoView.as_view(),
        name="oidc-connect-discovery-info",
    ),
    # DOT's keys plus CIBA["ID_TOKEN_SIGNING_KEYS"] (PS256, ES256 ID tokens): served instead of DOT's.
    path(".well-known/jwks.json", views.CibaJwksInfoView.as_view(), name="jwks-info"),
    path("ciba/device/requests/", views.DeviceRequestListView.as_view(), name="device-requests"),
    path("ciba/device/requests/<int:pk>/", views.DeviceRequestDetailView.as_view(), name="device-request"),
    path(
        "ciba/device/requests/<int:pk>/approve/",
        views.DeviceRequestApproveView.as_view(),
        name="device-request-approve",
    ),
    path(
        "ciba/device/requests/<int:pk>/deny/",
        views.DeviceRequestDenyView.as_view(),
        name="device-request-deny",
    ),
    # The approval pages (HTML, for the signed-in user; CIBA["APPROVAL_URL"] links to "request").
    path("ciba/requests/", views.RequestListView.as_view(), name="requests"),
    path("ciba/requests/<int:pk>/", views.RequestDetailView.as_view(), name="request"),
    path("ciba/requests/<int:pk>/result/", views.RequestResultView.as_view(), name="request-result"),
    # Their sign-in and sign-out (used unless the project has its own; see CIBA["LOGIN_URL"]).
    path("ciba/login/", views.SignInView.as_view(), name="login"),
    path("ciba/logout/", views.SignOutView.as_view(), name="logout"),
    # Web Push: this browser's subscription (JSON, session + CSRF) and the service worker, whose
    # default scope (ciba/) covers the approval pages.
    path("ciba/webpush/subscribe/", views.WebPushSubscribeView.as_view(), name="webpush-subscribe"),
    path("ciba/webpush/unsubscribe/", views.WebPushUnsubscribeView.as_view(), name="webpush-unsubscribe"),
    path("ciba/sw.js", views.ServiceWorkerView.as_view(), name="service-worker"),
    # The OpenID conformance suite's automated approval URL: a 404 unless CIBA["TEST_AUTOMATION"]
    # enables it on a test deployment (django_ciba.approval.automation).
    path("ciba/test-automation/", views.AutomatedApprovalView.as_view(), name="test-automation"),
]
