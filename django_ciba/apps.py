from django.apps import AppConfig, apps
from django.utils.translation import gettext_lazy as _


class DjangoCibaConfig(AppConfig):
    name = "django_ciba"
    label = "django_ciba"
    verbose_name = _("OpenID Connect CIBA")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_in

        from . import (
            assurance,
            assurance_checks,  # noqa: F401  (registers the assurance system checks)
            automation_checks,  # noqa: F401  (registers the test automation checks)
            checks,  # noqa: F401  (registers the system checks)
            client_checks,  # noqa: F401  (registers the client key and sector checks)
            integration_checks,  # noqa: F401  (registers the URL, signing key and Celery checks)
            log_redaction,
            page_checks,  # noqa: F401  (registers the approval pages' checks)
        )

        log_redaction.install()  # oauthlib logs some tokens at DEBUG
        # The login time of each session, for the auth_time of the approvals made with it.
        user_logged_in.connect(assurance.record_login, dispatch_uid="django_ciba.assurance.record_login")
        if apps.is_installed("drf_spectacular"):
            from .openapi import extensions  # noqa: F401  (registers the OpenAPI descriptions)
