"""POST /o/bc-authorize: the backchannel authentication endpoint (CIBA Core §7, §7.3, §13).

Every test names the requirement it covers (IDs from ciba-requirements.md): BC-* (request),
ACK-* (acknowledgement), AERR-* / VAL-* (errors), UC-* (user code), SEC-* (security).
"""

from __future__ import annotations

import hashlib
import time
from datetime import timedelta
from functools import partial
from urllib.parse import urlencode

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import timezone
from jwcrypto import jwk
from oauth2_provider.models import get_application_model

from django_ciba.core.constants import CIBA_GRANT_TYPE
from django_ciba.models import AuthenticationRequest, AuthMethod, CibaClient, DeliveryMode
from django_ciba.testing import FORM, basic_auth, bc_authorize, create_ciba_client
from tests.unit.auth_requests import ask
from tests.unit.protocol import AUTH_REQ_ID_RE, CIBA_ERRORS, DESCRIPTION_RE


pytestmark = pytest.mark.django_db

URL = "/o/bc-authorize"
ISSUER = "http://testserver/o"


# --- helpers


def verify_user_code(user, user_code, auth_request=None):
    """USER_CODE_VERIFIER used by the UC-* tests: each user's code is ``code-<username>``."""
    return user_code == f"code-{user.get_username()}"


VERIFIER_PATH = f"{__name__}.verify_user_code"


def assert_ack(response) -> dict:
    """ACK-01, ACK-04, ACK-05, ACK-06: 200 JSON with exactly auth_req_id/expires_in/interval, no-store."""
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/json"
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert set(body) == {"auth_req_id", "expires_in", "interval"}
    assert isinstance(body["expires_in"], int) and body["expires_in"] > 0
    assert isinstance(body["interval"], int) and body["interval"] > 0
    return body


def assert_error(response, error: str, status: int = 400, *, rows: int = 0) -> dict:
    """Section 8 error shape, and VAL-09: no auth_req_id was created (``rows`` stays as it was)."""
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert set(body) <= {"error", "error_description"}, body
    assert body["error"] == error, body
    if "error_description" in body:
        assert DESCRIPTION_RE.match(body["error_description"]), body["error_description"]
    assert "auth_req_id" not in body
    assert AuthenticationRequest.objects.count() == rows
    return body


def post_form(client, data: dict, **extra):
    return client.post(URL, data=urlencode(data), content_type=FORM, **extra)


def only_request() -> AuthenticationRequest:
    return AuthenticationRequest.objects.get()


def _rsa_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")


OTHER_RSA_PEM = _rsa_pem()
HINT_EC_KEY = ec.generate_private_key(ec.SECP256R1())
OTHER_EC_KEY = ec.generate_private_key(ec.SECP256R1())
HINT_RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
HINT_ISSUER = "https://hints.example"


def op_pem() -> str:
    return settings.OAUTH2_PROVIDER["OIDC_RSA_PRIVATE_KEY"]


def id_token(
    client_id: str, sub: str, *, pem: str | None = None, kid: bool = False, drop: tuple = (), **claims
) -> str:
    """An RS256 ID token as this OP issues it (signed with the OP key unless ``pem`` is given)."""
    now = int(time.time())
    payload = {"iss": ISSUER, "aud": client_id, "sub": sub, "iat": now, "exp": now + 300, **claims}
    payload = {key: value for key, value in payload.items() if key not in drop}
    pem = pem or op_pem()
    headers = {"kid": jwk.JWK.from_pem(pem.encode("ascii")).thumbprint()} if kid else None
    return jwt.encode(payload, pem, algorithm="RS256", headers=headers)


def public_jwk(private_key) -> dict:
    return jwk.JWK.from_pyca(private_key.public_key()).export_public(as_dict=True)


def hint_token(*, key=HINT_EC_KEY, alg: str = "ES256", exp_in: int = 300, **claims) -> str:
    payload = {"iss": HINT_ISSUER, "exp": int(time.time()) + exp_in, **claims}
    payload = {key_: value for key_, value in payload.items() if value is not None}
    return jwt.encode(payload, key, algorithm=alg)


# --- fixtures


@pytest.fixture
def app_secret(poll_client):
    return poll_client


@pytest.fixture
def app(app_secret):
    return app_secret[0]


@pytest.fixture
def secret(app_secret):
    return app_secret[1]


@pytest.fixture
def ok(client, user, app, secret):
    """POST a request that is valid except for the overrides (None removes a parameter)."""
    return partial(ask, client, app, secret)


@pytest.fixture
def hint_keys(ciba_settings):
    ciba_settings.set(LOGIN_HINT_TOKEN_KEYS=[public_jwk(HINT_EC_KEY)], LOGIN_HINT_TOKEN_ISSUERS=[HINT_ISSUER])


# --- success (ACK-*)


def test_success_acknowledgement_shape(ok):
    # ACK-01, ACK-04, ACK-05, ACK-06: 200, application/json, only the three members, no-store.
    body = assert_ack(ok())
    assert body["expires_in"] == 300
    assert body["interval"] == 5


def test_auth_req_id_charset_and_entropy(ok):
    # ACK-02 (charset [A-Za-z0-9_.-]) and ACK-03 (>= 128 bits: >= 22 base64url characters).
    body = assert_ack(ok())
    assert AUTH_REQ_ID_RE.match(body["auth_req_id"])
    assert len(body["auth_req_id"]) * 6 >= 128


