"""What the demo sets up around the flows: the OP served over HTTP, the settings of this run, the
end user and the three clients (created on the first run, given a new secret and callback URL on
later runs)."""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from io import StringIO
from typing import Any
from urllib.parse import urlparse
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.handlers.wsgi import WSGIHandler
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import transaction
from django.test import override_settings
from oauth2_provider.models import get_application_model

from django_ciba.backends import locmem
from django_ciba.clients.secrets import generate_client_secret
from django_ciba.models import CibaClient

from .receiver import CallbackReceiver


#: The three delivery modes, and the demo's flows: one per mode and the agent's.
DELIVERY_MODES = ("poll", "ping", "push")
MODES = (*DELIVERY_MODES, "agent")
#: The agent is a poll client allowed the types of the agent flow and waits of up to eight hours.
AGENT = {
    "mode": "poll",
    "authorization_details_types": ["agent_action", "payment_initiation"],
    "max_requested_expiry": 8 * 3600,
}
CLIENT_SCOPE = "openid profile email offline_access"
LOOPBACK = "127.0.0.0/8"
LOCMEM_BACKEND = {"BACKEND": "django_ciba.backends.locmem.LocmemBackend", "OPTIONS": {}}


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - wsgiref's signature
        pass


@contextlib.contextmanager
def serve_op(issuer: str) -> Iterator[None]:
    """Serve this Django project over plain HTTP on the issuer's host and port, in a thread."""
    origin = urlparse(issuer or "")
    if origin.scheme != "http" or not origin.hostname:
        raise CommandError(
            f"The demo serves plain http: CIBA_EXAMPLE_ISSUER must be http://host:port/o, not {issuer!r}."
        )
    try:
        server = make_server(origin.hostname, origin.port or 80, WSGIHandler(), WSGIServer, _QuietHandler)
    except OSError as exc:
        raise CommandError(
            f"Cannot serve the demo OP on {origin.netloc} ({exc}). Free that port or set "
            "CIBA_EXAMPLE_ISSUER, e.g. CIBA_EXAMPLE_ISSUER=http://127.0.0.1:8765/o"
        )
    thread = threading.Thread(target=server.serve_forever, name="demo-op", daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@contextlib.contextmanager
def demo_settings(receiver: CallbackReceiver) -> Iterator[dict[str, Any]]:
    """For this run only: callbacks may reach 127.0.0.0/8, device notifications go to the locmem
    backend (so the demo can show them), and the receiver's certificate is trusted."""
    ciba = dict(getattr(settings, "CIBA", None) or {})
    outbound = dict(ciba.get("OUTBOUND") or {})
    # The old flat name (still accepted, check W180) is moved to its place rather than given twice.
    allowed = list(outbound.get("ALLOWED_NETWORKS") or ciba.pop("OUTBOUND_ALLOWED_NETWORKS", None) or [])
    if LOOPBACK not in allowed:
        allowed.append(LOOPBACK)
    ciba.update(OUTBOUND={**outbound, "ALLOWED_NETWORKS": allowed}, NOTIFICATION_BACKEND=LOCMEM_BACKEND)
    saved = os.environ.get("REQUESTS_CA_BUNDLE")
    os.environ["REQUESTS_CA_BUNDLE"] = receiver.ca_file  # read by django_ciba.core.outbound per call
    locmem.reset()
    try:
        with override_settings(CIBA=ciba):
            yield ciba
    finally:
        locmem.reset()
        if saved is None:
            os.environ.pop("REQUESTS_CA_BUNDLE", None)
        else:
            os.environ["REQUESTS_CA_BUNDLE"] = saved


def ensure_user(username: str) -> Any:
    user, _ = get_user_model().objects.get_or_create(
        username=username, defaults={"email": f"{username}@example.com"}
    )
    if not user.email:
        user.email = f"{username}@example.com"
        user.save(update_fields=["email"])
    return user


@dataclass(frozen=True)
class DemoClient:
    mode: str
    client_id: str
    client_secret: str
    notification_endpoint: str
    action: str  # what the run did: "created", or "new secret" for an existing client

    @property
    def auth(self) -> tuple[str, str]:
        return self.client_id, self.client_secret


def ensure_client(mode: str, notification_endpoint: str = "") -> DemoClient:
    """The demo's client of ``mode``: registered with ``manage.py ciba_create_client`` on the first
    run; later runs give it a new secret (only its hash is stored) and this run's callback URL."""
    name = f"Demo {mode} client"
    options = AGENT if mode == "agent" else {"mode": mode}
    Application = get_application_model()
    application = (
        Application.objects.filter(name=name, ciba__delivery_mode=options["mode"]).order_by("pk").first()
    )
    if application is None:
        out = StringIO()
        call_command(
            "ciba_create_client",
            name=name,
            notification_endpoint=notification_endpoint,
            scope=CLIENT_SCOPE,
            stdout=out,
            **options,
        )
        created = json.loads(out.getvalue())
        return DemoClient(
            mode, created["client_id"], created["client_secret"], notification_endpoint, "created"
        )
    secret = generate_client_secret()
    with transaction.atomic():
        application.client_secret = secret  # hashed on save
        application.save()
        ciba = CibaClient.objects.get(application=application)
        ciba.notification_endpoint = notification_endpoint
        ciba.enabled = True
        try:
            ciba.full_clean(exclude=["application"])
        except ValidationError as exc:
            raise CommandError(f"Cannot update the {name}: {exc.messages}")
        ciba.save()
    return DemoClient(mode, application.client_id, secret, notification_endpoint, "new secret")
