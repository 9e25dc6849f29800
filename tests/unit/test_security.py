"""The security guarantees of django-ciba, stated one by one as behaviour tests.

1. SSRF: notification endpoints and jwks_uri values pointing at internal addresses (loopback,
   private, link-local/metadata, unique-local IPv6, IPv4-mapped IPv6, decimal/octal/hex/short IPv4
   forms, ``localhost``, plain ``http``) are refused by model validation, by dynamic registration
   and by the outbound calls themselves; a DNS name that resolves to 127.0.0.1 is refused when
   the call is made; redirects to internal addresses are never followed.
2. Secrets (auth_req_id, access/refresh/ID tokens, client_notification_token, user_code, client
   secrets, registration and initial access tokens, client assertions, request objects) never
   appear in log records at DEBUG level, in ``str()``/``repr()`` of the app's models, in the
   admin or in signal arguments.
3. The auth_req_id is stored only hashed (sealed for ping/push, which is Fernet ciphertext).
4. A user cannot list, view or decide another user's request.
5. The approval pages resist CSRF and framing.
6. login_hint values of known and unknown users take the same time on average: the mechanism is
   tested in ``test_timing.py``; ``benchmarks/login_hint_timing.py`` measures it over HTTP.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler
from urllib.parse import urlencode

import pytest
from django.conf import settings
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import connection
from django.test import Client
from django.urls import reverse

from django_ciba import signals
from django_ciba.approval import decisions
from django_ciba.clients import keys as client_keys
from django_ciba.clients.registration import create_initial_access_token
from django_ciba.core import outbound
from django_ciba.core.constants import CIBA_GRANT_TYPE
from django_ciba.core.identifiers import hash_auth_req_id
from django_ciba.core.outbound import OutboundError, UnsafeDestination
from django_ciba.exceptions import RequestNotFound
from django_ciba.models import (
    AbuseReport,
    AuthenticationRequest,
    AuthMethod,
    CibaClient,
    Delivery,
    DeliveryMode,
)
from django_ciba.testing import (
    FORM,
    basic_auth,
    client_assertion,
    create_auth_request,
    create_ciba_client,
    make_client_key,
    poll,
    request_object,
    start_request,
)
from tests.unit.auth_requests import make_request
from tests.unit.test_outbound import _fake_dns, _Server, tls_files  # noqa: F401 (tls_files: fixture)


ISSUER = settings.OAUTH2_PROVIDER["OIDC_ISS_ENDPOINT"]
USER_CODE = "7319-secret-code"
Status = AuthenticationRequest.Status

# --------------------------------------------------------------------------------------------
# 1. SSRF

INTERNAL_URLS = [
    "http://rp.example.com/cb",  # not https
    "https://127.0.0.1/cb",
    "https://localhost/cb",
    "https://[::1]/cb",
    "https://[::ffff:127.0.0.1]/cb",  # IPv4-mapped IPv6
    "https://2130706433/cb",  # 127.0.0.1 as a decimal number
    "https://0177.0.0.1/cb",  # octal
    "https://0x7f.0.0.1/cb",  # hexadecimal
    "https://127.1/cb",  # short form
    "https://10.0.0.1/cb",
    "https://169.254.169.254/latest/meta-data",  # cloud metadata
    "https://[fd00::1]/cb",  # unique local IPv6
]
# A host name is checked when the call is made (no DNS lookup at configuration time).
REBOUND_NAME = "internal.rp.example.com"
REBOUND_URL = f"https://{REBOUND_NAME}/cb"


@pytest.fixture
def internal_dns(monkeypatch):
    """``internal.rp.example.com`` resolves to 127.0.0.1 (and only that name is faked)."""
    return _fake_dns(monkeypatch, {REBOUND_NAME: ["127.0.0.1"]})


@pytest.fixture
def no_network(monkeypatch):
    """Fail the test if anything opens a connection (a refused URL must never be contacted)."""
    import urllib3

    def refuse(*args, **kwargs):
        raise AssertionError("an outbound connection was attempted")

    monkeypatch.setattr(urllib3.HTTPSConnectionPool, "urlopen", refuse)


@pytest.mark.django_db
@pytest.mark.parametrize("url", INTERNAL_URLS)
def test_ssrf_notification_endpoint_is_refused_by_model_validation(url):
    application, _ = create_ciba_client("SSRF ping")
    ciba = CibaClient.objects.get(application=application)
    ciba.delivery_mode = DeliveryMode.PING
    ciba.notification_endpoint = url
    with pytest.raises(ValidationError) as info:
        ciba.full_clean()
    assert "notification_endpoint" in info.value.message_dict


@pytest.mark.django_db
@pytest.mark.parametrize("url", INTERNAL_URLS)
def test_ssrf_jwks_uri_is_refused_by_model_validation(url):
    application, _ = create_ciba_client("SSRF keys", auth_method=AuthMethod.PRIVATE_KEY_JWT)
    ciba = CibaClient.objects.get(application=application)
    ciba.jwks_uri = url
    with pytest.raises(ValidationError) as info:
        ciba.full_clean()
    assert "jwks_uri" in info.value.message_dict


def _register(http_client, metadata, **headers):
    return http_client.post(
        "/o/register", data=json.dumps(metadata), content_type="application/json", **headers
    )


PING_METADATA = {
    "client_name": "SSRF ping",
    "grant_types": [CIBA_GRANT_TYPE],
    "token_endpoint_auth_method": "client_secret_basic",
    "backchannel_token_delivery_mode": "ping",
    "backchannel_client_notification_endpoint": "https://rp.example.com/cb",
}
KEYS_METADATA = {
    "client_name": "SSRF keys",
    "grant_types": [CIBA_GRANT_TYPE],
    "token_endpoint_auth_method": "private_key_jwt",
    "token_endpoint_auth_signing_alg": "ES256",
    "jwks_uri": "https://rp.example.com/jwks.json",
    "backchannel_token_delivery_mode": "poll",
}


@pytest.mark.django_db
@pytest.mark.parametrize("url", INTERNAL_URLS)
@pytest.mark.parametrize(
    ("metadata", "field"),
    [(PING_METADATA, "backchannel_client_notification_endpoint"), (KEYS_METADATA, "jwks_uri")],
    ids=["notification_endpoint", "jwks_uri"],
)
def test_ssrf_is_refused_by_dynamic_registration(client, ciba_settings, no_network, metadata, field, url):
    ciba_settings.set(REGISTRATION_OPEN=True)
    response = _register(client, {**metadata, field: url})
    assert response.status_code == 400, response.content
    assert response.json()["error"] == "invalid_client_metadata"
    assert not CibaClient.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("metadata", "field"),
    [(PING_METADATA, "backchannel_client_notification_endpoint"), (KEYS_METADATA, "jwks_uri")],
    ids=["notification_endpoint", "jwks_uri"],
)
def test_registration_accepts_the_public_controls(client, ciba_settings, no_network, metadata, field):
    # The refusals above are about the addresses: the same metadata with a public URL registers.
    ciba_settings.set(REGISTRATION_OPEN=True)
    assert _register(client, metadata).status_code == 201


@pytest.mark.parametrize("url", [*INTERNAL_URLS, REBOUND_URL])
def test_ssrf_is_refused_by_the_outbound_calls(url, internal_dns, no_network, settings):
    settings.CIBA = {**settings.CIBA, "OUTBOUND_ALLOWED_NETWORKS": []}
    with pytest.raises(UnsafeDestination):
        outbound.post_json(url, b"{}")
    with pytest.raises(UnsafeDestination):
        outbound.get_document(url, max_bytes=4096)


@pytest.mark.parametrize("url", [*INTERNAL_URLS, REBOUND_URL])
def test_ssrf_is_refused_when_fetching_a_jwks_uri(url, internal_dns, no_network):
    with pytest.raises((UnsafeDestination, client_keys.ClientJwtError)) as info:
        client_keys.fetch_jwks(url, refresh=True)
    refusal = info.value if isinstance(info.value, UnsafeDestination) else info.value.__cause__
    assert isinstance(refusal, UnsafeDestination), repr(info.value)


def test_dns_name_is_looked_up_at_call_time(internal_dns, no_network):
    # A host name passes configuration-time checks; its address is judged when the call is made.
    outbound.validate_endpoint_url(REBOUND_URL)
    with pytest.raises(UnsafeDestination, match="resolves to a non-public address"):
        outbound.post_json(REBOUND_URL, b"{}")
    assert internal_dns == [REBOUND_NAME]


@pytest.mark.django_db(transaction=True)
def test_registered_jwks_uri_resolving_to_loopback_is_never_fetched(
    client, user, ciba_settings, internal_dns, no_network
):
    # Registration does no DNS lookup, so the name registers; using its keys is refused.
    ciba_settings.set(REGISTRATION_OPEN=True)
    response = _register(client, {**KEYS_METADATA, "jwks_uri": REBOUND_URL})
    assert response.status_code == 201, response.content
    application = CibaClient.objects.get(application__client_id=response.json()["client_id"]).application
    private_key, _ = make_client_key("ES256", kid="k")
    auth = client_assertion(application, private_key, audience=ISSUER, alg="ES256", kid="k")
    form = urlencode({"scope": "openid", "login_hint": "alice", **auth})
    answer = client.post("/o/bc-authorize", data=form, content_type=FORM)
    assert (answer.status_code, answer.json()["error"]) == (401, "invalid_client")
    assert internal_dns == [REBOUND_NAME]  # looked up at use, refused, never connected
    assert not AuthenticationRequest.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_notification_endpoint_resolving_to_loopback_is_never_called(
    client, user, ciba_settings, internal_dns, no_network
):
    ciba_settings.set(REGISTRATION_OPEN=True)
    response = _register(client, {**PING_METADATA, "backchannel_client_notification_endpoint": REBOUND_URL})
    assert response.status_code == 201, response.content
    registered = response.json()
    application = CibaClient.objects.get(application__client_id=registered["client_id"]).application
    _, auth_request = start_request(
        client,
        application,
        registered["client_secret"],
        scope="openid",
        login_hint="alice",
        client_notification_token="t" * 40,
    )
    decisions.approve(auth_request, user=user)
    ping = Delivery.objects.get(auth_request=auth_request, kind=Delivery.Kind.PING)
    assert ping.status == Delivery.Status.FAILED  # refused for good, not retried
    assert "non-public address" in ping.last_error, (ping.error, ping.last_error)
    assert internal_dns == [REBOUND_NAME]


class _RedirectHandler(BaseHTTPRequestHandler):
    """Answers every request with 302 to ``Location`` (another path of this same server)."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0) or 0)
        if length:
            self.rfile.read(length)
        self.server.requests.append(self.path)
        self.send_response(302)
        self.send_header("Location", self.server.location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST


@pytest.fixture(scope="module")
def redirecting_server(tls_files):  # noqa: F811
    import ssl

    server = _Server(("127.0.0.1", 0), _RedirectHandler)
    server.requests = []
    server.location = ""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls_files / "cert.pem", tls_files / "key.pem")
    server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def redirector(redirecting_server, tls_files, monkeypatch, settings):  # noqa: F811
    """The redirecting server, trusted and allowed (127.0.0.0/8), redirecting to its own /internal."""
    port = redirecting_server.server_address[1]
    redirecting_server.requests.clear()
    redirecting_server.location = f"https://127.0.0.1:{port}/internal"
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tls_files / "cert.pem"))
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    settings.CIBA = {**settings.CIBA, "OUTBOUND_ALLOWED_NETWORKS": ["127.0.0.0/8"]}
    return redirecting_server, f"https://127.0.0.1:{port}"


