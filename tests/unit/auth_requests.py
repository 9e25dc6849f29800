"""How django-ciba's own tests make an authentication request: one place instead of a copy per module.

Three helpers, on top of the public ones of :mod:`django_ciba.testing` (which a project's tests use
too, and whose behaviour these do not change):

``ask(http, application, secret, **params)``
    POSTs a backchannel authentication request and returns the response, whatever it is (for
    refusals). The request is alice's with scope ``openid`` unless ``params`` say otherwise; a ping
    or push client sends :data:`NOTIFICATION_TOKEN` as its ``client_notification_token``. A
    parameter given as ``None`` is left out of the request.
``start(http, application, secret, **params)``
    The same request, which must succeed: ``(auth_req_id, AuthenticationRequest)``.
``make_request(application, user, *, age=0, client_notification_token="", **fields)``
    Stores a pending poll-mode row without bc-authorize (``create_auth_request``): for tests of what
    happens once a request exists. ``fields`` override any column; ``age`` makes it that many seconds
    old (``created_at`` and ``updated_at``); ``client_notification_token`` is stored sealed.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone

from django_ciba.core.sealing import seal
from django_ciba.models import AuthenticationRequest, CibaClient, DeliveryMode
from django_ciba.testing import bc_authorize, create_auth_request


NOTIFICATION_TOKEN = "notification-token-of-the-tests-" + "N" * 24
DEFAULTS = {"scope": "openid", "login_hint": "alice"}


def request_params(application: Any, **params: Any) -> dict[str, Any]:
    """:data:`DEFAULTS`, the notification token of a ping or push client, then ``params``; ``None``
    removes a parameter."""
    merged = dict(DEFAULTS)
    mode = CibaClient.objects.filter(application=application).values_list("delivery_mode", flat=True).first()
    if mode in (DeliveryMode.PING, DeliveryMode.PUSH):
        merged["client_notification_token"] = NOTIFICATION_TOKEN
    merged.update(params)
    return {name: value for name, value in merged.items() if value is not None}


def ask(http: Any, application: Any, secret: str, **params: Any) -> Any:
    """POST the request (client_secret_basic); the response, whatever it is."""
    return bc_authorize(http, application, secret, **request_params(application, **params))


def start(http: Any, application: Any, secret: str, **params: Any) -> tuple[str, AuthenticationRequest]:
    """POST the request, which must succeed; ``(auth_req_id, AuthenticationRequest)``."""
    response = ask(http, application, secret, **params)
    assert response.status_code == 200, response.content
    auth_req_id = response.json()["auth_req_id"]
    return auth_req_id, AuthenticationRequest.objects.by_auth_req_id(auth_req_id).get()


def make_request(
    application: Any, user: Any, *, age: float = 0, client_notification_token: str = "", **fields: Any
) -> AuthenticationRequest:
    """Store a pending poll-mode request of ``user`` for ``application`` (no bc-authorize, no delivery)."""
    if client_notification_token:
        fields.setdefault("client_notification_token_sealed", seal(client_notification_token))
    if age:
        changed = timezone.now() - timedelta(seconds=age)
        fields = {"created_at": changed, "updated_at": changed, **fields}
    return create_auth_request(application, user, **fields)
