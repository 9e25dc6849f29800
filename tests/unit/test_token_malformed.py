"""Malformed token requests: every one gets a 4xx JSON error body, never a 500 or HTML (TOK-15)."""

from __future__ import annotations

import base64
import json
from urllib.parse import urlencode

import pytest
from oauth2_provider.models import AccessToken

from django_ciba.approval import decisions
from django_ciba.core.constants import CIBA_GRANT_TYPE
from django_ciba.models import AuthenticationRequest
from django_ciba.testing import FORM, basic_auth, bc_authorize


TOKEN_URL = "/o/token/"


@pytest.fixture
def http(client):
    # Exceptions must surface as responses (a 500 is a failure, not a raised exception).
    client.raise_request_exception = False
    return client


@pytest.fixture
def ctx(http, user, poll_client):
    """An approved request: a successful poll would mint tokens, so any refusal is visible."""
    app, secret = poll_client
    response = bc_authorize(http, app, secret, scope="openid", login_hint="alice")
    assert response.status_code == 200, response.content
    auth_req_id = response.json()["auth_req_id"]
    decisions.approve(AuthenticationRequest.objects.by_auth_req_id(auth_req_id).get(), user=user)
    return app, secret, auth_req_id


def assert_json_error(response, *, status=None, error=None):
    assert 400 <= response.status_code < 500, (response.status_code, response.content)
    if status is not None:
        assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body = response.json()
    assert isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"]
    if error is not None:
        assert body["error"] == error, body
    return body


def assert_nothing_issued(auth_req_id):
    assert not AccessToken.objects.exists()
    assert AuthenticationRequest.objects.by_auth_req_id(auth_req_id).get().status == "approved"


# --------------------------------------------------------------------------------------------
# HTTP method (BC-02 / TOK-01: form POST only)


@pytest.mark.django_db
@pytest.mark.parametrize("method", ["get", "put", "patch", "delete"])
def test_wrong_method_is_405_json(http, ctx, method):
    # TOK-01: only POST; the 405 is the OAuth error JSON with an Allow header.
    app, secret, auth_req_id = ctx
    response = getattr(http, method)(TOKEN_URL, HTTP_AUTHORIZATION=basic_auth(app.client_id, secret))
    assert_json_error(response, status=405, error="invalid_request")
    assert response["Allow"] == "POST"
    assert response["Cache-Control"] == "no-store"
    assert_nothing_issued(auth_req_id)


@pytest.mark.django_db
def test_get_with_parameters_in_query_is_405(http, ctx):
    # TOK-01: a GET carrying the grant in the query string issues nothing.
    app, secret, auth_req_id = ctx
    query = urlencode({"grant_type": CIBA_GRANT_TYPE, "auth_req_id": auth_req_id})
    response = http.get(f"{TOKEN_URL}?{query}", HTTP_AUTHORIZATION=basic_auth(app.client_id, secret))
    assert_json_error(response, status=405, error="invalid_request")
    assert_nothing_issued(auth_req_id)


# --------------------------------------------------------------------------------------------
# body encodings


def ciba_form(auth_req_id: str, **extra: str) -> str:
    return urlencode({"grant_type": CIBA_GRANT_TYPE, "auth_req_id": auth_req_id, **extra})


