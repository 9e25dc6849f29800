"""``{% load ciba_webpush %}``: what the Web Push part of the approval pages needs.

``{% ciba_webpush_config as webpush %}`` gives ``None`` when the Web Push backend's
``vapid_public_key`` option is unset (:func:`django_ciba.backends.webpush_keys.vapid_public_key`),
else a dict with ``public_key``, ``service_worker_url``, ``subscribe_url``, ``unsubscribe_url`` and
``script_url``; ``django_ciba/pages/_webpush.html`` renders from it, so a page
including that template needs nothing in its context.
"""

from __future__ import annotations

from typing import Any

from django import template
from django.templatetags.static import static
from django.urls import reverse

from django_ciba.backends.webpush_keys import vapid_public_key


register = template.Library()


@register.simple_tag
def ciba_webpush_config() -> dict[str, Any] | None:
    public_key = vapid_public_key()
    if not public_key:
        return None
    return {
        "public_key": str(public_key).strip(),
        "service_worker_url": reverse("django_ciba:service-worker"),
        "subscribe_url": reverse("django_ciba:webpush-subscribe"),
        "unsubscribe_url": reverse("django_ciba:webpush-unsubscribe"),
        "script_url": static("django_ciba/webpush.js"),
    }