def test_auth_req_id_entropy_floor_ignores_too_small_setting(ok, ciba_settings):
    # ACK-03: even a misconfigured AUTH_REQ_ID_BYTES below 16 gives at least 128 bits.
    ciba_settings.set(AUTH_REQ_ID_BYTES=4)
    body = assert_ack(ok())
    assert len(body["auth_req_id"]) >= 22


def test_auth_req_ids_are_unique(ok, ciba_settings):
    # ACK-02: auth_req_id is unique. (Ten pending requests for one user: the cap is lifted.)
    ciba_settings.set(MAX_PENDING_PER_USER=None)
    ids = {assert_ack(ok())["auth_req_id"] for _ in range(10)}
    assert len(ids) == 10
    assert AuthenticationRequest.objects.count() == 10


def test_only_the_sha256_hash_is_stored(ok):
    # SEC-02 / SEC-10: the plain auth_req_id is in no column, only its SHA-256 hex digest.
    auth_req_id = assert_ack(ok())["auth_req_id"]
    stored = only_request()
    assert stored.auth_req_id_hash == hashlib.sha256(auth_req_id.encode()).hexdigest()
    for field in AuthenticationRequest._meta.concrete_fields:
        assert auth_req_id not in str(field.value_from_object(stored)), field.name
    for value in AuthenticationRequest.objects.values_list().get():
        assert auth_req_id not in str(value)
    assert auth_req_id not in str(stored)
    assert auth_req_id not in repr(stored)
    assert AuthenticationRequest.objects.by_auth_req_id(auth_req_id).get() == stored


def test_request_details_are_stored(ok, app, user):
    # ACK-06: client, mode, scopes, user, acr, binding message and absolute expiry are kept.
    before = timezone.now()
    assert_ack(ok(scope="openid profile", acr_values="urn:acr:gold  urn:acr:silver", binding_message="1234"))
    stored = only_request()
    assert stored.client == app
    assert stored.user == user
    assert stored.delivery_mode == DeliveryMode.POLL
    assert stored.hint_type == "login_hint"
    assert stored.scopes == ["openid", "profile"]
    assert stored.acr_values == "urn:acr:gold urn:acr:silver"
    assert stored.binding_message == "1234"
    assert stored.status == AuthenticationRequest.Status.PENDING
    assert stored.interval == 5
    assert stored.client_notification_token_sealed == "" and stored.auth_req_id_sealed == ""
    assert before + timedelta(seconds=299) <= stored.expires_at <= timezone.now() + timedelta(seconds=301)


def test_interval_follows_setting(ok, ciba_settings):
    # ACK-05: interval is the configured minimum polling interval.
    ciba_settings.set(INTERVAL=9)
    assert assert_ack(ok())["interval"] == 9
    assert only_request().interval == 9


def test_default_expires_in_follows_setting(ok, ciba_settings):
    # ACK-04: expires_in defaults to DEFAULT_EXPIRES_IN.
    ciba_settings.set(DEFAULT_EXPIRES_IN=120)
    assert assert_ack(ok())["expires_in"] == 120


def test_requested_expiry_is_honoured(ok):
    # BC-11: requested_expiry "30" (the suite's string value) is used as expires_in.
    before = timezone.now()
    assert assert_ack(ok(requested_expiry="30"))["expires_in"] == 30
    stored = only_request()
    assert stored.requested_expiry == 30
    assert stored.expires_at <= before + timedelta(seconds=31)


def test_requested_expiry_300_is_not_rejected(ok):
    # BC-11: fapi-ciba-id1 client 2 sends requested_expiry=300.
    assert assert_ack(ok(requested_expiry="300"))["expires_in"] == 300


def test_requested_expiry_is_capped(ok, ciba_settings):
    # BC-11: larger requests are capped by MAX_EXPIRES_IN, not refused.
    assert assert_ack(ok(requested_expiry="86400"))["expires_in"] == 1800
    ciba_settings.set(MAX_EXPIRES_IN=60)
    assert assert_ack(ok(requested_expiry="120"))["expires_in"] == 60


def test_a_clients_own_longest_expiry_replaces_the_global_cap(ok, app, ciba_settings):
    # BC-11 for agents whose users answer hours later: max_requested_expiry caps this client only,
    # above MAX_EXPIRES_IN (and below it as well); other clients keep the global cap.
    ciba_settings.set(MAX_EXPIRES_IN=60)
    CibaClient.objects.filter(application=app).update(max_requested_expiry=6 * 3600)
    app.refresh_from_db()
    assert assert_ack(ok(requested_expiry="14400"))["expires_in"] == 14400
    assert assert_ack(ok(requested_expiry="86400"))["expires_in"] == 6 * 3600
    CibaClient.objects.filter(application=app).update(max_requested_expiry=30)
    app.refresh_from_db()
    assert assert_ack(ok(requested_expiry="45"))["expires_in"] == 30
    CibaClient.objects.filter(application=app).update(max_requested_expiry=None)
    app.refresh_from_db()
    assert assert_ack(ok(requested_expiry="120"))["expires_in"] == 60


def test_a_clients_longest_expiry_is_at_most_seven_days(app):
    from django.core.exceptions import ValidationError

    ciba = CibaClient.objects.get(application=app)
    ciba.max_requested_expiry = 7 * 24 * 3600 + 1
    with pytest.raises(ValidationError) as raised:
        ciba.full_clean(exclude=["application"])
    assert "max_requested_expiry" in raised.value.message_dict


def test_empty_requested_expiry_counts_as_omitted(ok):
    # BC-11 / RFC 6749 §3.1: a parameter without a value is treated as omitted.
    assert assert_ack(ok(requested_expiry=""))["expires_in"] == 300


