"""A backend that e-mails the user, through Django's configured ``EMAIL_BACKEND``."""

from __future__ import annotations

import smtplib
from typing import TYPE_CHECKING, Any

from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.core.mail import EmailMessage
from django.template.loader import render_to_string
from django.utils import translation


if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser

from django_ciba.backends.base import (
    BaseNotificationBackend,
    DeviceNotification,
    NotificationError,
    PermanentNotificationError,
)
from django_ciba.core import details_rendering


SUBJECT_TEMPLATE = "django_ciba/notification/email_subject.txt"
BODY_TEMPLATE = "django_ciba/notification/email_body.txt"


def _email_address(user: AbstractBaseUser) -> str:
    # Custom user models may name the field differently (AbstractBaseUser.EMAIL_FIELD).
    get_field_name = getattr(user, "get_email_field_name", None)
    field_name = get_field_name() if callable(get_field_name) else "email"
    return (getattr(user, field_name, "") or "").strip()


class EmailBackend(BaseNotificationBackend):
    """Sends an e-mail with the binding message and the approval link to ``user.email``.

    The subject and body are rendered from ``django_ciba/notification/email_subject.txt`` and
    ``email_body.txt``; override the templates to change the wording. The body lists the request's
    authorization details as plain text (``details``: one line each, from their types' text
    templates) and is a ``text/plain`` e-mail, so markup in a detail stays inert text. It is written
    in :func:`django_ciba.core.details_rendering.user_language` (amounts formatted for it).
    """

    def __init__(
        self,
        *,
        from_email: str | None = None,
        subject_prefix: str = "",
        fail_silently: bool = False,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.from_email = from_email  # None: settings.DEFAULT_FROM_EMAIL
        self.subject_prefix = subject_prefix
        self.fail_silently = fail_silently

    def check(self) -> list[checks.CheckMessage]:
        """E196: ``from_email`` is neither None nor an address; E197: ``subject_prefix`` is not text."""
        messages: list[checks.CheckMessage] = []
        where = "CIBA['NOTIFICATION_BACKEND']['OPTIONS']"
        if self.from_email is not None and not (isinstance(self.from_email, str) and self.from_email.strip()):
            messages.append(
                checks.Error(
                    f"The e-mail notification backend's 'from_email' in {where} must be None "
                    "(DEFAULT_FROM_EMAIL) or an address.",
                    id="django_ciba.E196",
                )
            )
        if not isinstance(self.subject_prefix, str):
            messages.append(
                checks.Error(
                    f"The e-mail notification backend's 'subject_prefix' in {where} must be a string.",
                    id="django_ciba.E197",
                )
            )
        return messages

    def get_context(self, notification: DeviceNotification) -> dict[str, Any]:
        return {
            "notification": notification,
            "user": notification.user,
            "client_name": notification.client_name,
            "binding_message": notification.binding_message,
            "scopes": notification.scopes,
            "expires_at": notification.expires_at,
            "approval_url": notification.approval_url,
            "details": details_rendering.render_details(list(notification.authorization_details), text=True),
        }

    def build_message(self, notification: DeviceNotification) -> EmailMessage:
        address = _email_address(notification.user)
        if not address:
            raise PermanentNotificationError(
                f"User pk={notification.user.pk} has no e-mail address; cannot notify by e-mail."
            )
        with translation.override(details_rendering.user_language(notification.user)):
            context = self.get_context(notification)
            subject: str = render_to_string(SUBJECT_TEMPLATE, context)
            body = render_to_string(BODY_TEMPLATE, context).rstrip() + "\n"
        subject = " ".join(f"{self.subject_prefix}{subject}".split())  # one line: no header injection
        return EmailMessage(subject, body, self.from_email, [address])

    def notify(self, notification: DeviceNotification) -> None:
        message = self.build_message(notification)
        try:
            message.send(fail_silently=self.fail_silently)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            if codes and all(500 <= code < 600 for code in codes):
                raise PermanentNotificationError(f"The mail server refused the recipient: {codes}.") from exc
            raise NotificationError(f"The mail server refused the recipient: {codes}.") from exc
        except ImproperlyConfigured:
            raise  # a broken EMAIL_BACKEND is a configuration error, not a delivery failure
        except ValueError as exc:  # e.g. BadHeaderError, an address Django cannot encode
            raise PermanentNotificationError(f"The e-mail cannot be sent: {exc}") from exc
        except Exception as exc:
            raise NotificationError(f"Sending the e-mail failed: {type(exc).__name__}: {exc}") from exc
