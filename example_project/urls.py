from django.conf import settings
from django.contrib import admin
from django.contrib.staticfiles.views import serve
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView


urlpatterns = [
    path("admin/", admin.site.urls),
    path("o/", include("django_ciba.urls")),
    path("o/", include("oauth2_provider.urls", namespace="oauth2_provider")),
    # The OpenAPI description of the CIBA endpoints (YAML; ?format=json for JSON) and a viewer.
    path("openapi.yaml", SpectacularAPIView.as_view(), name="openapi-schema"),
    path("openapi/", SpectacularSwaggerView.as_view(url_name="openapi-schema"), name="openapi-ui"),
    # DEMO CLIENT for `manage.py ciba_play` (holds client secrets): never mount it in a real OP.
    path("console/", include("example_project.console.urls")),
    # The example serves its static files (the approval pages' CSS) itself even with DEBUG off;
    # a real deployment serves them from its web server or WhiteNoise after collectstatic.
    re_path(rf"^{settings.STATIC_URL.lstrip('/')}(?P<path>.*)$", serve, {"insecure": True}),
]
