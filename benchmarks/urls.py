"""The benchmark server's URLs: the example project's, and the bare-Django floor (``benchmarks.floor``)."""

from django.urls import path

from example_project.urls import urlpatterns as project_urlpatterns

from . import floor


urlpatterns = [
    path("bench-floor/token", floor.pending_poll),
    path("bench-floor/bc-authorize", floor.bc_authorize),
    *project_urlpatterns,
]