def test_push_client_gets_no_interval(client, user):
    # ACK-05: interval is only for poll and ping clients.
    app, secret = create_ciba_client(mode="push", notification_endpoint="https://client.example/cb")
    response = bc_authorize(
        client, app, secret, scope="openid", login_hint="alice", client_notification_token="tok-123"
    )
    assert response.status_code == 200, response.content
    assert set(response.json()) == {"auth_req_id", "expires_in"}


def test_ping_client_gets_interval(client, user):
    # ACK-05: ping clients get an interval.
    app, secret = create_ciba_client(mode="ping", notification_endpoint="https://client.example/cb")
    response = bc_authorize(
        client, app, secret, scope="openid", login_hint="alice", client_notification_token="tok-123"
    )
    assert_ack(response)


# --- client authentication
ALICE = {"scope": "openid", "login_hint": "alice"}

# Each row builds (form, Authorization header or None) from the default client_secret_basic client.
BAD_CLIENT_AUTHENTICATION = [
    # BC-03 / AERR-09: wrong secret -> 401 invalid_client with WWW-Authenticate.
    pytest.param(
        lambda app, secret: (ALICE, basic_auth(app.client_id, "wrong")), id="BC-03-AERR-09-wrong-secret"
    ),
    # AERR-09: unknown client_id.
    pytest.param(
        lambda app, secret: (ALICE, basic_auth("no-such-client", "secret")), id="AERR-09-unknown-client"
    ),
    # AERR-09: no authentication at all.
    pytest.param(lambda app, secret: (ALICE, None), id="AERR-09-no-client-authentication"),
    # AERR-09: only a client_id in the body is no authentication.
    pytest.param(
        lambda app, secret: ({"client_id": app.client_id, **ALICE}, None),
        id="AERR-09-client-id-without-secret",
    ),
    # BC-03 / REG-07: a client registered for client_secret_basic cannot use client_secret_post.
    pytest.param(
        lambda app, secret: ({"client_id": app.client_id, "client_secret": secret, **ALICE}, None),
        id="BC-03-REG-07-basic-client-using-post",
    ),
    # VAL-01: a bad client gets invalid_client even when the request is also invalid.
    pytest.param(
        lambda app, secret: ({"login_hint": "nobody"}, None), id="VAL-01-client-authentication-comes-first"
    ),
]


@pytest.mark.parametrize("attempt", BAD_CLIENT_AUTHENTICATION)
def test_bad_client_authentication_is_401_invalid_client(client, user, app, secret, attempt):
    form, authorization = attempt(app, secret)
    headers = {"HTTP_AUTHORIZATION": authorization} if authorization else {}
    response = post_form(client, form, **headers)
    assert_error(response, "invalid_client", 401)
    assert response["WWW-Authenticate"].startswith("Basic")


def test_client_secret_basic(ok):
    # BC-03: client_secret_basic, the registered method of the default client.
    assert_ack(ok())


def test_client_secret_post(client, user):
    # BC-03: client_secret_post for a client registered for it.
    app, secret = create_ciba_client(auth_method=AuthMethod.CLIENT_SECRET_POST)
    params = {"client_id": app.client_id, "client_secret": secret, "scope": "openid", "login_hint": "alice"}
    assert_ack(post_form(client, params))
    assert only_request().client == app


def test_public_client_refused(client, user):
    # BC-03: public clients are refused (401 invalid_client), even with a correct secret.
    Application = get_application_model()
    app = Application.objects.create(
        name="public",
        client_type=Application.CLIENT_PUBLIC,
        authorization_grant_type=Application.GRANT_CLIENT_CREDENTIALS,
        client_secret="public-secret",
    )
    CibaClient.objects.create(application=app)
    response = bc_authorize(client, app, "public-secret", scope="openid", login_hint="alice")
    assert_error(response, "invalid_client", 401)


def test_post_client_using_basic_refused(client, user):
    # BC-03 / REG-07: a client registered for client_secret_post cannot use client_secret_basic.
    app, secret = create_ciba_client(auth_method=AuthMethod.CLIENT_SECRET_POST)
    response = bc_authorize(client, app, secret, scope="openid", login_hint="alice")
    assert_error(response, "invalid_client", 401)


@pytest.mark.parametrize("method", [AuthMethod.CLIENT_SECRET_BASIC, AuthMethod.CLIENT_SECRET_POST, ""])
def test_two_methods_at_once_refused(client, user, method):
    # BC-03 / RFC 6749 §2.3: only one authentication method per request.
    app, secret = create_ciba_client(auth_method=method)
    params = {"client_id": app.client_id, "client_secret": secret, "scope": "openid", "login_hint": "alice"}
    response = post_form(client, params, HTTP_AUTHORIZATION=basic_auth(app.client_id, secret))
    assert_error(response, "invalid_client", 401)


def test_unrestricted_auth_method_accepts_basic_and_post(client, user):
    # REG-07: an empty token_endpoint_auth_method accepts any method DOT supports.
    app, secret = create_ciba_client(auth_method="")
    assert_ack(bc_authorize(client, app, secret, scope="openid", login_hint="alice"))
    params = {"client_id": app.client_id, "client_secret": secret, "scope": "openid", "login_hint": "alice"}
    assert_ack(post_form(client, params))


