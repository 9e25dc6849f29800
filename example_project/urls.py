from django.conf import settings
from django.contrib import admin
from django.contrib.staticfiles.views import serve
from django.urls import include, path, re_path


urlpatterns = [
    path("admin/", admin.site.urls),
    # End-user sign-in for the approval pages (login, logout, password change and reset).
    path("accounts/", include("django.contrib.auth.urls")),
    path("o/", include("django_ciba.urls")),
    path("o/", include("oauth2_provider.urls", namespace="oauth2_provider")),
    # The example serves its static files (the approval pages' CSS) itself even with DEBUG off;
    # a real deployment serves them from its web server or WhiteNoise after collectstatic.
    re_path(rf"^{settings.STATIC_URL.lstrip('/')}(?P<path>.*)$", serve, {"insecure": True}),
]
