"""The three CIBA flows as a client and the user's device live them, printed step by step.

The client side talks to the OP over HTTP with ``requests`` and checks the ID token with PyJWT
only, as an independent client would; the device side calls :mod:`django_ciba.approval.decisions`, as an
authentication device's backend does. Callbacks are delivered by django-ciba's outbox task, which
runs in-process without a broker, to the demo's own HTTPS receiver.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Any

import jwt
import requests
from django.utils import timezone
from oauth2_provider.models import get_access_token_model

from django_ciba.approval import decisions
from django_ciba.assurance import AuthenticationContext
from django_ciba.backends import locmem
from django_ciba.backends.console import ConsoleBackend
from django_ciba.core.constants import AUTH_REQ_ID_CLAIM, CIBA_GRANT_TYPE
from django_ciba.models import AuthenticationRequest, Delivery

from .environment import DemoClient
from .output import ModeResult, Printer, short
from .receiver import CallbackReceiver


CALLBACK_TIMEOUT = 20.0  # seconds; callbacks are held back until the bc-authorize answer is sent
SETTLE_TIMEOUT = 5.0  # seconds the OP's task may take to record a callback's outcome
RT_HASH_CLAIM = "urn:openid:params:jwt:claim:rt_hash"


class DemoFailure(Exception):
    """A step did not give what the specification promises."""


@dataclass
class Demo:
    out: Printer
    issuer: str
    http: requests.Session
    metadata: dict[str, Any]
    jwks: jwt.PyJWKClient
    user: Any
    receiver: CallbackReceiver


def run_mode(demo: Demo, mode: str, client: DemoClient, flow: Any = None) -> ModeResult:
    """Run one mode (its flow from :data:`FLOWS` unless given); any failure is printed and reported in
    the result, never raised. A flow may return what it verified last (default: the ID token)."""
    demo.out.section(f"{mode.capitalize()} mode")
    started = time.monotonic()
    try:
        verified = (flow or FLOWS[mode])(demo, client) or "ID token verified"
    except DemoFailure as exc:
        demo.out.error(f"FAILED: {exc}")
        return ModeResult(mode, False, time.monotonic() - started, str(exc))
    except Exception as exc:  # an unexpected error fails this mode, not the whole demo
        detail = f"{type(exc).__name__}: {exc}"
        demo.out.error(f"FAILED: {detail}")
        return ModeResult(mode, False, time.monotonic() - started, detail)
    demo.out.ok(f"{mode.capitalize()}-mode CIBA flow completed: {verified}.")
    return ModeResult(mode, True, time.monotonic() - started, verified)


def poll_flow(demo: Demo, client: DemoClient) -> None:
    out = demo.out
    auth_req_id, ack = start(demo, client)
    notification = device_notified(demo, client)
    out.step("The client polls the token endpoint before the user has answered")
    pending = token_request(demo, client, auth_req_id, 400)
    out.show("answer", pending)
    if pending.get("error") != "authorization_pending":
        raise DemoFailure(f"expected authorization_pending, got {pending}")
    approve(demo, notification)
    interval = int(ack.get("interval", 5))
    out.step(f"The client waits its interval ({interval} s) and polls again")
    time.sleep(interval)
    tokens = token_request(demo, client, auth_req_id, 200)
    out.show("answer", tokens)
    verify_id_token(demo, client, tokens, auth_req_id)
    out.step("The auth_req_id is single use: polling again")
    reuse = token_request(demo, client, auth_req_id, 400)
    out.show("answer", reuse)


def ping_flow(demo: Demo, client: DemoClient) -> None:
    auth_req_id, _ = start(demo, client)
    notification = device_notified(demo, client)
    approve(demo, notification)
    body = callback_received(demo, client, notification, "ping")
    if body != {"auth_req_id": auth_req_id}:
        raise DemoFailure(f"the ping body must be exactly the auth_req_id, got keys {sorted(body)}")
    demo.out.step("The client, pinged, calls the token endpoint once")
    tokens = token_request(demo, client, auth_req_id, 200)
    demo.out.show("answer", tokens)
    verify_id_token(demo, client, tokens, auth_req_id)


def push_flow(demo: Demo, client: DemoClient) -> None:
    auth_req_id, ack = start(demo, client)
    if "interval" in ack:
        raise DemoFailure("a push client is not told a polling interval")
    notification = device_notified(demo, client)
    approve(demo, notification)
    body = callback_received(demo, client, notification, "push")
    if body.get("auth_req_id") != auth_req_id:
        raise DemoFailure("the pushed token response does not carry this request's auth_req_id")
    for key in ("access_token", "token_type", "id_token"):
        if key not in body:
            raise DemoFailure(f"the pushed token response has no {key}")
    verify_id_token(demo, client, body, auth_req_id, push=True)


FLOWS = {"poll": poll_flow, "ping": ping_flow, "push": push_flow}


def start(demo: Demo, client: DemoClient) -> tuple[str, dict[str, Any]]:
    out = demo.out
    out.step("The client starts a backchannel authentication request")
    form = {
        "scope": "openid profile offline_access",
        "login_hint": demo.user.email,
        "binding_message": f"Demo {client.mode} {secrets.randbelow(9000) + 1000}",
    }
    if client.mode != "poll":
        token = secrets.token_urlsafe(32)
        form["client_notification_token"] = token
        demo.receiver.expect(callback_path(client.mode), token)
    url = demo.metadata["backchannel_authentication_endpoint"]
    out.show("POST", url)
    out.show(
        "client authentication", f"client_secret_basic ({client.client_id}:{short(client.client_secret)})"
    )
    out.show("form", form)
    ack = answer(demo.http.post(url, data=form, auth=client.auth, timeout=15), 200)
    out.show("answer", ack)
    if not ack.get("auth_req_id"):
        raise DemoFailure("the answer carries no auth_req_id")
    return ack["auth_req_id"], ack


#: How long the demo waits for the device notification, which the OP sends once it has answered.
NOTIFICATION_WAIT = 10.0


def device_notified(demo: Demo, client: DemoClient) -> Any:
    """The notification sent to the user's device (recorded by the locmem backend).

    The OP hands the notification over after its answer has been sent, so it may arrive a moment
    after the client got its auth_req_id: wait for it (at most :data:`NOTIFICATION_WAIT` seconds)."""
    demo.out.step("The user's authentication device is notified")
    deadline = time.monotonic() + NOTIFICATION_WAIT
    while True:
        sent = [n for n in locmem.outbox if n.client_id == client.client_id]
        if sent or time.monotonic() >= deadline:
            break
        time.sleep(0.02)
    if not sent:
        raise DemoFailure("no device notification was sent")
    notification = sent[-1]
    demo.out.block(
        "the device gets (as the console backend prints it)",
        ConsoleBackend().format(notification).splitlines(),
    )
    return notification


def approve(demo: Demo, notification: Any) -> None:
    demo.out.step("On the device, the user approves (django_ciba.approval.decisions.approve)")
    request = decisions.get_for_user(demo.user, notification.auth_request_pk)
    # The simulated device signed the user in with a password just now; the server derives the
    # acr from that (django_ciba.assurance), the device does not choose it.
    signed_in = AuthenticationContext(amr=("pwd",), auth_time=timezone.now())
    decisions.approve(request, user=demo.user, context=signed_in)
    demo.out.show("request", f"#{request.pk} {request.status}, acr {request.acr}, amr {request.amr}")


def settled_deliveries(auth_request_pk: int, timeout: float = SETTLE_TIMEOUT) -> list[Delivery]:
    """The request's outbox rows once none is pending any more (at most ``timeout`` seconds).

    The receiver has the callback as soon as the OP's task sent it, but the task records the
    outcome only after reading the answer: on a busy machine the row can still be pending here.
    """
    deadline = time.monotonic() + timeout
    while True:
        deliveries = list(Delivery.objects.filter(auth_request_id=auth_request_pk).order_by("pk"))
        pending = any(d.status == Delivery.Status.PENDING for d in deliveries)
        if not pending or time.monotonic() >= deadline:
            return deliveries
        time.sleep(0.05)


def callback_received(demo: Demo, client: DemoClient, notification: Any, kind: str) -> dict[str, Any]:
    """The client's receiver got the OP's callback with the right bearer token and accepted it."""
    out = demo.out
    path = callback_path(client.mode)
    out.step(f"The OP calls the client back ({kind}); the client's receiver gets it")
    callback = demo.receiver.wait_for(path, CALLBACK_TIMEOUT)
    if callback is None:
        errors = "; ".join(demo.receiver.errors) or "none"
        raise DemoFailure(f"no {kind} callback within {CALLBACK_TIMEOUT:g} s (receiver errors: {errors})")
    out.show("POST", client.notification_endpoint)
    authorization = callback.headers.get("authorization", "")
    scheme, _, value = authorization.partition(" ")
    out.show("Authorization", f"{scheme} {short(value)}" if value else "(none)")
    out.show("Content-Type", callback.headers.get("content-type", "(none)"))
    try:
        body = callback.json()
    except ValueError:
        raise DemoFailure(f"the {kind} body is not JSON")
    out.show("body", body)
    out.show("bearer token", "matches the client_notification_token" if callback.bearer_ok else "WRONG")
    out.show("receiver answered", str(callback.status))
    deliveries = settled_deliveries(notification.auth_request_pk)
    out.show(
        "OP outbox (tasks run in-process: no broker)",
        ", ".join(f"{d.kind} {d.status} after {d.attempts} attempt(s)" for d in deliveries),
    )
    if not callback.bearer_ok:
        raise DemoFailure(f"the {kind} callback did not carry the client_notification_token")
    if not 200 <= callback.status < 300:
        outcome = f" ({pushed_tokens_state(notification)})" if kind == "push" else ""
        raise DemoFailure(
            f"the client's receiver refused the {kind} callback (HTTP {callback.status}){outcome}"
        )
    return body


def pushed_tokens_state(notification: Any) -> str:
    """What the OP did after a refused push: a 401 is final, so the request fails and its tokens go."""
    request = AuthenticationRequest.objects.get(pk=notification.auth_request_pk)
    alive = request.access_token_id is not None and (
        get_access_token_model().objects.filter(pk=request.access_token_id).exists()
    )
    return (
        f"OP: request #{request.pk} {request.status}, pushed tokens {'still valid' if alive else 'revoked'}"
    )


def token_request(demo: Demo, client: DemoClient, auth_req_id: str, status: int) -> dict[str, Any]:
    form = {"grant_type": CIBA_GRANT_TYPE, "auth_req_id": auth_req_id}
    response = demo.http.post(demo.metadata["token_endpoint"], data=form, auth=client.auth, timeout=15)
    return answer(response, status)


def verify_id_token(
    demo: Demo, client: DemoClient, tokens: dict[str, Any], auth_req_id: str, *, push: bool = False
) -> None:
    out = demo.out
    out.step("The client verifies the ID token against the OP's JWKS (PyJWT)")
    id_token = tokens["id_token"]
    signing_key = demo.jwks.get_signing_key_from_jwt(id_token)
    claims = jwt.decode(
        id_token, signing_key.key, algorithms=["RS256"], audience=client.client_id, issuer=demo.issuer
    )
    out.show("signature", f"valid (kid {signing_key.key_id}), iss and aud match")
    if claims.get(AUTH_REQ_ID_CLAIM) != auth_req_id:
        raise DemoFailure(f"the ID token's {AUTH_REQ_ID_CLAIM} is not this request's auth_req_id")
    out.show(AUTH_REQ_ID_CLAIM, "matches the auth_req_id")
    # CIBA Core §10.3.1: a pushed ID token must carry at_hash (and rt_hash with a refresh token).
    hashes = [("at_hash", "access_token")]
    if "refresh_token" in tokens:
        hashes.append((RT_HASH_CLAIM, "refresh_token"))
    for claim, token_name in hashes:
        if claim not in claims:
            if push:
                raise DemoFailure(f"a pushed ID token must carry {claim}")
            continue
        if claims[claim] != token_hash(tokens[token_name]):
            raise DemoFailure(f"{claim} does not match the {token_name}")
        out.show(claim, f"matches the {token_name}")
    out.show("claims", claims)


def token_hash(value: str) -> str:
    """at_hash / rt_hash for RS256: left half of SHA-256, base64url without padding."""
    digest = hashlib.sha256(value.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[:16]).decode("ascii").rstrip("=")


def callback_path(mode: str) -> str:
    return f"/cb/{mode}"


def answer(response: requests.Response, expected_status: int) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        raise DemoFailure(f"HTTP {response.status_code} without JSON from {response.url}")
    if response.status_code != expected_status:
        raise DemoFailure(f"HTTP {response.status_code} from {response.url}: {body}")
    return body