# Each row: the body built from the approved request's auth_req_id, its Content-Type, and the error
# (None: any error code). Nothing may be issued.
MALFORMED_TOKEN_BODIES = [
    # TOK-01: the token request is form-encoded; a JSON body carries no grant.
    pytest.param(
        lambda rid: json.dumps({"grant_type": CIBA_GRANT_TYPE, "auth_req_id": rid}),
        "application/json",
        None,
        id="TOK-01-json-body",
    ),
    # TOK-03: undecodable bytes never match a request.
    pytest.param(
        lambda rid: b"grant_type=" + CIBA_GRANT_TYPE.encode() + b"&auth_req_id=\xff\xfe%ff%fe",
        FORM,
        "invalid_grant",
        id="TOK-03-invalid-utf8-auth-req-id",
    ),
    # TOK-01 / TOK-15: an undecodable grant_type selects no grant.
    pytest.param(
        lambda rid: b"grant_type=\xff\xfe&auth_req_id=" + rid.encode(),
        FORM,
        "unsupported_grant_type",
        id="TOK-01-TOK-15-invalid-utf8-grant-type",
    ),
    # TOK-03: lone surrogates / NUL in the id are just unknown ids.
    pytest.param(
        lambda rid: f"grant_type={CIBA_GRANT_TYPE}&auth_req_id=%ED%A0%80%00{rid}",
        FORM,
        "invalid_grant",
        id="TOK-03-surrogates-and-nul-in-auth-req-id",
    ),
    # TOK-15: Django refuses non-UTF-8 form bodies; the endpoint still answers with JSON.
    pytest.param(ciba_form, f"{FORM}; charset=latin-1", "invalid_request", id="TOK-15-non-utf8-charset"),
    # TOK-15: a multipart body without its boundary.
    pytest.param(
        lambda rid: b"grant_type=x", "multipart/form-data", "invalid_request", id="TOK-15-broken-multipart"
    ),
    # TOK-15: Django's DATA_UPLOAD_MAX_NUMBER_FIELDS refusal is rendered as JSON.
    pytest.param(
        lambda rid: "&".join(f"f{i}=1" for i in range(1100)) + "&" + ciba_form(rid),
        FORM,
        "invalid_request",
        id="TOK-15-too-many-fields",
    ),
    # TOK-03
    pytest.param(lambda rid: ciba_form("A" * 200_000), FORM, "invalid_grant", id="TOK-03-huge-auth-req-id"),
    # TOK-01 / TOK-15
    pytest.param(lambda rid: b"", FORM, None, id="TOK-01-TOK-15-empty-body"),
]


@pytest.mark.django_db
@pytest.mark.parametrize("body, content_type, error", MALFORMED_TOKEN_BODIES)
def test_malformed_body_is_400_json(http, ctx, body, content_type, error):
    app, secret, auth_req_id = ctx
    response = http.post(
        TOKEN_URL,
        data=body(auth_req_id),
        content_type=content_type,
        HTTP_AUTHORIZATION=basic_auth(app.client_id, secret),
    )
    assert_json_error(response, status=400, error=error)
    assert_nothing_issued(auth_req_id)


@pytest.mark.django_db
def test_body_too_large_is_json_error(http, ctx, settings):
    # TOK-15: Django's DATA_UPLOAD_MAX_MEMORY_SIZE refusal is rendered as JSON.
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    app, secret, auth_req_id = ctx
    body = urlencode({"grant_type": CIBA_GRANT_TYPE, "auth_req_id": auth_req_id, "pad": "x" * 20_000})
    response = http.post(
        TOKEN_URL, data=body, content_type=FORM, HTTP_AUTHORIZATION=basic_auth(app.client_id, secret)
    )
    assert_json_error(response, status=400, error="invalid_request")
    assert_nothing_issued(auth_req_id)


@pytest.mark.django_db
def test_query_string_parameters_are_refused_as_json(http, ctx):
    # TOK-01: parameters belong in the body; oauthlib refuses query parameters, with a JSON content type.
    app, secret, auth_req_id = ctx
    response = http.post(
        f"{TOKEN_URL}?auth_req_id={auth_req_id}",
        data=urlencode({"grant_type": CIBA_GRANT_TYPE}),
        content_type=FORM,
        HTTP_AUTHORIZATION=basic_auth(app.client_id, secret),
    )
    assert_json_error(response, status=400, error="invalid_request")
    assert response["Cache-Control"] == "no-store"
    assert_nothing_issued(auth_req_id)


# --------------------------------------------------------------------------------------------
# Authorization headers (TOK-02)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


