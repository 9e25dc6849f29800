"""ASGI entry point (e.g. ``gunicorn -k uvicorn_worker.UvicornWorker example_project.asgi:application``).
django-ciba's views are synchronous: Django runs them in a thread per request under ASGI."""

import os

from django.core.asgi import get_asgi_application


os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_project.settings")
application = get_asgi_application()