@pytest.mark.django_db
@pytest.mark.parametrize("location", ["same-server", "metadata", "http"])
def test_redirects_to_internal_addresses_are_not_followed(redirector, location):
    server, base = redirector
    if location == "metadata":
        server.location = "https://169.254.169.254/latest/meta-data"
    elif location == "http":
        server.location = "http://127.0.0.1:1/internal"
    assert outbound.post_json(f"{base}/cb", b"{}").status == 302  # returned, not followed
    with pytest.raises(OutboundError, match="HTTP 302"):
        outbound.get_document(f"{base}/jwks.json", max_bytes=4096)
    with pytest.raises(client_keys.ClientJwtError):
        client_keys.fetch_jwks(f"{base}/keys.json", refresh=True)
    time.sleep(0.05)
    assert server.requests == ["/cb", "/jwks.json", "/keys.json"]  # /internal never requested


# --------------------------------------------------------------------------------------------
# 2./3. Secrets: complete flows with every logger at DEBUG, signals and str()/repr() recorded

SIGNALS = {name: value for name, value in vars(signals).items() if isinstance(value, type(signals.delivered))}
OWN_LOGGERS = ("django_ciba", "oauthlib", "oauth2_provider", "django.request", "celery", "django", "urllib3")


def verify_user_code(user, user_code, auth_request=None):
    return user_code == USER_CODE