def test_credentials_in_query_string_refused(client, user):
    # BC-02 / RFC 6749 §2.3.1: client credentials must not be taken from the request URI.
    app, secret = create_ciba_client(auth_method=AuthMethod.CLIENT_SECRET_POST)
    query = urlencode({"client_id": app.client_id, "client_secret": secret})
    response = client.post(
        f"{URL}?{query}", data=urlencode({"scope": "openid", "login_hint": "alice"}), content_type=FORM
    )
    assert_error(response, "invalid_client", 401)


def test_query_string_parameters_are_not_request_parameters(client, user, app, secret):
    # BC-02: only the form body carries parameters (scope in the query does not count).
    response = client.post(
        f"{URL}?scope=openid",
        data=urlencode({"login_hint": "alice"}),
        content_type=FORM,
        HTTP_AUTHORIZATION=basic_auth(app.client_id, secret),
    )
    assert_error(response, "invalid_request")


def test_application_without_ciba_registration(client, user):
    # AERR-05 / VAL-07: an authenticated client without a CibaClient is unauthorized_client.
    Application = get_application_model()
    app = Application.objects.create(
        name="plain",
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_CLIENT_CREDENTIALS,
        client_secret="plain-secret",
    )
    response = bc_authorize(client, app, "plain-secret", scope="openid", login_hint="alice")
    assert_error(response, "unauthorized_client", 400)


def test_disabled_ciba_registration(client, user, app, secret):
    # AERR-05: a CibaClient with enabled=False is unauthorized_client.
    CibaClient.objects.filter(application=app).update(enabled=False)
    response = bc_authorize(client, app, secret, scope="openid", login_hint="alice")
    assert_error(response, "unauthorized_client", 400)


def test_a_delivery_mode_no_longer_offered_is_unauthorized_client(client, user, ciba_settings):
    # DISC-02 / REG-01: CIBA["DELIVERY_MODES"] binds existing clients too, not only discovery and
    # registration: a push client is refused once push is taken out, and no request is created.
    application, secret = create_ciba_client(
        "push client", mode="push", notification_endpoint="https://client.example/cb"
    )
    ciba_settings.set(DELIVERY_MODES=["poll", "ping"])
    response = bc_authorize(
        client, application, secret, scope="openid", login_hint="alice", client_notification_token="t" * 20
    )
    assert_error(response, "unauthorized_client", 400)
    assert not AuthenticationRequest.objects.exists()


def test_disabled_client_with_wrong_secret_is_invalid_client(client, user, app):
    # VAL-01 before VAL-07: authentication failure wins over the CIBA registration check.
    CibaClient.objects.filter(application=app).update(enabled=False)
    response = bc_authorize(client, app, "wrong", scope="openid", login_hint="alice")
    assert_error(response, "invalid_client", 401)


# --- refused parameters: each row is one parameter the OP refuses (the rest of the request is valid)


def _expiry(value):
    return pytest.param(
        {"requested_expiry": value}, "invalid_request", id=f"BC-11-AERR-01-requested_expiry={value}"
    )


def _scope(value, error, id_):
    return pytest.param({"scope": value}, error, id=id_)


REFUSED_PARAMETERS = [
    # BC-11 / AERR-01: requested_expiry that is not a positive integer -> invalid_request.
    *(_expiry(value) for value in ["0", "-5", "abc", "1.5", "1e3", "+30", "30s", "0x10", "٣٠"]),
    # BC-05 / AERR-01: scope is required, and must contain openid.
    _scope(None, "invalid_request", "BC-05-AERR-01-scope-missing"),
    _scope("profile email", "invalid_request", "BC-05-scope-without-openid"),
    # AERR-02: an unknown scope, or one that is not RFC 6749 §3.3 scope-tokens -> invalid_scope.
    _scope("openid admin", "invalid_scope", "AERR-02-unknown-scope"),
    *(
        _scope(value, "invalid_scope", f"AERR-02-malformed-scope-{label}")
        for label, value in [
            ("quoted", 'openid "quoted"'),
            ("two-spaces", "openid  profile"),
            ("backslash", "openid\\profile"),
            ("non-ascii", "openid é"),
        ]
    ),
    # BC-07: no hint -> invalid_request.
    pytest.param({"login_hint": None}, "invalid_request", id="BC-07-no-hint"),
    # AERR-04: unknown login_hint -> unknown_user_id.
    pytest.param({"login_hint": "mallory"}, "unknown_user_id", id="AERR-04-unknown-user"),
    # VAL-04: usernames match exactly; "ALICE" is neither a username nor an e-mail.
    pytest.param({"login_hint": "ALICE"}, "unknown_user_id", id="VAL-04-username-is-case-sensitive"),
    # AERR-08 / SEC-09: characters a device cannot show -> invalid_binding_message.
    *(
        pytest.param(
            {"binding_message": message}, "invalid_binding_message", id=f"AERR-08-SEC-09-binding-{label}"
        )
        for label, message in [
            ("line-break", "line\nbreak"),
            ("bell", "bell\x07"),
            ("tab", "tab\there"),
            ("escape", "esc\x1b[31m"),
            ("line-separator", "sep\u2028x"),
            ("delete", "\x7f"),
        ]
    ),
    # AERR-08: a message of only spaces shows nothing.
    pytest.param({"binding_message": "   "}, "invalid_binding_message", id="AERR-08-binding-blank"),
    # SR-08: this client registered no keys, so a request object cannot be accepted; request_uri
    # is never supported (see test_request_object.py for signed requests).
    *(
        pytest.param(
            {name: "eyJhbGciOiJQUzI1NiJ9.e30.sig"}, "invalid_request", id=f"SR-08-{name}-without-keys"
        )
        for name in ["request", "request_uri"]
    ),
    # AERR-01: acr_values that cannot be stored -> invalid_request.
    pytest.param({"acr_values": "a" * 256}, "invalid_request", id="AERR-01-acr-values-too-long"),
]