GARBAGE_AUTHORIZATION = [
    "Basic",
    "Basic ",
    "Basic !!!not-base64***",
    "Basic " + _b64(b"no-colon-at-all"),
    "Basic " + _b64(b"\xff\xfe:\xff\xfe"),
    "Basic " + _b64(b"a\x00b:c\x00d"),
    "Basic " + _b64(b"%zz:%ff"),
    "Basic " + _b64(b"x" * 5000 + b":" + b"y" * 5000),
    "Basic \u00e9\u00e9\u00e9",  # non-ASCII (WSGI headers are latin-1)
    "Bearer some-access-token",
    "Digest username=x",
    "basic " + _b64(b"a:b"),
    "\u00ff",
]


@pytest.mark.django_db
@pytest.mark.parametrize("authorization", GARBAGE_AUTHORIZATION)
def test_garbage_authorization_header_is_invalid_client(http, ctx, authorization):
    # TOK-02: never a 500; the client is not authenticated.
    app, secret, auth_req_id = ctx
    response = http.post(
        TOKEN_URL,
        data=urlencode({"grant_type": CIBA_GRANT_TYPE, "auth_req_id": auth_req_id}),
        content_type=FORM,
        HTTP_AUTHORIZATION=authorization,
    )
    assert_json_error(response, status=401, error="invalid_client")
    assert_nothing_issued(auth_req_id)


@pytest.mark.django_db
def test_non_ascii_basic_with_valid_body_credentials_is_refused(http, ctx):
    # TOK-02: a broken Authorization header next to body credentials is still one too many methods.
    app, secret, auth_req_id = ctx
    response = http.post(
        TOKEN_URL,
        data=urlencode(
            {
                "grant_type": CIBA_GRANT_TYPE,
                "auth_req_id": auth_req_id,
                "client_id": app.client_id,
                "client_secret": secret,
            }
        ),
        content_type=FORM,
        HTTP_AUTHORIZATION="Basic \u00e9",
    )
    assert_json_error(response, status=401, error="invalid_client")


@pytest.mark.django_db
def test_non_ascii_authorization_on_other_grants_is_not_500(http, ctx):
    # TOK-15: the validator mixin serves every grant; DOT's own grants get invalid_client too.
    response = http.post(
        TOKEN_URL,
        data=urlencode({"grant_type": "client_credentials"}),
        content_type=FORM,
        HTTP_AUTHORIZATION="Basic \u00e9\u00e9",
    )
    assert_json_error(response, status=401, error="invalid_client")


# --------------------------------------------------------------------------------------------
# grant_type


@pytest.mark.django_db
@pytest.mark.parametrize(
    "grant_types",
    [
        [CIBA_GRANT_TYPE, CIBA_GRANT_TYPE],
        ["client_credentials", CIBA_GRANT_TYPE],
        [CIBA_GRANT_TYPE, "client_credentials"],
        [CIBA_GRANT_TYPE, "refresh_token"],
    ],
)
def test_repeated_grant_type_is_invalid_request(http, ctx, grant_types):
    # TOK-12 / RFC 6749 §3.2: whatever the order, a repeated grant_type issues nothing.
    app, secret, auth_req_id = ctx
    body = urlencode([*(("grant_type", value) for value in grant_types), ("auth_req_id", auth_req_id)])
    response = http.post(
        TOKEN_URL, data=body, content_type=FORM, HTTP_AUTHORIZATION=basic_auth(app.client_id, secret)
    )
    assert_json_error(response, status=400, error="invalid_request")
    assert_nothing_issued(auth_req_id)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "grant_type",
    [
        "urn:openid:params:grant-type:cibaX",
        "urn:example:unknown",
        "CIBA",
        "urn:openid:params:grant-type:CIBA",
    ],
)
def test_unknown_grant_type_is_unsupported_grant_type(http, ctx, grant_type):
    # TOK-01: only the exact URN selects the CIBA grant.
    app, secret, auth_req_id = ctx
    response = http.post(
        TOKEN_URL,
        data=urlencode({"grant_type": grant_type, "auth_req_id": auth_req_id}),
        content_type=FORM,
        HTTP_AUTHORIZATION=basic_auth(app.client_id, secret),
    )
    assert_json_error(response, status=400, error="unsupported_grant_type")
    assert_nothing_issued(auth_req_id)