class _Collector(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)


def _record_text(record: logging.LogRecord) -> str:
    parts = [record.getMessage(), repr(record.args), repr(record.msg)]
    parts += [repr(value) for key, value in vars(record).items() if key not in ("args", "msg")]
    if record.exc_info:
        parts.append(logging.Formatter().formatException(record.exc_info))
    return "\n".join(parts)


@pytest.fixture
def everything_logged():
    """Every logger at DEBUG (also those with their own level or propagate=False); SQL logged too."""
    collector = _Collector()
    manager = logging.root.manager
    names = ["", *OWN_LOGGERS, "django.db.backends", *list(manager.loggerDict)]
    saved = {}
    for name in dict.fromkeys(names):
        logger = logging.getLogger(name)
        if isinstance(logger, logging.PlaceHolder):
            continue
        saved[name] = (logger.level, logger.disabled)
        logger.setLevel(logging.DEBUG)
        logger.disabled = False
        if name == "" or not logger.propagate:
            logger.addHandler(collector)
    force = connection.force_debug_cursor
    connection.force_debug_cursor = True  # django.db.backends logs every query (as DEBUG=True does)
    yield collector
    connection.force_debug_cursor = force
    for name, (level, disabled) in saved.items():
        logger = logging.getLogger(name)
        logger.setLevel(level)
        logger.disabled = disabled
        logger.removeHandler(collector)