@pytest.mark.parametrize("overrides, error", REFUSED_PARAMETERS)
def test_refused_parameter(ok, overrides, error):
    assert_error(ok(**overrides), error)


# --- scope (BC-05)


def test_scope_not_allowed_for_client(client, user):
    # AERR-02: a scope outside the client's allowed scopes -> invalid_scope.
    app, secret = create_ciba_client(scope="openid profile")
    response = bc_authorize(client, app, secret, scope="openid payments", login_hint="alice")
    assert_error(response, "invalid_scope")
    assert_ack(bc_authorize(client, app, secret, scope="openid profile", login_hint="alice"))


def test_reversed_scope_order(ok):
    # BC-05: scopes in any order (ensure-other-scope-order-succeeds).
    assert_ack(ok(scope="email profile openid"))
    assert set(only_request().scopes) == {"openid", "profile", "email"}


def test_duplicate_scopes_collapse(ok):
    # BC-05: a repeated scope token is stored once.
    assert_ack(ok(scope="openid profile openid"))
    assert only_request().scopes == ["openid", "profile"]


# --- hints (BC-07, VAL-04)


def test_two_hints(ok, hint_keys, user):
    # BC-07: login_hint + login_hint_token (ensure-authorization-request-with-multiple-hints-fails).
    assert_error(ok(login_hint_token=hint_token(sub=str(user.pk))), "invalid_request")


def test_three_hints(ok, app, user):
    # BC-07: all three hints -> invalid_request.
    response = ok(login_hint_token="x.y.z", id_token_hint=id_token(app.client_id, str(user.pk)))
    assert_error(response, "invalid_request")


def test_inactive_user(ok, user):
    # AERR-04: an inactive user is not resolved.
    user.is_active = False
    user.save()
    assert_error(ok(), "unknown_user_id")


def test_login_hint_by_username(ok, user):
    # VAL-04: login_hint names the user by username.
    assert_ack(ok(login_hint="alice"))
    assert only_request().user == user


def test_login_hint_by_email_case_insensitive(ok, user):
    # VAL-04: login_hint names the user by e-mail address, case-insensitively.
    assert_ack(ok(login_hint="ALICE@Example.COM"))
    assert only_request().user == user


def test_ambiguous_email_is_unknown(ok, user):
    # AERR-04: an e-mail shared by two users does not identify one user.
    get_user_model().objects.create_user("alice2", "Alice@example.com", "pw")
    assert_error(ok(login_hint="alice@example.com"), "unknown_user_id")


# id_token_hint (BC-12, SEC-04)


@pytest.mark.parametrize("kid", [False, True])
def test_id_token_hint_valid(ok, app, user, kid):
    # BC-12 / SEC-04: an RS256 ID token from this OP, aud = client, resolves the user (kid optional).
    response = ok(login_hint=None, id_token_hint=id_token(app.client_id, str(user.pk), kid=kid))
    assert_ack(response)
    stored = only_request()
    assert stored.user == user
    assert stored.hint_type == "id_token_hint"


def test_id_token_hint_aud_list(ok, app, user):
    # SEC-04: the presenting client only has to be in aud.
    token = id_token(app.client_id, str(user.pk), aud=["other-client", app.client_id])
    assert_ack(ok(login_hint=None, id_token_hint=token))


def test_id_token_hint_expired_is_accepted(ok, app, user):
    # SEC-04: the OP may accept expired ID tokens as hints.
    token = id_token(app.client_id, str(user.pk), iat=int(time.time()) - 7200, exp=int(time.time()) - 3600)
    assert_ack(ok(login_hint=None, id_token_hint=token))


def test_id_token_hint_wrong_aud(ok, app, user):
    # SEC-04: an ID token issued to another client -> invalid_request.
    assert_error(ok(login_hint=None, id_token_hint=id_token("other-client", str(user.pk))), "invalid_request")


def test_id_token_hint_wrong_iss(ok, app, user):
    # SEC-04: an ID token from another issuer -> invalid_request.
    token = id_token(app.client_id, str(user.pk), iss="https://evil.example")
    assert_error(ok(login_hint=None, id_token_hint=token), "invalid_request")


def test_id_token_hint_bad_signature(ok, app, user):
    # SEC-04: signed by a key the OP does not have -> invalid_request.
    token = id_token(app.client_id, str(user.pk), pem=OTHER_RSA_PEM)
    assert_error(ok(login_hint=None, id_token_hint=token), "invalid_request")


def test_id_token_hint_tampered_payload(ok, app, user):
    # SEC-04: a payload changed after signing -> invalid_request.
    other = get_user_model().objects.create_user("bob", "bob@example.com", "pw")
    header, _, signature = id_token(app.client_id, str(user.pk)).split(".")
    forged_payload = id_token(app.client_id, str(other.pk)).split(".")[1]
    assert_error(
        ok(login_hint=None, id_token_hint=f"{header}.{forged_payload}.{signature}"), "invalid_request"
    )


@pytest.mark.parametrize("alg", ["none", "HS256"])
def test_id_token_hint_unsigned_or_symmetric(ok, app, user, alg):
    # SEC-04: alg none, or HS256 keyed with the public key (alg confusion) -> invalid_request.
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": app.client_id, "sub": str(user.pk), "iat": now, "exp": now + 300}
    key = None if alg == "none" else "not-the-op-key-but-long-enough-for-hs256"
    assert_error(ok(login_hint=None, id_token_hint=jwt.encode(claims, key, algorithm=alg)), "invalid_request")


