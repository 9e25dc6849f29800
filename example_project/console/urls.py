"""The demo client console (``manage.py ciba_play``), mounted at ``/console/`` by the example."""

from django.urls import path

from . import views


app_name = "console"

urlpatterns = [
    path("", views.console, name="console"),
    path("requests/", views.requests_fragment, name="requests"),
    path("api/requests/", views.api_requests, name="api-requests"),
]
