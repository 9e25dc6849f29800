"""A backend that sends Web Push notifications (RFC 8030) to the browsers a user subscribed.

The approval pages offer "Notify me on this device" (``django_ciba/pages/_webpush.html``); the
browser's push subscription is stored as a :class:`~django_ciba.models.WebPushSubscription`. For
each notification this backend POSTs to every subscription of the user:

* a JSON payload ``{"title", "body", "url", "request_id"}``, encrypted for the browser
  (``aes128gcm``, RFC 8188/8291; pywebpush does the encryption) and padded with spaces to a
  multiple of 256 bytes, so the push service learns neither the content nor its exact length;
* a VAPID ``Authorization`` header (RFC 8292): an ES256 JWT signed with the ``vapid_private_key``
  option (:mod:`django_ciba.backends.webpush_keys`) for the push service's origin, valid 12 hours;
* ``TTL`` (seconds until the request expires), ``Urgency`` and ``Topic: ciba-<pk>`` (a retry
  replaces a message still queued for the same request).

The POST goes through :mod:`django_ciba.core.outbound` (https only, public addresses, no redirects,
timeouts). Answers: 2xx delivered; 404/410 the subscription expired and is deleted ("pruned");
408, 429 and 5xx retried; any other answer fails that subscription. The notification counts as
delivered when at least one subscription accepted it.

Subscription endpoints are capability URLs (whoever knows one may push to the browser): they
are never logged or put into error messages, only the push service's origin and the row's pk.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from django.core import checks
from django.utils import timezone, translation
from django.utils.translation import gettext

from django_ciba.backends.base import (
    BaseNotificationBackend,
    DeviceNotification,
    NotificationError,
    PermanentNotificationError,
)
from django_ciba.backends.webpush_keys import (
    AUTH_SECRET_LENGTH,
    P256_POINT_LENGTH,
    PRIVATE,
    PUBLIC,
    SUBJECT,
    VAPID_LIFETIME,
    VapidConfig,
    VapidProblem,
    b64url_decode,
    b64url_encode,
    check_vapid,
    generate_vapid_keys,
    load_private_key,
    parse_auth_secret,
    parse_public_key,
    private_key_text,
    public_key_text,
    push_service_origin,
    vapid_authorization,
    vapid_config,
    vapid_public_key,
    vapid_values,
)
from django_ciba.core import details_rendering
from django_ciba.core.conf import ciba_settings
from django_ciba.exceptions import CibaConfigurationError


__all__ = [  # the key helpers live in webpush_keys; importable from here as before
    "AUTH_SECRET_LENGTH",
    "P256_POINT_LENGTH",
    "VAPID_LIFETIME",
    "VapidConfig",
    "VapidProblem",
    "WebPushBackend",
    "b64url_decode",
    "b64url_encode",
    "encrypt",
    "generate_vapid_keys",
    "load_private_key",
    "parse_auth_secret",
    "parse_public_key",
    "private_key_text",
    "public_key_text",
    "push_service_origin",
    "vapid_authorization",
    "vapid_config",
    "vapid_public_key",
]


logger = logging.getLogger(__name__)

CONTENT_ENCODING = "aes128gcm"
URGENCIES = ("very-low", "low", "normal", "high")
#: Largest plaintext of one aes128gcm record of 4096 octets (RFC 8291 §4: 4096 - 86 - 16 - 1).
MAX_PLAINTEXT = 3993
#: The plaintext is padded with spaces to a multiple of this, hiding its exact length.
PAD_TO = 256
#: Longest summary of the authorization details in a notification's body.
MAX_DETAILS_SUMMARY = 500
_TRANSIENT_STATUSES = frozenset({408, 429})
_EXPIRED_STATUSES = frozenset({404, 410})


def encrypt(plaintext: bytes, p256dh: str, auth: str) -> bytes:
    """The ``aes128gcm`` body of a push message for one subscription (RFC 8291)."""
    from pywebpush import WebPusher

    subscription = {"endpoint": "https://unused.invalid/", "keys": {"p256dh": p256dh, "auth": auth}}
    return bytes(WebPusher(subscription).encode(plaintext, CONTENT_ENCODING)["body"])


# --- the backend -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Result:
    outcome: str  # "sent", "pruned", "transient", "failed"
    detail: str = ""
    retry_after: float | None = None


def _valid_ttl(ttl: object) -> bool:
    return ttl is None or (isinstance(ttl, int) and not isinstance(ttl, bool) and ttl >= 0)


class WebPushBackend(BaseNotificationBackend):
    """Sends an encrypted Web Push message to every browser the user subscribed.

    Options:

    ``vapid_private_key``, ``vapid_public_key``, ``vapid_subject`` (required)
        The VAPID key pair (``manage.py ciba_vapid_keys``) and the contact sent to push services
        (``mailto:...`` or an https URL); see :mod:`django_ciba.backends.webpush_keys`.
    ``urgency`` (``"high"``)
        The ``Urgency`` header (RFC 8030 §5.3): ``very-low``, ``low``, ``normal`` or ``high``.
    ``ttl`` (``None``)
        At most this many seconds for the push service to keep an undelivered message; it never
        keeps it past the request's expiry anyway.
    ``title`` (``None``)
        The notification's title; ``None``: "Authentication request" (translated).
    ``include_details`` (``True``)
        Put the client's name and the binding message into the notification (lock screens show
        it). ``False``: a generic text; the user sees the details on the approval page.
    """

    def __init__(
        self,
        *,
        vapid_private_key: str | None = None,
        vapid_public_key: str | None = None,
        vapid_subject: str | None = None,
        urgency: str = "high",
        ttl: int | None = None,
        title: str | None = None,
        include_details: bool = True,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        try:
            import pywebpush  # noqa: F401
        except ImportError as exc:
            raise CibaConfigurationError(
                f"The Web Push backend needs pywebpush: pip install 'django-ciba[webpush]' ({exc})."
            ) from exc
        # Never shown: the private key stays out of reprs, errors and logs.
        self._vapid = vapid_values(
            {PRIVATE: vapid_private_key, PUBLIC: vapid_public_key, SUBJECT: vapid_subject}
        )
        self.urgency = urgency
        self.ttl = ttl
        self.title = title
        self.include_details = bool(include_details)

    def check(self) -> list[checks.CheckMessage]:
        messages = check_vapid(self._vapid)
        if self.urgency not in URGENCIES:
            messages.append(
                checks.Error(
                    f"The Web Push backend's urgency must be one of {', '.join(URGENCIES)}, "
                    f"not {self.urgency!r}.",
                    id="django_ciba.E198",
                )
            )
        if not _valid_ttl(self.ttl):
            messages.append(
                checks.Error(
                    "The Web Push backend's ttl must be None or seconds (int >= 0).", id="django_ciba.E199"
                )
            )
        if not ciba_settings.APPROVAL_URL:
            messages.append(
                checks.Warning(
                    "Web Push notifications carry no link: CIBA['APPROVAL_URL'] is not set.",
                    hint="Set it to the approval page, e.g. 'https://op.example.com/o/ciba/requests/{pk}/'.",
                    id="django_ciba.W033",
                )
            )
        return messages

    # --- what is sent ---------------------------------------------------------------------

    def build_payload(self, notification: DeviceNotification) -> dict[str, Any]:
        """The JSON object the service worker receives; never the auth_req_id or any secret.

        With ``include_details`` the body ends with the plain-text summary of the authorization
        details (at most :data:`MAX_DETAILS_SUMMARY` characters; notifications show text, never
        markup). The texts are in :func:`django_ciba.core.details_rendering.user_language`.
        """
        with translation.override(details_rendering.user_language(notification.user)):
            if self.include_details:
                body = notification.client_name
                if notification.binding_message:
                    body = f"{body}: {notification.binding_message}" if body else notification.binding_message
                summary = details_rendering.text_summary(
                    list(notification.authorization_details), limit=MAX_DETAILS_SUMMARY
                )
                if summary:
                    body = f"{body}\n{summary}" if body else summary
            else:
                body = gettext("A request awaits your approval.")
            title = self.title or gettext("Authentication request")
        return {
            "title": title,
            "body": body,
            "url": notification.approval_url,
            "request_id": notification.auth_request_pk,
            **({"reminder": notification.reminder} if notification.reminder else {}),
        }

    @staticmethod
    def encode_payload(payload: dict[str, Any]) -> bytes:
        """Compact UTF-8 JSON, the body shortened if it would not fit into one record, padded with
        spaces (valid JSON whitespace) to a multiple of :data:`PAD_TO` bytes."""

        def dump(value: dict[str, Any]) -> bytes:
            return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

        data = dump(payload)
        body = str(payload.get("body", ""))
        while len(data) > MAX_PLAINTEXT and body:
            # Each character is at least one byte: cutting the overflow in characters always helps.
            body = body[: len(body) - max(1, len(data) - MAX_PLAINTEXT)].rstrip()
            data = dump({**payload, "body": f"{body}…"})
        if len(data) > MAX_PLAINTEXT:
            raise PermanentNotificationError("The Web Push payload is too large (a very long approval URL?).")
        padded = min(MAX_PLAINTEXT, -(-len(data) // PAD_TO) * PAD_TO)
        return data + b" " * (padded - len(data))

    def headers(self, notification: DeviceNotification) -> dict[str, str]:
        """The headers common to every subscription (VAPID is added per push service)."""
        if self.urgency not in URGENCIES or not _valid_ttl(self.ttl):  # checks E198 / E199 fail too
            raise CibaConfigurationError("The Web Push backend's urgency or ttl option is invalid.")
        remaining = (notification.expires_at - timezone.now()).total_seconds()
        ttl = max(0, int(remaining))
        if self.ttl is not None:
            ttl = min(ttl, self.ttl)
        return {
            "Content-Type": "application/octet-stream",
            "Content-Encoding": CONTENT_ENCODING,
            "TTL": str(ttl),
            "Urgency": self.urgency,
            "Topic": f"ciba-{notification.auth_request_pk}"[:32],
        }

    # --- sending --------------------------------------------------------------------------

    def notify(self, notification: DeviceNotification) -> None:
        from django_ciba.models import WebPushSubscription

        config = vapid_config(self._vapid)  # CibaConfigurationError: a permanent, logged failure
        subscriptions = list(WebPushSubscription.objects.filter(user_id=notification.user.pk).order_by("pk"))
        if not subscriptions:
            raise PermanentNotificationError(
                f"User pk={notification.user.pk} has no Web Push subscription; cannot notify by Web Push."
            )
        plaintext = self.encode_payload(self.build_payload(notification))
        headers = self.headers(notification)
        results = [self._send(subscription, plaintext, headers, config) for subscription in subscriptions]
        sent = sum(result.outcome == "sent" for result in results)
        if sent:
            return
        summary = "; ".join(
            f"#{sub.pk}: {res.detail}" for sub, res in zip(subscriptions, results, strict=True)
        )
        transient = [result for result in results if result.outcome == "transient"]
        if transient:
            delays = [result.retry_after for result in transient if result.retry_after is not None]
            raise NotificationError(
                f"No Web Push subscription accepted the message ({summary}); will retry.",
                retry_after=max(delays) if delays else None,
            )
        raise PermanentNotificationError(f"No Web Push subscription accepted the message ({summary}).")

    def _send(
        self, subscription: Any, plaintext: bytes, headers: dict[str, str], config: VapidConfig
    ) -> _Result:
        from django_ciba.core import outbound

        origin = push_service_origin(subscription.endpoint)
        try:
            parse_public_key(subscription.p256dh)
            parse_auth_secret(subscription.auth)
        except ValueError as exc:  # can never work (the subscription API refuses such keys)
            self._prune(subscription, origin, f"unusable keys: {exc}")
            return _Result("pruned", "unusable keys, deleted")
        try:
            body = encrypt(plaintext, subscription.p256dh, subscription.auth)
        except Exception as exc:
            logger.warning(
                "Web Push to subscription #%s: encryption failed (%s)", subscription.pk, type(exc).__name__
            )
            return _Result("failed", f"encryption failed ({type(exc).__name__})")
        request_headers = {**headers, "Authorization": vapid_authorization(subscription.endpoint, config)}
        try:
            response = outbound.post_json(subscription.endpoint, body, headers=request_headers)
        except outbound.OutboundError as exc:
            logger.warning("Web Push to subscription #%s failed: %s", subscription.pk, exc)
            return _Result("transient" if exc.transient else "failed", str(exc))
        status = response.status
        if 200 <= status < 300:
            type(subscription).objects.filter(pk=subscription.pk).update(last_used_at=timezone.now())
            logger.debug("Web Push to subscription #%s (%s): HTTP %s", subscription.pk, origin, status)
            return _Result("sent", f"HTTP {status}")
        if status in _EXPIRED_STATUSES:
            self._prune(subscription, origin, f"HTTP {status}")
            return _Result("pruned", f"HTTP {status}, expired and deleted")
        if status >= 500 or status in _TRANSIENT_STATUSES:
            logger.info(
                "Web Push to subscription #%s (%s): HTTP %s, will retry", subscription.pk, origin, status
            )
            retry_after = response.retry_after() if status in (429, 503) else None
            return _Result("transient", f"HTTP {status}", retry_after)
        hint = " (VAPID key not the one the browser subscribed with?)" if status in (401, 403) else ""
        logger.warning("Web Push to subscription #%s (%s): HTTP %s%s", subscription.pk, origin, status, hint)
        return _Result("failed", f"HTTP {status}{hint}")

    @staticmethod
    def _prune(subscription: Any, origin: str, reason: str) -> None:
        type(subscription).objects.filter(pk=subscription.pk).delete()
        logger.info("Deleted Web Push subscription #%s (%s): %s.", subscription.pk, origin, reason)