@pytest.mark.parametrize("missing", ["iss", "aud", "sub"])
def test_id_token_hint_missing_claim(ok, app, user, missing):
    # SEC-04: iss, aud and sub are required.
    token = id_token(app.client_id, str(user.pk), drop=(missing,))
    assert_error(ok(login_hint=None, id_token_hint=token), "invalid_request")


def test_id_token_hint_garbage(ok):
    # BC-12: not a JWT -> invalid_request.
    assert_error(ok(login_hint=None, id_token_hint="not-a-jwt"), "invalid_request")


def test_id_token_hint_signed_by_inactive_key(ok, app, user, settings):
    # SEC-04: keys rotated out (OIDC_RSA_PRIVATE_KEYS_INACTIVE) still verify hints.
    token = id_token(app.client_id, str(user.pk), pem=OTHER_RSA_PEM, kid=True)
    assert_error(ok(login_hint=None, id_token_hint=token), "invalid_request")
    settings.OAUTH2_PROVIDER = {**settings.OAUTH2_PROVIDER, "OIDC_RSA_PRIVATE_KEYS_INACTIVE": [OTHER_RSA_PEM]}
    assert_ack(ok(login_hint=None, id_token_hint=token))
    assert only_request().user == user


def test_id_token_hint_unknown_subject(ok, app, user):
    # AERR-04 / BC-12: a valid ID token naming no (active) user -> unknown_user_id.
    assert_error(ok(login_hint=None, id_token_hint=id_token(app.client_id, "999999")), "unknown_user_id")


def test_id_token_hint_inactive_user(ok, app, user):
    # AERR-04: the ID token's user has been deactivated.
    user.is_active = False
    user.save()
    assert_error(ok(login_hint=None, id_token_hint=id_token(app.client_id, str(user.pk))), "unknown_user_id")


# login_hint_token (BC-13, SEC-03)


def test_login_hint_token_valid(ok, hint_keys, user):
    # BC-13 / SEC-03: a login_hint_token signed by a configured key resolves the user.
    assert_ack(ok(login_hint=None, login_hint_token=hint_token(sub=str(user.pk))))
    stored = only_request()
    assert stored.user == user
    assert stored.hint_type == "login_hint_token"


def test_login_hint_token_by_email(ok, hint_keys, user):
    # BC-13: the token may name the user by e-mail.
    assert_ack(ok(login_hint=None, login_hint_token=hint_token(email="Alice@Example.com")))
    assert only_request().user == user


def test_login_hint_token_expired(ok, hint_keys, user):
    # AERR-03: an expired login_hint_token -> expired_login_hint_token.
    token = hint_token(sub=str(user.pk), exp_in=-3600)
    assert_error(ok(login_hint=None, login_hint_token=token), "expired_login_hint_token")


def test_login_hint_token_expired_within_leeway_is_accepted(ok, hint_keys, user):
    # AERR-03: JWT_LEEWAY tolerates a few seconds of clock skew.
    assert_ack(ok(login_hint=None, login_hint_token=hint_token(sub=str(user.pk), exp_in=-5)))


def test_login_hint_token_bad_signature(ok, hint_keys, user):
    # SEC-03: signed by an unknown key -> invalid_request.
    token = hint_token(key=OTHER_EC_KEY, sub=str(user.pk))
    assert_error(ok(login_hint=None, login_hint_token=token), "invalid_request")


def test_expired_login_hint_token_with_bad_signature_is_invalid_request(ok, hint_keys, user):
    # SEC-03 / AERR-03: expiry is only reported once the signature has been verified.
    token = hint_token(key=OTHER_EC_KEY, sub=str(user.pk), exp_in=-3600)
    assert_error(ok(login_hint=None, login_hint_token=token), "invalid_request")


def test_login_hint_token_untrusted_issuer(ok, hint_keys, user):
    # SEC-03: an issuer outside LOGIN_HINT_TOKEN_ISSUERS -> invalid_request.
    token = hint_token(sub=str(user.pk), iss="https://other-issuer.example")
    assert_error(ok(login_hint=None, login_hint_token=token), "invalid_request")


def test_login_hint_token_without_exp(ok, hint_keys, user):
    # BC-13: exp is required.
    token = jwt.encode({"iss": HINT_ISSUER, "sub": str(user.pk)}, HINT_EC_KEY, algorithm="ES256")
    assert_error(ok(login_hint=None, login_hint_token=token), "invalid_request")


def test_login_hint_token_not_configured(ok, user):
    # BC-13: without LOGIN_HINT_TOKEN_KEYS the OP does not accept login_hint_token.
    assert_error(ok(login_hint=None, login_hint_token=hint_token(sub=str(user.pk))), "invalid_request")


def test_login_hint_token_unknown_user(ok, hint_keys):
    # AERR-04: a valid token naming nobody -> unknown_user_id.
    assert_error(ok(login_hint=None, login_hint_token=hint_token(sub="424242")), "unknown_user_id")


def test_login_hint_token_algorithm_of_other_key_type(ok, hint_keys, user):
    # SEC-03: an RS256 token when only an EC key is configured is invalid_request, never a 500.
    token = hint_token(key=HINT_RSA_KEY, alg="RS256", sub=str(user.pk))
    assert_error(ok(login_hint=None, login_hint_token=token), "invalid_request")


