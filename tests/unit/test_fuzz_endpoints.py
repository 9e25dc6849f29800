"""Hostile input at every endpoint: never a 5xx, always the spec's error JSON.

Property-based (hypothesis) tests over the token endpoint, bc-authorize's signed inputs (request
objects and client assertions), dynamic registration (RFC 7591) and its management (RFC 7592), the
device API and the approval pages: random parameters, duplicated parameters, huge values, wrong
content types (form bodies declared in other charsets than UTF-8 included), broken encodings and
broken JWTs. Every test runs twice, with ``DEBUG`` off and on: with ``DEBUG`` on, Django's error
page reads the request again, which once turned some 400s into 500s.

The number of examples per test comes from ``CIBA_FUZZ_EXAMPLES`` (default 100, the CI run); the
long run is::

    CIBA_FUZZ_EXAMPLES=10000 .venv/bin/pytest tests/unit/test_fuzz_endpoints.py \\
        tests/unit/test_bc_malformed.py -q -p no:cacheprovider
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import time
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from django.conf import settings
from django.test import override_settings
from hypothesis import HealthCheck, event, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from django_ciba.core.constants import CIBA_GRANT_TYPE
from django_ciba.models import AuthenticationRequest, AuthMethod
from django_ciba.testing import (
    CLIENT_ASSERTION_TYPE,
    FORM,
    basic_auth,
    client_assertion,
    create_auth_request,
    create_ciba_client,
    make_client_key,
    start_request,
)
from tests.unit.abuse_controls import LIMITS_OFF


pytestmark = pytest.mark.django_db


def fuzz_examples() -> int:
    """Examples per fuzz test: ``CIBA_FUZZ_EXAMPLES`` (the long run sets 10000), else 100."""
    return int(os.environ.get("CIBA_FUZZ_EXAMPLES", "") or 100)


def fuzz_settings() -> Any:
    # Function-scoped fixtures (test client, database) are reused across examples on purpose; no
    # example database is written into the working tree.
    return hypothesis_settings(
        max_examples=fuzz_examples(),
        deadline=None,
        database=None,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
        ],
    )


FUZZ = fuzz_settings()

ISSUER = settings.OAUTH2_PROVIDER["OIDC_ISS_ENDPOINT"]
TOKEN_URL = "/o/token/"
BC_URL = "/o/bc-authorize"
REGISTER = "/o/register"
DEVICE = "/o/ciba/device/requests/"
PAGES = "/o/ciba/requests/"
JSON = "application/json"
KEY, JWK = make_client_key("PS256", kid="fuzz-key")
HUGE = settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1


@pytest.fixture(autouse=True, params=[False, True], ids=["DEBUG-off", "DEBUG-on"])
def debug(request):
    """Every fuzz test runs with DEBUG off and on (Django's debug pages read the request again)."""
    with override_settings(DEBUG=request.param):
        yield request.param


@pytest.fixture(autouse=True)
def _no_abuse_limits(ciba_settings):
    """All examples share one user and client: the abuse limits (test_abuse.py) would refuse most."""
    ciba_settings.set(
        **LIMITS_OFF,
        REGISTRATION_OPEN=True,
    )


@pytest.fixture
def http(client):
    # A server error must be a 500 response (a failure below), not an exception in the test client.
    client.raise_request_exception = False
    return client


def assert_no_5xx(response) -> None:
    event(f"HTTP {response.status_code}")  # --hypothesis-show-statistics shows the spread
    assert response.status_code < 500, (response.status_code, response.content[:500])


def assert_error_json(response, ok: tuple[int, ...] = ()) -> dict:
    """A 4xx with a JSON object carrying a string ``error`` (or one of the ``ok`` success codes)."""
    assert_no_5xx(response)
    if response.status_code in ok:
        return {}
    assert 400 <= response.status_code < 500, (response.status_code, response.content[:500])
    assert response["Content-Type"].startswith("application/json"), (
        response.status_code,
        response["Content-Type"],
        response.content[:300],
    )
    body = json.loads(response.content)
    assert isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"], body
    if "error_description" in body:
        assert isinstance(body["error_description"], str)
    return body


# --------------------------------------------------------------------------------------------
# shared strategies

TEXT = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec="ascii"), max_size=40),
    st.text(alphabet=st.characters(codec="latin-1"), max_size=40),
)
JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(),  # NaN and Infinity as well: not JSON, refused by the parsers
    TEXT,
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
CONTENT_TYPES = st.sampled_from(
    [
        FORM,
        f"{FORM}; charset=UTF-8",
        f"{FORM}; charset=latin-1",
        f"{FORM}; charset=bogus",
        f"{FORM}; charset=utf-16",
        f"{FORM}; charset=utf-32",
        f"{FORM}; charset=utf8",
        f'{FORM}; charset="utf-8"',
        "multipart/form-data; boundary=xyz; charset=utf-16",
        "application/json; charset=utf-16",
        JSON,
        "application/json; charset=latin-1",
        "multipart/form-data",
        "multipart/form-data; boundary=xyz",
        "text/plain",
        "application/jwt",
        "application/octet-stream",
        "*/*",
        "",
        "x" * 300,
    ]
)
SIZES = st.sampled_from([0, 1, 1000, 70_000, HUGE])


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def encode_part(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    return json.dumps(value).encode()


JWT_HEADERS = st.one_of(
    st.fixed_dictionaries(
        {"alg": st.sampled_from(["none", "None", "HS256", "RS256", "PS256", "ES256", "EdDSA", "", "x" * 50])},
        optional={
            "kid": st.one_of(st.just("fuzz-key"), TEXT, st.just("k" * 10_000), JSON_VALUES),
            "typ": st.one_of(st.sampled_from(["JWT", "oauth-authz-req+jwt"]), JSON_VALUES),
            "crit": JSON_VALUES,
            "jku": st.just("https://127.0.0.1/jwks"),
            "x5u": st.just("https://127.0.0.1/x5u"),
            "jwk": st.just(JWK),
            "b64": st.booleans(),
        },
    ),
    JSON_VALUES,
    st.binary(max_size=30),
)
TIMES = st.one_of(st.integers(min_value=-(2**70), max_value=2**70), st.just(2_000_000_000), JSON_VALUES)


def sign_raw(claims: Any, kid: Any = "fuzz-key") -> str:
    """A correct PS256 signature over any claims (PyJWT's ``encode`` refuses odd ones)."""
    import jwt

    if isinstance(claims, bytes):
        payload = claims
    else:
        payload = json.dumps(claims).encode()
    return jwt.api_jws.encode(payload, KEY, algorithm="PS256", headers={"kid": kid})


def jwt_payloads(client_id: str) -> Any:
    return st.one_of(
        st.fixed_dictionaries(
            {},
            optional={
                "iss": st.one_of(st.just(client_id), JSON_VALUES),
                "sub": st.one_of(st.just(client_id), JSON_VALUES),
                "aud": st.one_of(st.just(ISSUER), st.just([ISSUER, ISSUER]), JSON_VALUES),
                "exp": TIMES,
                "iat": TIMES,
                "nbf": TIMES,
                "jti": st.one_of(TEXT, JSON_VALUES),
                "scope": st.one_of(st.just("openid"), JSON_VALUES),
                "login_hint": st.one_of(st.just("alice"), JSON_VALUES),
                "requested_expiry": JSON_VALUES,
                "request": JSON_VALUES,
            },
        ),
        JSON_VALUES,
        st.binary(max_size=30),
    )


def jwt_shaped(client_id: str) -> Any:
    """Compact-JWS-looking strings: random header and payload JSON, random or empty signature."""
    signatures = st.one_of(st.just(b""), st.binary(max_size=300))
    three_parts = st.builds(
        lambda header, payload, signature: ".".join(
            [b64url(encode_part(header)), b64url(encode_part(payload)), b64url(signature)]
        ),
        JWT_HEADERS,
        jwt_payloads(client_id),
        signatures,
    )
    odd_shapes = st.one_of(
        st.lists(st.text(alphabet="ABCxyz019-_=+/.", max_size=20), min_size=1, max_size=6).map(".".join),
        TEXT,
    )
    return st.one_of(three_parts, odd_shapes)


# --------------------------------------------------------------------------------------------
# token endpoint (TOK-01, TOK-15)

GRANT_TYPES = [
    CIBA_GRANT_TYPE,
    "client_credentials",
    "authorization_code",
    "refresh_token",
    "password",
    "urn:ietf:params:oauth:grant-type:device_code",
    "urn:ietf:params:oauth:grant-type:jwt-bearer",
    "",
]
TOKEN_NAMES = [
    "grant_type",
    "auth_req_id",
    "client_id",
    "client_secret",
    "client_assertion",
    "client_assertion_type",
    "scope",
    "code",
    "redirect_uri",
    "refresh_token",
    "username",
    "password",
    "code_verifier",
]


@pytest.fixture
def token_ctx(http, user, poll_client):
    """A client with an approved request (a successful poll would mint tokens) and a signing client."""
    from django_ciba.approval import decisions

    app, secret = poll_client
    auth_req_id, auth_request = start_request(http, app, secret, scope="openid", login_hint="alice")
    decisions.approve(auth_request, user=user)
    signer, _ = create_ciba_client(
        "fuzz signer", auth_method=AuthMethod.PRIVATE_KEY_JWT, jwks={"keys": [JWK]}, scope="openid"
    )
    return {"app": app, "secret": secret, "auth_req_id": auth_req_id, "signer": signer}


def token_values(ctx: dict) -> Any:
    return st.one_of(
        st.sampled_from(
            [*GRANT_TYPES, ctx["auth_req_id"], ctx["app"].client_id, ctx["secret"], CLIENT_ASSERTION_TYPE]
        ),
        TEXT,
    )


def token_answer(response) -> None:
    """200 with an access token (a grant that may legitimately succeed) or the error JSON."""
    assert_no_5xx(response)
    if response.status_code == 200:
        assert isinstance(response.json().get("access_token"), str)
        return
    assert_error_json(response)


def auth_headers(ctx: dict, choice: str) -> dict[str, str]:
    if choice == "basic":
        return {"HTTP_AUTHORIZATION": basic_auth(ctx["app"].client_id, ctx["secret"])}
    if choice == "wrong":
        return {"HTTP_AUTHORIZATION": basic_auth(ctx["app"].client_id, "wrong")}
    if choice == "garbage":
        return {"HTTP_AUTHORIZATION": "Basic " + "é" * 20}
    return {}


AUTH_CHOICES = st.sampled_from(["basic", "wrong", "garbage", "none"])


@FUZZ
@given(data=st.data(), auth=AUTH_CHOICES)
def test_fuzz_token_parameter_lists(http, token_ctx, data, auth):
    # TOK-15: random (possibly repeated) parameters, any grant type: tokens or an error JSON.
    names = st.one_of(st.sampled_from(TOKEN_NAMES), st.text(min_size=1, max_size=12))
    pairs = data.draw(st.lists(st.tuples(names, token_values(token_ctx)), max_size=10))
    response = http.post(TOKEN_URL, urlencode(pairs), content_type=FORM, **auth_headers(token_ctx, auth))
    token_answer(response)


@FUZZ
@given(
    suffix=st.binary(max_size=200),
    content_type=CONTENT_TYPES,
    auth=AUTH_CHOICES,
    method=st.one_of(st.just("POST"), st.sampled_from(["GET", "PUT", "DELETE", "PATCH"])),
)
def test_fuzz_token_raw_bodies(http, token_ctx, suffix, content_type, auth, method):
    # TOK-15: raw bytes (invalid UTF-8 included) under any content type and method.
    body = urlencode({"grant_type": CIBA_GRANT_TYPE, "auth_req_id": token_ctx["auth_req_id"]}).encode()
    response = http.generic(
        method, TOKEN_URL, body + b"&" + suffix, content_type=content_type, **auth_headers(token_ctx, auth)
    )
    token_answer(response)


@FUZZ
@given(
    value=st.text(alphabet=st.characters(codec="latin-1"), min_size=1, max_size=40),
    name=st.sampled_from(TOKEN_NAMES),
    size=SIZES,
    auth=AUTH_CHOICES,
)
def test_fuzz_token_latin1_and_huge_values(http, token_ctx, value, name, size, auth):
    # TOK-15: latin-1 bytes where UTF-8 is expected, and values up to past the upload limit.
    params = {"grant_type": CIBA_GRANT_TYPE, "auth_req_id": token_ctx["auth_req_id"]}
    body = urlencode(params).encode() + b"&" + name.encode() + b"=" + value.encode("latin-1")
    body += b"a" * size
    response = http.post(TOKEN_URL, body, content_type=FORM, **auth_headers(token_ctx, auth))
    token_answer(response)


@FUZZ
@given(data=st.data(), grant=st.sampled_from([CIBA_GRANT_TYPE, "client_credentials", "refresh_token"]))
def test_fuzz_token_broken_client_assertions(http, token_ctx, data, grant):
    # TOK-15 / RFC 7523: random JWT-shaped client assertions (alg none, huge kid, bad claims).
    signer = token_ctx["signer"]
    params = {
        "grant_type": grant,
        "auth_req_id": token_ctx["auth_req_id"],
        "client_assertion_type": data.draw(st.one_of(st.just(CLIENT_ASSERTION_TYPE), TEXT)),
        "client_assertion": data.draw(jwt_shaped(signer.client_id)),
    }
    if data.draw(st.booleans()):
        params["client_id"] = signer.client_id
    response = http.post(TOKEN_URL, urlencode(params), content_type=FORM)
    token_answer(response)


@FUZZ
@given(claims=jwt_payloads("placeholder"), kid=st.one_of(st.just("fuzz-key"), TEXT))
def test_fuzz_token_validly_signed_assertions_with_random_claims(http, token_ctx, claims, kid):
    # RFC 7523: a correct signature does not make arbitrary claims acceptable, nor crash anything.
    signer = token_ctx["signer"]
    if isinstance(claims, dict) and data_is_mergeable(claims):
        # Mostly a valid assertion, overridden by the random claims.
        now = int(time.time())
        base = {"iss": signer.client_id, "sub": signer.client_id, "aud": ISSUER, "iat": now}
        claims = {**base, "exp": now + 60, "jti": secrets.token_urlsafe(8), **claims}
    assertion = sign_raw(claims, kid)
    params = {
        "grant_type": "client_credentials",
        "client_assertion_type": CLIENT_ASSERTION_TYPE,
        "client_assertion": assertion,
    }
    token_answer(http.post(TOKEN_URL, urlencode(params), content_type=FORM))


# --------------------------------------------------------------------------------------------
# bc-authorize: broken signed request objects and client assertions (SR-*, AERR-01)


@pytest.fixture
def signed_ctx(user):
    app, secret = create_ciba_client(
        "fuzz signed", auth_method=AuthMethod.PRIVATE_KEY_JWT, jwks={"keys": [JWK]}, scope="openid"
    )
    return app


@FUZZ
@given(data=st.data())
def test_fuzz_bc_authorize_broken_jwts(http, signed_ctx, data):
    # SR / AERR-01: random request objects and client assertions -> 4xx error JSON, no row.
    app = signed_ctx
    good_assertion = client_assertion(app, KEY, audience=ISSUER, kid="fuzz-key")
    params: dict[str, str] = {}
    which = data.draw(st.sampled_from(["request", "assertion", "both"]))
    if which in ("request", "both"):
        params["request"] = data.draw(jwt_shaped(app.client_id))
    if which in ("assertion", "both"):
        params["client_assertion_type"] = CLIENT_ASSERTION_TYPE
        params["client_assertion"] = data.draw(jwt_shaped(app.client_id))
    else:
        params.update(good_assertion)
    if data.draw(st.booleans()):
        params.update({"scope": "openid", "login_hint": "alice"})
    before = AuthenticationRequest.objects.count()
    response = http.post(BC_URL, urlencode(params), content_type=FORM)
    # An empty ``request`` parameter counts as absent: the plain request may then be acknowledged.
    blank_request = which == "request" and not params["request"].strip()
    assert_error_json(response, ok=(200,) if blank_request else ())
    if response.status_code != 200:
        assert AuthenticationRequest.objects.count() == before


@FUZZ
@given(claims=jwt_payloads("placeholder"), kid=st.one_of(st.just("fuzz-key"), TEXT))
def test_fuzz_bc_authorize_signed_request_objects_with_random_claims(http, signed_ctx, claims, kid):
    # SR: a correctly signed request object with arbitrary claims: acknowledgement or error JSON.
    app = signed_ctx
    if isinstance(claims, dict) and data_is_mergeable(claims):
        # Mostly sensible claims (a valid request object) overridden by the random ones.
        now = int(time.time())
        base = {"iss": app.client_id, "aud": ISSUER, "iat": now, "nbf": now, "exp": now + 300}
        base["jti"] = secrets.token_urlsafe(8)
        claims = {**base, "scope": "openid", "login_hint": "alice", **claims}
    token = sign_raw(claims, kid)
    params = {"request": token, **client_assertion(app, KEY, audience=ISSUER, kid="fuzz-key")}
    response = http.post(BC_URL, urlencode(params), content_type=FORM)
    assert_error_json(response, ok=(200,))
    if response.status_code == 200:
        assert isinstance(response.json()["auth_req_id"], str)


def data_is_mergeable(claims: dict) -> bool:
    return len(claims) % 3 != 0  # two thirds of the dicts are merged into a valid request object


# --------------------------------------------------------------------------------------------
# dynamic registration (RFC 7591) and its management (RFC 7592)

REG_NAMES = [
    "client_name",
    "grant_types",
    "response_types",
    "redirect_uris",
    "token_endpoint_auth_method",
    "token_endpoint_auth_signing_alg",
    "jwks",
    "jwks_uri",
    "scope",
    "contacts",
    "subject_type",
    "sector_identifier_uri",
    "id_token_signed_response_alg",
    "backchannel_token_delivery_mode",
    "backchannel_client_notification_endpoint",
    "backchannel_authentication_request_signing_alg",
    "backchannel_user_code_parameter",
    "client_id",
    "client_secret",
    "registration_access_token",
]
REG_SAMPLES = st.sampled_from(
    [
        "poll",
        "ping",
        "push",
        [CIBA_GRANT_TYPE],
        [],
        "client_secret_basic",
        "private_key_jwt",
        "none",
        "PS256",
        "none",
        "pairwise",
        "public",
        "openid profile",
        {"keys": [JWK]},
        {"keys": [{"kty": "RSA"}]},
        # loopback: the outbound client refuses these without a network call
        "https://127.0.0.1/cb",
        ["https://127.0.0.1/cb"],
        "http://127.0.0.1/cb",
        True,
    ]
)
BASES = st.sampled_from(
    [
        {},
        {"backchannel_token_delivery_mode": "poll", "grant_types": [CIBA_GRANT_TYPE], "response_types": []},
        {
            "backchannel_token_delivery_mode": "ping",
            "grant_types": [CIBA_GRANT_TYPE],
            "backchannel_client_notification_endpoint": "https://127.0.0.1/cb",
        },
    ]
)
METADATA = st.builds(
    lambda base, extra: {**base, **extra},
    BASES,
    st.dictionaries(
        st.one_of(st.sampled_from(REG_NAMES), st.text(max_size=12)),
        st.one_of(REG_SAMPLES, JSON_VALUES),
        max_size=8,
    ),
)
REG_BODIES = st.one_of(METADATA, METADATA, JSON_VALUES)


def registration_answer(response, ok: tuple[int, ...]) -> None:
    assert_error_json(response, ok=ok)
    if response.status_code in (200, 201):
        body = response.json()
        assert isinstance(body["client_id"], str)


@FUZZ
@given(body=REG_BODIES)
def test_fuzz_registration_json(http, body):
    # REG: any JSON value as metadata -> 201 with the client information or an error JSON.
    response = http.post(REGISTER, json.dumps(body), content_type=JSON)
    registration_answer(response, ok=(201,))


@FUZZ
@given(
    body=st.one_of(st.binary(max_size=300), REG_BODIES.map(lambda value: json.dumps(value).encode())),
    content_type=CONTENT_TYPES,
    mangle=st.sampled_from(["none", "latin-1", "ff", "truncate", "huge", "dupkeys"]),
    token=st.one_of(st.none(), TEXT),
)
def test_fuzz_registration_raw_bodies(http, body, content_type, mangle, token):
    # REG: wrong content types, broken UTF-8, duplicate keys, huge bodies, random bearer tokens.
    if mangle == "latin-1":
        body = json.dumps({"client_name": "caf\u00e9", "grant_types": [CIBA_GRANT_TYPE]}).encode("latin-1")
        body = body.replace(b"caf\\u00e9", b"caf\xe9")
    elif mangle == "ff":
        body = body[:10] + b"\xff\xfe" + body[10:]
    elif mangle == "truncate":
        body = body[: len(body) // 2]
    elif mangle == "huge":
        body = b'{"client_name": "' + b"a" * HUGE + b'"}'
    elif mangle == "dupkeys":
        body = b'{"client_name": "a", "client_name": "b"}'
    headers = {} if token is None else {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    response = http.generic("POST", REGISTER, body, content_type=content_type, **headers)
    registration_answer(response, ok=(201,))


@pytest.fixture
def registered(http):
    body = {"backchannel_token_delivery_mode": "poll", "grant_types": [CIBA_GRANT_TYPE], "response_types": []}
    response = http.post(REGISTER, json.dumps(body), content_type=JSON)
    assert response.status_code == 201, response.content
    return response.json()


@FUZZ
@given(
    data=st.data(),
    method=st.one_of(st.sampled_from(["GET", "PUT"]), st.sampled_from(["DELETE", "POST", "PATCH"])),
)
def test_fuzz_registration_management(http, registered, data, method):
    # REG (RFC 7592): random client ids, tokens and bodies -> the configuration or an error JSON.
    real_id, real_token = registered["client_id"], registered["registration_access_token"]
    client_id = data.draw(
        st.one_of(st.just(real_id), st.text(min_size=1, max_size=60).filter(lambda s: "/" not in s))
        if data.draw(st.booleans())
        else st.just(real_id)
    )
    # The real token is never combined with DELETE: later examples would all meet a deleted client.
    tokens = st.one_of(st.none(), TEXT, st.just("x" * 10_000))
    if method != "DELETE":
        tokens = st.one_of(st.just(real_token), st.just(real_token), tokens)
    token = data.draw(tokens)
    body = data.draw(st.one_of(METADATA.map(lambda extra: {"client_id": real_id, **extra}), JSON_VALUES))
    raw = json.dumps(body).encode()
    if data.draw(st.booleans()):
        raw = data.draw(st.sampled_from([b"\xff" + raw, raw[:-1], b"", raw + b"a" * HUGE]))
    headers = {} if token is None else {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    content_type = data.draw(st.one_of(st.just(JSON), CONTENT_TYPES))
    path = f"{REGISTER}/{quote(client_id, safe='')}"
    response = http.generic(method, path, raw, content_type=content_type, **headers)
    registration_answer(response, ok=(200, 204))


# --------------------------------------------------------------------------------------------
# device API (AD-01..AD-03) and approval pages


@pytest.fixture
def device_ctx(client, user, other_user, poll_client):
    client.raise_request_exception = False
    client.force_login(user)
    app, _ = poll_client
    mine = [create_auth_request(app, user, scope="openid profile").pk for _ in range(3)]
    theirs = create_auth_request(app, other_user, scope="openid").pk
    return client, [*mine, theirs]


def pks(known: list[int]) -> Any:
    return st.one_of(
        st.sampled_from(known),
        st.integers(min_value=0, max_value=2**31),
        st.integers(min_value=0, max_value=2**80),
    )


DEVICE_BODIES = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "scopes": st.one_of(st.just(["openid"]), st.just(["openid", "profile"]), JSON_VALUES),
            "scope": JSON_VALUES,
            "acr": JSON_VALUES,
            "amr": JSON_VALUES,
        },
    ),
    JSON_VALUES,
)


@FUZZ
@given(
    data=st.data(),
    action=st.sampled_from(["", "approve/", "deny/"]),
    method=st.one_of(st.just("POST"), st.sampled_from(["GET", "PUT", "DELETE", "PATCH"])),
)
def test_fuzz_device_api(device_ctx, data, action, method):
    # AD-01..AD-03: random pks, methods and JSON bodies -> a JSON answer, errors with ``error``.
    client, known = device_ctx
    pk = data.draw(st.one_of(st.none(), pks(known)))
    path = DEVICE if pk is None else f"{DEVICE}{pk}/{action}"
    raw = json.dumps(data.draw(DEVICE_BODIES)).encode()
    if data.draw(st.booleans()):
        raw = data.draw(st.sampled_from([b"\xff" + raw, raw[:-1], b"", b"scopes=openid"]))
    content_type = data.draw(st.one_of(st.just(JSON), CONTENT_TYPES))
    response = client.generic(method, path, raw, content_type=content_type)
    assert_error_json(response, ok=(200, 201, 204))


@FUZZ
@given(
    data=st.data(),
    fields=st.lists(
        st.tuples(
            st.one_of(st.sampled_from(["action", "scope", "csrfmiddlewaretoken"]), st.text(max_size=8)),
            st.one_of(st.sampled_from(["approve", "deny", "report", "openid", "profile", "email"]), TEXT),
        ),
        max_size=8,
    ),
)
def test_fuzz_approval_pages(device_ctx, data, fields):
    # The approval pages (HTML): random form fields on random requests, in random charsets -> never
    # a 5xx.
    client, known = device_ctx
    pk = data.draw(pks(known))
    charset = data.draw(st.sampled_from(["", "utf-8", "utf-16", "latin-1", "bogus"]))
    body = urlencode(fields).encode(charset if charset not in ("", "bogus") else "utf-8")
    if data.draw(st.booleans()):
        body += data.draw(st.sampled_from([b"&action=\xff", b"&scope=%ff", b"&\x00=\x00"]))
    content_type = f"{FORM}; charset={charset}" if charset else FORM
    response = client.generic("POST", f"{PAGES}{pk}/", body, content_type=content_type)
    assert_no_5xx(response)
    assert_no_5xx(client.get(f"{PAGES}{pk}/"))
    assert_no_5xx(client.get(f"{PAGES}{pk}/result/"))