@pytest.fixture
def signal_calls():
    calls = []

    def receiver(signal, **kwargs):
        calls.append((signal, kwargs))

    for signal in SIGNALS.values():
        signal.connect(receiver, weak=False, dispatch_uid="test_security")
    yield calls
    for signal in SIGNALS.values():
        signal.disconnect(dispatch_uid="test_security")


class _Pushes:
    def __init__(self):
        self.calls = []

    def __call__(self, url, body, *, headers=None):
        self.calls.append((url, body, dict(headers or {})))
        return outbound.OutboundResponse(status=204)


class Secrets(dict):
    """name -> secret value; ``add`` ignores empty values."""

    def add(self, name, value):
        assert value, f"{name} is empty"
        self[f"{name}#{len(self)}"] = str(value)


def _tokens(secrets, prefix, answer):
    for key in ("access_token", "refresh_token", "id_token"):
        if answer.get(key):
            secrets.add(f"{prefix}.{key}", answer[key])


def _poll_refresh_flow(secrets, user, other_user):
    """Poll with client_secret_basic, approve on the approval page, poll, refresh; plus a report."""
    application, secret = create_ciba_client("Poll", scope="openid profile offline_access")
    secrets.add("poll.client_secret", secret)
    browser = Client()
    browser.force_login(user)
    auth_req_id, auth_request = start_request(
        Client(), application, secret, scope="openid offline_access", login_hint="alice"
    )
    secrets.add("poll.auth_req_id", auth_req_id)
    assert poll(Client(), application, secret, auth_req_id).json()["error"] == "authorization_pending"
    assert browser.get(f"/o/ciba/requests/{auth_request.pk}/").status_code == 200
    ticked = {"action": "approve", "scope": ["openid", "offline_access"]}  # "Stay signed in" ticked
    assert browser.post(f"/o/ciba/requests/{auth_request.pk}/", ticked).status_code == 302
    answer = poll(Client(), application, secret, auth_req_id).json()
    assert "access_token" in answer, answer
    _tokens(secrets, "poll", answer)
    refreshed = Client().post(
        "/o/token/",
        data=urlencode({"grant_type": "refresh_token", "refresh_token": answer["refresh_token"]}),
        content_type=FORM,
        HTTP_AUTHORIZATION=basic_auth(application.client_id, secret),
    )
    assert refreshed.status_code == 200, refreshed.content
    _tokens(secrets, "refresh", refreshed.json())
    userinfo = Client().get("/o/userinfo/", HTTP_AUTHORIZATION=f"Bearer {refreshed.json()['access_token']}")
    assert userinfo.status_code == 200
    # Another user trying to decide is refused (and logs nothing secret).
    pending_id, pending = start_request(Client(), application, secret, scope="openid", login_hint="alice")
    secrets.add("poll.pending_auth_req_id", pending_id)
    bob = Client()
    bob.force_login(other_user)
    assert bob.post(f"/o/ciba/requests/{pending.pk}/", {"action": "approve"}).status_code == 404
    # A second request reported as abuse, a third polled after denial, a wrong secret.
    reported_id, reported = start_request(Client(), application, secret, scope="openid", login_hint="alice")
    secrets.add("poll.reported_auth_req_id", reported_id)
    assert browser.post(f"/o/ciba/requests/{reported.pk}/", {"action": "report"}).status_code == 302
    assert poll(Client(), application, secret, reported_id).json()["error"] == "access_denied"
    assert poll(Client(), application, secret + "x", reported_id).status_code == 401
    assert poll(Client(), application, secret, reported_id + "x").status_code == 400


