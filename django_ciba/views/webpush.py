"""Web Push for the signed-in end user: store or drop this browser's subscription, serve the worker.

``POST ciba/webpush/subscribe/`` takes the browser's ``PushSubscription.toJSON()``::

    {"endpoint": "https://push.example.net/...", "keys": {"p256dh": "...", "auth": "..."},
     "device": "optional label"}

and ``POST`` or ``DELETE ciba/webpush/unsubscribe/`` takes ``{"endpoint": "..."}``. Both are
JSON, session-authenticated and CSRF-protected (``X-CSRFToken``). ``ciba/sw.js`` is the service
worker, served by Django (not the static files storage) so that it is same-origin with the pages.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.views import View
from rest_framework import status
from rest_framework.parsers import JSONParser
from rest_framework.response import Response

from django_ciba.backends.webpush_keys import parse_auth_secret, parse_public_key, vapid_public_key
from django_ciba.core import outbound
from django_ciba.models import WebPushSubscription
from django_ciba.views.device_api import DeviceAPIView


#: A user's subscriptions beyond this many are dropped, oldest first, when another is added.
MAX_SUBSCRIPTIONS_PER_USER = 10
SERVICE_WORKER = Path(__file__).resolve().parent.parent / "static" / "django_ciba" / "sw.js"
_DEVICE_MAX_LENGTH = WebPushSubscription._meta.get_field("device").max_length or 255


def _invalid(description: str) -> Response:
    return Response(
        {"error": "invalid_request", "error_description": description}, status=status.HTTP_400_BAD_REQUEST
    )


def _endpoint(data: Any) -> str | Response:
    """The validated ``endpoint`` of a JSON body, or the 400 answer (never echoing the URL)."""
    if not isinstance(data, dict):
        return _invalid("The body must be a JSON object.")
    endpoint = data.get("endpoint")
    if not isinstance(endpoint, str) or not endpoint:
        return _invalid("'endpoint' must be the push subscription's URL.")
    try:
        outbound.validate_endpoint_url(endpoint)
    except outbound.OutboundError as exc:
        return _invalid(f"The push endpoint is refused: {exc}")
    return endpoint


def _device_label(data: dict[str, Any], request: Any) -> str | Response:
    device = data.get("device")
    if device is None:
        device = request.headers.get("User-Agent", "")
    elif not isinstance(device, str):
        return _invalid("'device' must be a string.")
    printable = "".join(char for char in device if char.isprintable())
    return " ".join(printable.split())[:_DEVICE_MAX_LENGTH]


class WebPushSubscribeView(DeviceAPIView):
    """Store this browser's push subscription for the signed-in user (201 new, 200 refreshed)."""

    parser_classes = (JSONParser,)

    def post(self, request: Any) -> Response:
        if not vapid_public_key():
            return Response(
                {"error": "not_found", "error_description": "Web Push is not enabled."},
                status=status.HTTP_404_NOT_FOUND,
            )
        endpoint = _endpoint(request.data)
        if isinstance(endpoint, Response):
            return endpoint
        keys = request.data.get("keys")
        if not isinstance(keys, dict):
            return _invalid("'keys' must be an object with 'p256dh' and 'auth'.")
        p256dh, auth = keys.get("p256dh", ""), keys.get("auth", "")  # "" is refused like a missing key
        try:
            parse_public_key(p256dh)
        except ValueError as exc:
            return _invalid(f"'keys.p256dh' is invalid: {exc}.")
        try:
            parse_auth_secret(auth)
        except ValueError as exc:
            return _invalid(f"'keys.auth' is invalid: {exc}.")
        device = _device_label(request.data, request)
        if isinstance(device, Response):
            return device
        user = request.user
        with transaction.atomic():
            # One browser, one owner: whoever signs in on it and subscribes gets its notifications.
            WebPushSubscription.objects.filter(endpoint=endpoint).exclude(user=user).delete()
            subscription, created = WebPushSubscription.objects.update_or_create(
                endpoint=endpoint,
                user=user,
                defaults={"p256dh": p256dh.rstrip("="), "auth": auth.rstrip("="), "device": device},
            )
            surplus = (
                WebPushSubscription.objects.filter(user=user)
                .exclude(pk=subscription.pk)
                .order_by("-created_at", "-pk")
                .values_list("pk", flat=True)[MAX_SUBSCRIPTIONS_PER_USER - 1 :]
            )
            WebPushSubscription.objects.filter(pk__in=list(surplus)).delete()
        return Response(
            {"subscribed": True, "device": subscription.device},
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class WebPushUnsubscribeView(DeviceAPIView):
    """Forget this browser's subscription (204, also when it was not stored for this user)."""

    parser_classes = (JSONParser,)

    def post(self, request: Any) -> Response:
        if not isinstance(request.data, dict) or not isinstance(request.data.get("endpoint"), str):
            return _invalid("'endpoint' must be the push subscription's URL.")
        WebPushSubscription.objects.filter(user=request.user, endpoint=request.data["endpoint"]).delete()
        return Response(status=status.HTTP_204_NO_CONTENT)

    def delete(self, request: Any) -> Response:
        return self.post(request)


@lru_cache(maxsize=1)
def _service_worker_source() -> bytes:
    return SERVICE_WORKER.read_bytes()


class ServiceWorkerView(View):
    """The service worker script. Its default scope is its own directory (``.../ciba/``), which
    covers the approval pages mounted next to it; it handles ``push`` and ``notificationclick``
    only (no ``fetch``), so it never changes how pages load."""

    http_method_names = ["get", "head"]

    def get(self, request: HttpRequest) -> HttpResponse:
        response = HttpResponse(
            _service_worker_source(), content_type="application/javascript; charset=utf-8"
        )
        # Browsers check for a new worker on navigation; make them revalidate rather than cache.
        response["Cache-Control"] = "no-cache"
        response["X-Content-Type-Options"] = "nosniff"
        return response