def test_login_hint_token_mixed_key_types(ok, ciba_settings, user):
    # SEC-03: with EC and RSA keys configured, an RS256 token signed by the RSA key verifies.
    ciba_settings.set(LOGIN_HINT_TOKEN_KEYS=[public_jwk(HINT_EC_KEY), public_jwk(HINT_RSA_KEY)])
    token = hint_token(key=HINT_RSA_KEY, alg="RS256", sub=str(user.pk))
    assert_ack(ok(login_hint=None, login_hint_token=token))


# --- binding_message (BC-09)


def test_binding_message_1234(ok):
    # BC-09: ensure-authorization-request-with-binding-message-succeeds.
    assert_ack(ok(binding_message="1234"))
    assert only_request().binding_message == "1234"


def test_binding_message_unicode_emoji_cjk(ok):
    # BC-09: emoji, CJK and accents are accepted by default within the length limit, kept verbatim.
    message = "Zahlung an Müller – 42,00 € 😀👍🏽 支付确认 ありがとう"
    assert_ack(ok(binding_message=message))
    assert only_request().binding_message == message


def test_binding_message_length_limit(ok, ciba_settings):
    # BC-09 / AERR-08: exactly BINDING_MESSAGE_MAX_LENGTH characters is fine, one more is not.
    assert_ack(ok(binding_message="😀" * 128))
    assert_error(ok(binding_message="a" * 129), "invalid_binding_message", rows=1)
    ciba_settings.set(BINDING_MESSAGE_MAX_LENGTH=4)
    assert_ack(ok(binding_message="abcd"))
    assert_error(ok(binding_message="abcde"), "invalid_binding_message", rows=2)


def test_binding_message_pattern(ok, ciba_settings):
    # BC-09: BINDING_MESSAGE_PATTERN must match the whole message.
    ciba_settings.set(BINDING_MESSAGE_PATTERN=r"[A-Z0-9]{4,8}")
    assert_ack(ok(binding_message="AB12"))
    assert_error(ok(binding_message="ab12"), "invalid_binding_message", rows=1)
    assert_error(ok(binding_message="AB12 extra"), "invalid_binding_message", rows=1)
    assert_error(ok(binding_message="支付确认"), "invalid_binding_message", rows=1)


def test_binding_message_required(ok, ciba_settings):
    # BC-09 / AERR-01: when required, a missing binding_message is invalid_request.
    ciba_settings.set(BINDING_MESSAGE_REQUIRED=True)
    assert_error(ok(), "invalid_request")
    assert_ack(ok(binding_message="1234"))


def test_binding_message_optional_by_default(ok):
    # BC-09: binding_message is optional.
    assert_ack(ok())
    assert only_request().binding_message == ""


# --- user_code (UC-*)


@pytest.fixture
def user_code_client(ciba_settings):
    ciba_settings.set(USER_CODE_SUPPORTED=True, USER_CODE_VERIFIER=VERIFIER_PATH)
    return create_ciba_client("user-code client", user_code_parameter=True)


def test_user_code_missing(client, user, user_code_client):
    # UC-02 / AERR-06: required and missing -> missing_user_code.
    assert_error(ask(client, *user_code_client), "missing_user_code")


def test_user_code_wrong(client, user, user_code_client):
    # UC-03 / AERR-07: wrong code -> invalid_user_code.
    assert_error(ask(client, *user_code_client, user_code="code-bob"), "invalid_user_code")


def test_user_code_right(client, user, user_code_client):
    # UC-02: the right code for the resolved user -> 200.
    assert_ack(ask(client, *user_code_client, user_code="code-alice"))


def test_user_code_checked_for_the_resolved_user(client, user, user_code_client):
    # UC-03: the verifier sees the user named by the hint, not any user.
    get_user_model().objects.create_user("bob", "bob@example.com", "pw")
    response = ask(client, *user_code_client, user_code="code-alice", login_hint="bob")
    assert_error(response, "invalid_user_code")


def test_user_code_not_required_for_other_clients(client, user, user_code_client, app, secret):
    # UC-04 / REG-05: a client not registered for user codes needs none; a code it sends is ignored.
    assert_ack(bc_authorize(client, app, secret, scope="openid", login_hint="alice"))
    assert_ack(bc_authorize(client, app, secret, scope="openid", login_hint="alice", user_code="wrong"))


def test_user_code_not_required_when_op_does_not_support_it(client, user, ciba_settings):
    # UC-01 / REG-05: the client flag only matters when the OP supports user codes.
    pair = create_ciba_client("user-code client", user_code_parameter=True)
    assert_ack(ask(client, *pair))


def test_user_code_unknown_user_reported_first(client, user_code_client):
    # VAL-04 before UC-02: an unknown user is unknown_user_id, whatever the code.
    assert_error(ask(client, *user_code_client, login_hint="nobody"), "unknown_user_id")


# --- client_notification_token (BC-06)


@pytest.fixture
def ping_client():
    return create_ciba_client("ping client", mode="ping", notification_endpoint="https://client.example/cb")


REFUSED_NOTIFICATION_TOKENS = [
    # BC-06 / VAL-05: required for ping clients.
    pytest.param(None, id="BC-06-VAL-05-missing"),
    # BC-06: more than 1024 characters.
    pytest.param("a" * 1025, id="BC-06-1025-characters"),
    # BC-06: RFC 6750 §2.1 b64token syntax.
    *(
        pytest.param(token, id=f"BC-06-syntax-{label}")
        for label, token in [
            ("space", "has space"),
            ("asterisk", "tok*en"),
            ("leading-equals", "=abc"),
            ("inner-equals", "abc=def"),
            ("non-ascii", "ünïcode"),
            ("quote", 'q"uote'),
        ]
    ),
]