def _ping_flow(secrets, user, iat):
    """A ping client registered with an initial access token (client_secret_basic), device API."""
    response = _register(Client(), PING_METADATA, HTTP_AUTHORIZATION=f"Bearer {iat}")
    assert response.status_code == 201, response.content
    registered = response.json()
    secrets.add("ping.client_secret", registered["client_secret"])
    secrets.add("ping.registration_access_token", registered["registration_access_token"])
    client_id, secret = registered["client_id"], registered["client_secret"]
    assert (
        Client()
        .get(
            f"/o/register/{client_id}",
            HTTP_AUTHORIZATION=f"Bearer {registered['registration_access_token']}",
        )
        .status_code
        == 200
    )
    application = CibaClient.objects.get(application__client_id=client_id).application
    token = "ping-notification-token-" + "P" * 30
    secrets.add("ping.client_notification_token", token)
    auth_req_id, auth_request = start_request(
        Client(),
        application,
        secret,
        scope="openid",
        login_hint="alice@example.com",
        client_notification_token=token,
    )
    secrets.add("ping.auth_req_id", auth_req_id)
    device = Client()
    device.force_login(user)
    assert device.get("/o/ciba/device/requests/").status_code == 200
    assert device.get(f"/o/ciba/device/requests/{auth_request.pk}/").status_code == 200
    assert device.post(f"/o/ciba/device/requests/{auth_request.pk}/approve/").status_code == 200
    answer = poll(Client(), application, secret, auth_req_id).json()
    assert "access_token" in answer, answer
    _tokens(secrets, "ping", answer)


