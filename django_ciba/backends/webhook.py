"""A backend that POSTs a signed JSON event to the operator's URL (e.g. a mobile push gateway).

The body is compact UTF-8 JSON; the signature header reads ``t=<unix seconds>,v1=<hex>``, where
``<hex>`` is HMAC-SHA256 with the shared secret over ``f"{t}."`` followed by the body bytes. The
timestamp lets receivers refuse replays; :func:`verify_signature` checks both.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from datetime import UTC
from typing import Any

from django.core import checks
from django.utils import translation

from django_ciba.backends.base import (
    BaseNotificationBackend,
    DeviceNotification,
    NotificationError,
    PermanentNotificationError,
)
from django_ciba.core import details_rendering
from django_ciba.exceptions import CibaConfigurationError


EVENT_TYPE = "ciba.authentication_request"
SIGNATURE_VERSION = "v1"
MIN_SECRET_LENGTH = 32
# RFC 9110 §5.1 field-name (token).
_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
# Statuses worth retrying besides 5xx: request timeout and rate limiting.
_TRANSIENT_STATUSES = frozenset({408, 429})


def _key(secret: str | bytes) -> bytes:
    return secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)


def _sign(key: bytes, timestamp: int, body: bytes) -> str:
    return hmac.new(key, f"{timestamp}.".encode("ascii") + body, hashlib.sha256).hexdigest()


def sign(secret: str | bytes, body: bytes, *, timestamp: int | None = None) -> str:
    """The signature header value for ``body``: ``t=<timestamp>,v1=<hex HMAC-SHA256>``."""
    timestamp = int(time.time()) if timestamp is None else int(timestamp)
    return f"t={timestamp},{SIGNATURE_VERSION}={_sign(_key(secret), timestamp, body)}"


def verify_signature(
    secret: str | bytes,
    header: str,
    body: bytes,
    *,
    tolerance: int = 300,
    now: float | None = None,
) -> bool:
    """Whether ``header`` is a valid signature of ``body`` made less than ``tolerance`` s ago.

    For receivers: pass the raw request body (not re-serialized JSON). Timestamps further than
    ``tolerance`` seconds from ``now`` (in either direction) are refused, so a captured request
    cannot be replayed later; receivers should also ignore an ``id`` they have already handled.
    Several ``v1`` entries are accepted (any one may match). Comparison is constant-time.
    """
    key = _key(secret)
    if not key:
        raise ValueError("The webhook secret must not be empty.")
    if isinstance(body, str):
        body = body.encode("utf-8")
    timestamp: int | None = None
    signatures: list[str] = []
    for item in (header or "").split(","):
        name, sep, value = item.strip().partition("=")
        if not sep:
            continue
        if name == "t":
            if timestamp is not None or not (value.isascii() and value.isdigit()):
                return False
            timestamp = int(value)
        elif name == SIGNATURE_VERSION:
            signatures.append(value)
    if timestamp is None or not signatures:
        return False
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        return False
    expected = _sign(key, timestamp, body).encode("ascii")
    matched = False
    for signature in signatures:  # no early exit: the time taken does not depend on which matched
        matched |= hmac.compare_digest(expected, signature.encode("utf-8", "replace"))
    return matched


def build_payload(notification: DeviceNotification) -> dict[str, Any]:
    """The JSON object sent for ``notification`` (it never carries the auth_req_id).

    ``authorization_details`` are the request's details as the client sent them (data: a receiver
    that shows them must escape them) and ``authorization_details_summary`` their plain-text
    rendering (at most :data:`~django_ciba.core.details_rendering.MAX_SUMMARY` characters, in
    :func:`~django_ciba.core.details_rendering.user_language`); both are left out without details.
    """
    expires_at = notification.expires_at.astimezone(UTC).isoformat(timespec="seconds")
    user = notification.user
    payload: dict[str, Any] = {
        "type": EVENT_TYPE,
        "id": notification.auth_request_pk,
        "user": {"pk": str(user.pk), "username": user.get_username()},
        "client": {"client_id": notification.client_id, "name": notification.client_name},
        "binding_message": notification.binding_message,
        "scopes": list(notification.scopes),
        "acr_values": list(notification.acr_values),
        "expires_at": expires_at.replace("+00:00", "Z"),
        "approval_url": notification.approval_url,
        **({"reminder": notification.reminder} if notification.reminder else {}),
    }
    details = list(notification.authorization_details)
    if details:
        with translation.override(details_rendering.user_language(user)):
            payload["authorization_details_summary"] = details_rendering.text_summary(details)
        payload["authorization_details"] = details
    return payload


def encode_payload(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class WebhookBackend(BaseNotificationBackend):
    """POSTs each notification as signed JSON to ``url``.

    Options: ``url`` (required), ``secret`` (required, at least 32 characters recommended) and
    ``header_name`` (default ``X-Ciba-Signature``). Timeouts and the allowed destinations come
    from the ``CIBA["OUTBOUND"]`` settings.
    """

    def __init__(
        self,
        *,
        url: str = "",
        secret: str | bytes = "",
        header_name: str = "X-Ciba-Signature",
        **options: Any,
    ) -> None:
        super().__init__(**options)
        if not isinstance(header_name, str) or not _HEADER_NAME.match(header_name):
            raise CibaConfigurationError(
                f"The webhook notification backend's header_name {header_name!r} is not a valid "
                "HTTP header name."
            )
        self.url = url
        self._secret = secret  # never shown: not in repr, errors or logs
        self.header_name = header_name

    def __repr__(self) -> str:
        return f"<{type(self).__name__} url={self.url!r}>"

    def check(self) -> list[checks.CheckMessage]:
        from django_ciba.core import outbound

        messages: list[checks.CheckMessage] = []
        where = "CIBA['NOTIFICATION_BACKEND']['OPTIONS']"
        if not self.url or not isinstance(self.url, str):
            messages.append(
                checks.Error(
                    f"The webhook notification backend needs a 'url' in {where}.", id="django_ciba.E030"
                )
            )
        else:
            try:
                outbound.validate_endpoint_url(self.url)
            except outbound.OutboundError as exc:
                if not getattr(exc, "transient", False):  # e.g. DNS down at startup: not a config error
                    messages.append(
                        checks.Error(
                            f"The webhook notification backend's url is refused: {exc}",
                            hint="Use a public https URL, or allow its network in "
                            "CIBA['OUTBOUND']['ALLOWED_NETWORKS'].",
                            id="django_ciba.E190",
                        )
                    )
        if not self._secret or not isinstance(self._secret, str | bytes):
            messages.append(
                checks.Error(
                    f"The webhook notification backend needs a 'secret' (str) in {where}.",
                    id="django_ciba.E191",
                )
            )
        elif len(self._secret) < MIN_SECRET_LENGTH:
            messages.append(
                checks.Warning(
                    f"The webhook notification backend's secret is shorter than {MIN_SECRET_LENGTH} "
                    "characters.",
                    hint="Generate one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'",
                    id="django_ciba.W031",
                )
            )
        return messages

    def notify(self, notification: DeviceNotification) -> None:
        from django_ciba.core import outbound

        if not self.url or not self._secret:
            raise PermanentNotificationError(
                "The webhook notification backend has no url or no secret (checks django_ciba.E030, E191)."
            )
        body = encode_payload(build_payload(notification))
        headers = {self.header_name: sign(self._secret, body)}
        try:
            response = outbound.post_json(self.url, body, headers=headers)
        except outbound.OutboundError as exc:
            error = NotificationError if getattr(exc, "transient", False) else PermanentNotificationError
            raise error(f"Webhook delivery failed: {exc}") from exc
        status = response.status
        if 200 <= status < 300:
            return
        if status >= 500 or status in _TRANSIENT_STATUSES:
            raise NotificationError(
                f"The webhook answered HTTP {status}; will retry.",
                retry_after=response.retry_after() if status == 429 else None,
            )
        raise PermanentNotificationError(f"The webhook answered HTTP {status}.")