@pytest.mark.django_db
@pytest.mark.parametrize("body", ["", "grant_type=", "auth_req_id=abc"])
def test_missing_or_empty_grant_type(http, ctx, body):
    # TOK-01 / TOK-15
    app, secret, auth_req_id = ctx
    response = http.post(
        TOKEN_URL, data=body, content_type=FORM, HTTP_AUTHORIZATION=basic_auth(app.client_id, secret)
    )
    assert_json_error(response, status=400)
    assert_nothing_issued(auth_req_id)


@pytest.mark.django_db
def test_device_code_grant_without_device_code_is_not_500(http, ctx):
    # TOK-15: DOT's device-flow branch would raise KeyError on a missing device_code.
    app, secret, auth_req_id = ctx
    response = http.post(
        TOKEN_URL,
        data=urlencode({"grant_type": "urn:ietf:params:oauth:grant-type:device_code"}),
        content_type=FORM,
        HTTP_AUTHORIZATION=basic_auth(app.client_id, secret),
    )
    assert_json_error(response, status=400, error="invalid_request")


@pytest.mark.django_db
def test_malformed_requests_do_not_spend_the_request(http, ctx):
    # TOK-12: after a barrage of malformed requests, the approved request is still redeemable.
    app, secret, auth_req_id = ctx
    auth = basic_auth(app.client_id, secret)
    http.get(TOKEN_URL, HTTP_AUTHORIZATION=auth)
    http.post(
        TOKEN_URL,
        data={"grant_type": CIBA_GRANT_TYPE, "auth_req_id": auth_req_id},
        content_type="application/json",
        HTTP_AUTHORIZATION=auth,
    )
    http.post(
        TOKEN_URL,
        data=urlencode({"grant_type": CIBA_GRANT_TYPE, "auth_req_id": auth_req_id}),
        content_type=FORM,
        HTTP_AUTHORIZATION="Basic !!!",
    )
    response = http.post(
        TOKEN_URL,
        data=urlencode({"grant_type": CIBA_GRANT_TYPE, "auth_req_id": auth_req_id}),
        content_type=FORM,
        HTTP_AUTHORIZATION=auth,
    )
    assert response.status_code == 200, response.content
    assert response.json()["access_token"]


@pytest.mark.django_db
@pytest.mark.parametrize("encoding", ["openid", "utf-16", "rot13"])
def test_encoding_parameter_does_not_pick_the_credentials_codec(http, ctx, encoding):
    # oauthlib exposes body parameters as attributes and DOT decodes Basic credentials with
    # request.encoding: an unknown codec named by the client was a 500 (found by the fuzz test).
    app, secret, auth_req_id = ctx
    body = urlencode({"grant_type": CIBA_GRANT_TYPE, "auth_req_id": auth_req_id, "encoding": encoding})
    response = http.post(
        TOKEN_URL, data=body, content_type=FORM, HTTP_AUTHORIZATION=basic_auth(app.client_id, secret)
    )
    assert response.status_code == 200, response.content
    assert "access_token" in response.json()


@pytest.mark.django_db
def test_encoding_parameter_at_the_backchannel_endpoint(http, user, poll_client):
    app, secret = poll_client
    response = bc_authorize(http, app, secret, scope="openid", login_hint="alice", encoding="openid")
    assert response.status_code == 200, response.content
    response = bc_authorize(http, app, "wrong", scope="openid", login_hint="alice", encoding="openid")
    assert_json_error(response, status=401, error="invalid_client")