def _push_flow(secrets, user, iat, pushes):
    """A push client registered with an initial access token: private_key_jwt, signed requests, user_code."""
    private_key, public_jwk = make_client_key("PS256", kid="push-key")
    metadata = {
        "client_name": "Push",
        "grant_types": [CIBA_GRANT_TYPE],
        "token_endpoint_auth_method": "private_key_jwt",
        "token_endpoint_auth_signing_alg": "PS256",
        "jwks": {"keys": [public_jwk]},
        "backchannel_token_delivery_mode": "push",
        "backchannel_client_notification_endpoint": "https://rp.example.com/push",
        "backchannel_authentication_request_signing_alg": "PS256",
        "backchannel_user_code_parameter": True,
    }
    response = _register(Client(), metadata, HTTP_AUTHORIZATION=f"Bearer {iat}")
    assert response.status_code == 201, response.content
    registered = response.json()
    secrets.add("push.registration_access_token", registered["registration_access_token"])
    application = CibaClient.objects.get(application__client_id=registered["client_id"]).application
    token = "push-notification-token-" + "Q" * 30
    secrets.add("push.client_notification_token", token)
    secrets.add("push.user_code", USER_CODE)
    for user_code, expected in ((USER_CODE + "9", 400), (USER_CODE, 200)):
        signed = request_object(
            application,
            private_key,
            issuer=ISSUER,
            kid="push-key",
            scope="openid profile",
            login_hint="alice",
            user_code=user_code,
            binding_message="Till 4",
            client_notification_token=token,
        )
        auth = client_assertion(application, private_key, audience=ISSUER, kid="push-key")
        secrets.add("push.request_object", signed)
        secrets.add("push.client_assertion", auth["client_assertion"])
        response = Client().post(
            "/o/bc-authorize", data=urlencode({"request": signed, **auth}), content_type=FORM
        )
        assert response.status_code == expected, response.content
    auth_req_id = response.json()["auth_req_id"]
    secrets.add("push.auth_req_id", auth_req_id)
    decisions.approve(AuthenticationRequest.objects.by_auth_req_id(auth_req_id).get(), user=user)
    assert len(pushes.calls) >= 1
    url, body, headers = pushes.calls[-1]
    assert headers["Authorization"] == f"Bearer {token}"
    _tokens(secrets, "push", json.loads(body))


def _all_model_instances():
    from django.apps import apps

    for model in apps.get_app_config("django_ciba").get_models():
        yield from model.objects.all()


def _admin_pages(superuser):
    browser = Client()
    browser.force_login(superuser)
    pages = {}
    for model in admin.site._registry:
        if model._meta.app_label != "django_ciba":
            continue
        opts = model._meta
        changelist = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
        pages[changelist] = browser.get(changelist)
        for obj in model.objects.all()[:20]:
            change = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])
            pages[change] = browser.get(change)
    return {url: response.content.decode() for url, response in pages.items() if response.status_code == 200}


def _found(secrets, text):
    return sorted(name for name, value in secrets.items() if value in text)


