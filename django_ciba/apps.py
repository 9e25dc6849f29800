from django.apps import AppConfig, apps
from django.utils.translation import gettext_lazy as _


class DjangoCibaConfig(AppConfig):
    name = "django_ciba"
    label = "django_ciba"
    verbose_name = _("OpenID Connect CIBA")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_in

        # checks: registers the system checks
        from django_ciba import assurance, checks, middleware, outbox, tasks  # noqa: F401
        from django_ciba.clients import cache as client_cache
        from django_ciba.core import after_response, log_redaction

        client_cache.connect()  # saved or deleted clients are read again by every process
        log_redaction.install()  # oauthlib logs some tokens at DEBUG
        middleware.install_log_filter()  # one log line per database-outage answer
        # The login time of each session, for the auth_time of the approvals made with it.
        user_logged_in.connect(assurance.record_login, dispatch_uid="django_ciba.assurance.record_login")
        # The outbox enqueues its deliveries through this receiver: only django_ciba.tasks knows Celery.
        # Deliveries recorded during a request are handed over once its response has been sent.
        after_response.install()
        outbox.outbox_ready.connect(tasks.enqueue_delivery, dispatch_uid="django_ciba.tasks.enqueue_delivery")
        tasks.connect_signals()  # a worker keeps its database connections as CONN_MAX_AGE says
        if apps.is_installed("drf_spectacular"):
            from django_ciba.openapi import extensions  # noqa: F401  (registers the OpenAPI descriptions)
