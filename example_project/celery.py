"""The example project's Celery app: in-process unless ``CELERY_BROKER_URL`` is set.

Run a worker (with the periodic sweep and cleanup) with::

    CELERY_BROKER_URL=redis://127.0.0.1:6379/0 celery -A example_project worker -B
"""

import os

from celery import Celery


os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_project.settings")

app = Celery("example_project")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