@pytest.mark.django_db(transaction=True)
def test_secrets_never_leak_into_logs_str_signals_or_admin(
    user, other_user, ciba_settings, everything_logged, signal_calls, monkeypatch
):
    # About 1.5 s (not slow): three complete flows with SQL logging on.
    ciba_settings.set(USER_CODE_SUPPORTED=True, USER_CODE_VERIFIER=f"{__name__}.verify_user_code")
    pushes = _Pushes()
    monkeypatch.setattr(outbound, "post_json", pushes)
    secrets = Secrets()
    iat, _ = create_initial_access_token(label="security test", uses=2)
    secrets.add("initial_access_token", iat)

    _poll_refresh_flow(secrets, user, other_user)
    _ping_flow(secrets, user, iat)
    _push_flow(secrets, user, iat, pushes)
    assert pushes.calls  # the ping notification and the push were sent (stubbed)

    records = everything_logged.records
    sql = [record for record in records if record.name.startswith("django.db.backends")]
    others = [record for record in records if not record.name.startswith("django.db.backends")]
    assert sql and others  # logging was really captured
    leaks = {
        f"{record.name}: {record.getMessage()[:120]}": _found(secrets, _record_text(record))
        for record in others
    }
    assert {where: names for where, names in leaks.items() if names} == {}

    # SQL statements (logged at DEBUG by django.db.backends when DEBUG=True): our own columns hold
    # hashes or sealed values, so the auth_req_id, the notification token and the user_code never
    # appear. DOT stores access and refresh tokens in clear; that is reported, not asserted.
    sql_text = "\n".join(_record_text(record) for record in sql)
    in_sql = _found(secrets, sql_text)
    print(f"\nsecrets visible in SQL debug logs (DOT storage): {sorted({n.split('#')[0] for n in in_sql})}")
    own = ("auth_req_id", "client_notification_token", "user_code", "registration_access_token", "initial")
    assert [name for name in in_sql if any(word in name for word in own)] == []

    # Signals: only the documented, public arguments, and never a secret.
    assert {name for name, signal in SIGNALS.items() if any(s is signal for s, _ in signal_calls)} >= {
        "auth_request_created",
        "auth_request_approved",
        "auth_request_denied",
        "tokens_issued",
        "delivered",
    }
    for _, kwargs in signal_calls:
        assert set(kwargs) <= {"sender", "auth_request_pk", "client_id", "user_pk", "delivery_mode", "kind"}
        assert _found(secrets, repr(kwargs)) == []

    # str()/repr() of every row of every django_ciba model.
    instances = list(_all_model_instances())
    kinds = {type(instance).__name__ for instance in instances}
    assert {"AuthenticationRequest", "Delivery", "CibaClient", "RequestEvent", "JwtUse"} <= kinds
    assert {"InitialAccessToken", "AbuseReport"} <= kinds
    for instance in instances:
        assert _found(secrets, f"{instance!s} {instance!r}") == [], type(instance).__name__

    # The admin: change lists and change pages of every django_ciba model.
    superuser = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    pages = _admin_pages(superuser)
    assert len(pages) > 10
    assert {url: _found(secrets, text) for url, text in pages.items() if _found(secrets, text)} == {}

    # 3. The auth_req_id is stored only hashed: no column of any table (ours and DOT's) holds it.
    auth_req_ids = {name: value for name, value in secrets.items() if "auth_req_id" in name}
    assert len(auth_req_ids) == 5
    hits = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608
            columns = [column[0] for column in cursor.description]
            for row in cursor.fetchall():
                for column, value in zip(columns, row, strict=True):
                    text = value.decode("latin-1") if isinstance(value, bytes | memoryview) else str(value)
                    hits += [(table, column, name) for name in _found(auth_req_ids, text)]
    assert hits == []
    for value in auth_req_ids.values():
        assert AuthenticationRequest.objects.filter(auth_req_id_hash=hash_auth_req_id(value)).exists()


OAUTHLIB_REFRESH_LOGGER = "oauthlib.oauth2.rfc6749.grant_types.refresh_token"


@pytest.mark.django_db
def test_refresh_grant_logs_no_token_at_debug(user, everything_logged):
    # oauthlib's RefreshTokenGrant logs the refresh token ('Validating refresh token %s') and the
    # whole token response ('Issuing new token ... %r') at DEBUG on OAUTHLIB_REFRESH_LOGGER;
    # django_ciba.core.log_redaction strips their arguments.
    application, secret = create_ciba_client("Refresh", scope="openid offline_access")
    auth_req_id, auth_request = start_request(
        Client(), application, secret, scope="openid offline_access", login_hint="alice"
    )
    decisions.approve(auth_request, user=user)
    answer = poll(Client(), application, secret, auth_req_id).json()
    everything_logged.records.clear()
    refreshed = Client().post(
        "/o/token/",
        data=urlencode({"grant_type": "refresh_token", "refresh_token": answer["refresh_token"]}),
        content_type=FORM,
        HTTP_AUTHORIZATION=basic_auth(application.client_id, secret),
    )
    assert refreshed.status_code == 200
    secrets = Secrets()
    _tokens(secrets, "poll", answer)
    _tokens(secrets, "refresh", refreshed.json())
    text = "\n".join(
        _record_text(record)
        for record in everything_logged.records
        if not record.name.startswith("django.db.backends")
    )
    assert _found(secrets, text) == []


@pytest.mark.django_db
def test_client_credentials_grant_logs_no_token_at_debug(everything_logged):
    # oauthlib's ClientCredentialsGrant logs the token response ('Issuing token to client id ...').
    application, secret = create_ciba_client("Machine", scope="openid")
    answer = Client().post(
        "/o/token/",
        data=urlencode({"grant_type": "client_credentials"}),
        content_type=FORM,
        HTTP_AUTHORIZATION=basic_auth(application.client_id, secret),
    )
    assert answer.status_code == 200, answer.content
    token = answer.json()["access_token"]
    logged = [record for record in everything_logged.records if record.name.startswith("oauthlib")]
    assert any("Issuing token to client id" in record.getMessage() for record in logged)
    # (DOT's own INSERT shows the token in SQL logs: it stores tokens in clear; see the docs.)
    others = [record for record in everything_logged.records if not record.name.startswith("django.db")]
    assert all(token not in _record_text(record) for record in others)


