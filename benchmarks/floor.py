"""The bare-Django floor: the two hot paths written by hand in plain Django views, on the same
server, settings, middleware, database and cache as the library, measured in the same rounds.

Nothing here is django-ciba's code path: no DRF, no DOT, no oauthlib, no policy, no hot-path cache.
Each view does the least a correct answer needs, so that the table can say how far the library is
from what Django itself costs on this machine:

``pending poll``   HTTP Basic client authentication (the client row read and its secret checked with
                   the same hasher), the request read by the SHA-256 of its auth_req_id (one SELECT),
                   the poll interval kept in the cache (a get and a set, for ``slow_down``), then
                   400 ``authorization_pending``.
``bc-authorize``   the same client authentication, the user read by ``login_hint``, the user's
                   pending requests counted (the per-user cap), then one transaction with the
                   request, its audit event and its outbox row, and a no-op task handed to the task
                   queue after the commit (to the Celery worker in the production configuration,
                   in-process otherwise). No notification is formatted or sent: the outbox row is
                   written as already delivered.

Mounted only by ``benchmarks/urls.py`` (the benchmark's ``ROOT_URLCONF``), never by the example project.
"""

from __future__ import annotations

import base64
import binascii
import time
from datetime import timedelta
from typing import Any
from urllib.parse import unquote_plus

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import check_password
from django.core.cache import cache
from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.utils.crypto import constant_time_compare
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from oauth2_provider.models import get_application_model

from django_ciba.core.conf import ciba_settings
from django_ciba.core.identifiers import hash_auth_req_id, new_auth_req_id
from django_ciba.models import AuthenticationRequest, Delivery, DeliveryMode, RequestEvent

from .tasks import noop


CIBA_GRANT = "urn:openid:params:grant-type:ciba"
EXPIRES_IN = 120
INTERVAL = 5
Status = AuthenticationRequest.Status


def _error(code: str, status: int = 400) -> JsonResponse:
    return JsonResponse({"error": code}, status=status, headers={"Cache-Control": "no-store"})


def _client(request: HttpRequest) -> Any:
    """The client named by HTTP Basic credentials (RFC 6749 section 2.3.1), or None."""
    scheme, _, value = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        client_id, _, secret = base64.b64decode(value, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, secret = unquote_plus(client_id), unquote_plus(secret)
    application = get_application_model().objects.filter(client_id=client_id).first()
    if application is None:
        return None
    if application.hash_client_secret:
        valid = check_password(secret, application.client_secret)
    else:
        valid = constant_time_compare(secret, application.client_secret)
    return application if valid else None


@csrf_exempt
@require_POST
def pending_poll(request: HttpRequest) -> JsonResponse:
    client = _client(request)
    if client is None:
        return _error("invalid_client", 401)
    if request.POST.get("grant_type") != CIBA_GRANT:
        return _error("unsupported_grant_type")
    digest = hash_auth_req_id(request.POST.get("auth_req_id", ""))
    row = (
        AuthenticationRequest.objects.filter(auth_req_id_hash=digest, client_id=client.pk)
        .values_list("status", "expires_at", "interval")
        .first()
    )
    if row is None:
        return _error("invalid_grant")
    status, expires_at, interval = row
    if expires_at <= timezone.now():
        return _error("expired_token")
    if status != Status.PENDING:
        return _error("invalid_grant")  # the floor issues no tokens
    key = f"bench-floor:poll:{digest}"
    now = time.time()
    last = cache.get(key)
    cache.set(key, now, timeout=interval * 2)
    if last is not None and now - last < interval:
        return _error("slow_down")
    return _error("authorization_pending")


@csrf_exempt
@require_POST
def bc_authorize(request: HttpRequest) -> JsonResponse:
    client = _client(request)
    if client is None:
        return _error("invalid_client", 401)
    scope = request.POST.get("scope", "")
    if "openid" not in scope.split():
        return _error("invalid_scope")
    user = (
        get_user_model()
        .objects.filter(username=request.POST.get("login_hint", ""), is_active=True)
        .only("pk")
        .first()
    )
    if user is None:
        return _error("unknown_user_id")
    pending = AuthenticationRequest.objects.filter(user=user, status=Status.PENDING).count()
    cap = ciba_settings.MAX_PENDING_PER_USER
    if cap is not None and pending >= cap:
        return _error("access_denied")
    auth_req_id = new_auth_req_id()
    now = timezone.now()
    with transaction.atomic():
        auth_request = AuthenticationRequest.objects.create(
            auth_req_id_hash=hash_auth_req_id(auth_req_id),
            client=client,
            user=user,
            delivery_mode=DeliveryMode.POLL,
            hint_type="login_hint",
            scope=scope,
            binding_message=request.POST.get("binding_message", ""),
            expires_at=now + timedelta(seconds=EXPIRES_IN),
            interval=INTERVAL,
            created_at=now,
            updated_at=now,
        )
        RequestEvent.objects.create(
            auth_request=auth_request, event="created", actor=f"client:{client.client_id}", created_at=now
        )
        Delivery.objects.create(
            auth_request=auth_request,
            kind=Delivery.Kind.DEVICE,
            status=Delivery.Status.DELIVERED,
            next_attempt_at=now,
            finished_at=now,
            created_at=now,
            updated_at=now,
        )
        transaction.on_commit(lambda: noop.apply_async(ignore_result=True))
    return JsonResponse(
        {"auth_req_id": auth_req_id, "expires_in": EXPIRES_IN, "interval": INTERVAL},
        headers={"Cache-Control": "no-store"},
    )