@pytest.mark.parametrize("token", REFUSED_NOTIFICATION_TOKENS)
def test_refused_notification_token_is_invalid_request(client, user, ping_client, token):
    assert_error(ask(client, *ping_client, client_notification_token=token), "invalid_request")


def test_notification_token_1024_accepted_and_stored(client, user, ping_client):
    # BC-06: tokens up to 1024 characters are accepted and kept with the auth_req_id.
    token = ("A1b2-._~+/" * 103)[:1024]
    assert len(token) == 1024
    assert_ack(ask(client, *ping_client, client_notification_token=token))
    stored = only_request()
    assert stored.get_client_notification_token() == token
    assert token not in stored.client_notification_token_sealed  # SEC-10: stored sealed
    assert stored.delivery_mode == DeliveryMode.PING


def test_notification_token_padding_allowed(client, user, ping_client):
    # BC-06: b64token may end in '=' padding.
    assert_ack(ask(client, *ping_client, client_notification_token="abc=="))


def test_notification_token_ignored_for_poll_client(ok):
    # BC-06 / BC-14: poll clients have no use for it; it is neither validated nor stored.
    assert_ack(ok(client_notification_token="not a b64token"))
    assert only_request().get_client_notification_token() == ""


# --- other parameters


def test_unrecognised_parameters_ignored(ok):
    # BC-14 / VAL-06: unknown and extension parameters are ignored.
    response = ok(
        authorization_details='[{"type": "payment_initiation"}]',
        request_context='{"ip": "198.51.100.7"}',
        foo="bar",
        Scope="not-the-scope",
    )
    assert_ack(response)
    assert only_request().scopes == ["openid"]


def test_acr_values_stored(ok):
    # BC-08 / ACK-06: acr_values is kept, normalised to single spaces, in order.
    assert_ack(ok(acr_values="urn:mace:incommon:iap:silver  urn:acr:2fa"))
    assert only_request().acr_values == "urn:mace:incommon:iap:silver urn:acr:2fa"


# --- error response (section 8, VAL-09)


def _failures(app, user):
    """(parameters, expected error) pairs, one for each kind of refusal after client authentication."""
    return [
        ({"login_hint": "alice"}, "invalid_request"),
        ({"scope": "openid"}, "invalid_request"),
        ({"scope": "openid admin", "login_hint": "alice"}, "invalid_scope"),
        ({"scope": "openid", "login_hint": "nobody"}, "unknown_user_id"),
        ({"scope": "openid", "login_hint": "alice", "binding_message": "x\x01"}, "invalid_binding_message"),
        ({"scope": "openid", "login_hint": "alice", "requested_expiry": "-1"}, "invalid_request"),
        ({"scope": "openid", "login_hint": "alice", "request": "x"}, "invalid_request"),
        ({"scope": "openid", "id_token_hint": id_token("other", str(user.pk))}, "invalid_request"),
        ({"scope": "openid", "login_hint_token": "a.b.c"}, "invalid_request"),
        ({"scope": "openid", "login_hint": "alice", "id_token_hint": "x"}, "invalid_request"),
    ]


def test_error_bodies_have_only_error_and_safe_description(client, user, app, secret):
    # Section 8 / VAL-09: {error[, error_description]} with RFC 6749 characters; no row created.
    for params, error in _failures(app, user):
        body = assert_error(bc_authorize(client, app, secret, **params), error)
        assert body["error"] in CIBA_ERRORS


def test_error_description_strips_unsafe_characters_from_echoed_names(client, user, app, secret):
    # Section 8: a parameter name with '"', '\\' and non-ASCII is echoed without those characters.
    body = f'{urlencode({"scope": "openid", "login_hint": "alice"})}&na"m\\é=1&na"m\\é=2'.encode()
    response = client.generic(
        "POST", URL, body, content_type=FORM, HTTP_AUTHORIZATION=basic_auth(app.client_id, secret)
    )
    body = assert_error(response, "invalid_request")
    assert "error_description" in body
    assert "nam" in body["error_description"]


def test_no_row_after_failures_then_one_after_success(client, user, app, secret):
    # VAL-09: failures create nothing; the first success creates exactly one request.
    for params, _error in _failures(app, user):
        assert bc_authorize(client, app, secret, **params).status_code == 400
    assert AuthenticationRequest.objects.count() == 0
    assert_ack(bc_authorize(client, app, secret, scope="openid", login_hint="alice"))
    assert AuthenticationRequest.objects.count() == 1


# BC-03 / TOK-02: Basic credentials of one client with the client_id of another are refused.
def test_basic_auth_with_other_client_id_in_body_refused(client, user, poll_client):
    app, secret = poll_client
    other, _ = create_ciba_client("Other")
    response = client.post(
        URL,
        data=urlencode({"scope": "openid", "login_hint": "alice", "client_id": other.client_id}),
        content_type=FORM,
        HTTP_AUTHORIZATION=basic_auth(app.client_id, secret),
    )
    assert_error(response, "invalid_client", 401)
    token = client.post(
        "/o/token/",
        data=urlencode(
            {"grant_type": CIBA_GRANT_TYPE, "auth_req_id": "x" * 43, "client_id": other.client_id}
        ),
        content_type=FORM,
        HTTP_AUTHORIZATION=basic_auth(app.client_id, secret),
    )
    assert token.status_code == 401 and token.json()["error"] == "invalid_client"