# --------------------------------------------------------------------------------------------
# 4. Another user's request


@pytest.fixture
def alices_request(user, poll_client):
    return make_request(poll_client[0], user, binding_message="Alice 1234")


@pytest.mark.django_db
def test_another_user_cannot_see_or_decide_via_pages(client, other_user, alices_request):
    client.force_login(other_user)
    pk = alices_request.pk
    assert "Alice 1234" not in client.get("/o/ciba/requests/").content.decode()
    assert client.get(f"/o/ciba/requests/{pk}/").status_code == 404
    assert client.get(f"/o/ciba/requests/{pk}/result/").status_code == 404
    for action in ("approve", "deny", "report"):
        assert client.post(f"/o/ciba/requests/{pk}/", {"action": action}).status_code == 404
    alices_request.refresh_from_db()
    assert alices_request.status == Status.PENDING and not AbuseReport.objects.exists()


@pytest.mark.django_db
def test_another_user_cannot_see_or_decide_via_the_device_api(client, other_user, alices_request):
    client.force_login(other_user)
    pk = alices_request.pk
    listed = client.get("/o/ciba/device/requests/")
    assert listed.status_code == 200 and "Alice 1234" not in listed.content.decode()
    assert client.get(f"/o/ciba/device/requests/{pk}/").status_code == 404
    assert client.post(f"/o/ciba/device/requests/{pk}/approve/").status_code == 404
    assert client.post(f"/o/ciba/device/requests/{pk}/deny/").status_code == 404
    alices_request.refresh_from_db()
    assert alices_request.status == Status.PENDING


@pytest.mark.django_db
def test_another_user_cannot_decide_via_the_python_api(other_user, alices_request):
    assert list(decisions.requests_for_user(other_user)) == []
    with pytest.raises(RequestNotFound):
        decisions.get_for_user(other_user, alices_request.pk)
    with pytest.raises(RequestNotFound):
        decisions.approve(alices_request, user=other_user)
    with pytest.raises(RequestNotFound):
        decisions.deny(alices_request, user=other_user)
    with pytest.raises(RequestNotFound):
        decisions.report_abuse(alices_request, user=other_user)
    alices_request.refresh_from_db()
    assert alices_request.status == Status.PENDING and not AbuseReport.objects.exists()


# --------------------------------------------------------------------------------------------
# 5. CSRF and framing


@pytest.mark.django_db
@pytest.mark.parametrize("action", ["approve", "deny", "report"])
def test_approval_pages_resist_csrf(user, alices_request, action):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user)
    response = browser.post(f"/o/ciba/requests/{alices_request.pk}/", {"action": action})
    assert response.status_code == 403
    alices_request.refresh_from_db()
    assert alices_request.status == Status.PENDING and not AbuseReport.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("action", ["approve", "deny"])
def test_device_api_resists_csrf(user, alices_request, action):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user)
    response = browser.post(f"/o/ciba/device/requests/{alices_request.pk}/{action}/")
    assert response.status_code == 403
    alices_request.refresh_from_db()
    assert alices_request.status == Status.PENDING


@pytest.mark.django_db
@pytest.mark.parametrize("page", ["list", "detail", "result", "login-redirect"])
def test_approval_pages_cannot_be_framed(client, user, alices_request, page):
    decided = create_auth_request(alices_request.client, user, status=Status.DENIED)
    url = {
        "list": "/o/ciba/requests/",
        "detail": f"/o/ciba/requests/{alices_request.pk}/",
        "result": f"/o/ciba/requests/{decided.pk}/result/",
        "login-redirect": "/o/ciba/requests/",
    }[page]
    if page != "login-redirect":
        client.force_login(user)
    response = client.get(url)
    assert response.status_code == (302 if page == "login-redirect" else 200)
    assert response["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response["Content-Security-Policy"]
