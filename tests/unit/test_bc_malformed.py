"""Malformed input at POST /o/bc-authorize: always a 4xx error JSON, never a 500 (BC-02, AERR-01, AERR-09).

Raw bodies go through ``client.generic`` so that nothing re-encodes them. The hypothesis tests fuzz
parameter dicts and raw bodies; hypothesis is a test-only dependency.
"""

from __future__ import annotations

import base64
import json
from urllib.parse import urlencode

import pytest
from django.conf import settings
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from django_ciba.models import AuthenticationRequest
from django_ciba.testing import FORM, basic_auth, create_ciba_client
from tests.unit.abuse_controls import LIMITS_OFF
from tests.unit.protocol import AUTH_REQ_ID_RE, DESCRIPTION_RE
from tests.unit.protocol import CIBA_ERRORS as ERRORS
from tests.unit.test_fuzz_endpoints import fuzz_examples


pytestmark = pytest.mark.django_db

URL = "/o/bc-authorize"
VALID = urlencode({"scope": "openid", "login_hint": "alice"}).encode()


@pytest.fixture
def app_secret(user):
    return create_ciba_client("malformed-input client")


@pytest.fixture
def auth(app_secret):
    app, secret = app_secret
    return {"HTTP_AUTHORIZATION": basic_auth(app.client_id, secret)}


def raw(client, body: bytes, content_type: str = FORM, method: str = "POST", **extra):
    return client.generic(method, URL, body, content_type=content_type, **extra)


def assert_error_json(response, error: str | None = None, status: int | None = None) -> dict:
    """Section 8: a 4xx JSON body with ``error`` (and at most a safe description); VAL-09: no row."""
    assert 400 <= response.status_code < 500, (response.status_code, response.content[:300])
    if status is not None:
        assert response.status_code == status
    assert response["Content-Type"] == "application/json"
    body = json.loads(response.content)
    assert set(body) <= {"error", "error_description"}, body
    assert body["error"] in ERRORS
    if error is not None:
        assert body["error"] == error, body
    if "error_description" in body:
        assert DESCRIPTION_RE.match(body["error_description"])
    assert AuthenticationRequest.objects.count() == 0
    return body


def test_valid_raw_body_is_accepted(client, auth):
    # BC-02: the baseline for this module: the same helpers do succeed with a proper body.
    response = raw(client, VALID, **auth)
    assert response.status_code == 200, response.content
    assert AUTH_REQ_ID_RE.match(response.json()["auth_req_id"])


# --- HTTP method (BC-02)


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_other_methods(client, auth, method):
    # BC-02: only POST; others get 405 with the error JSON and an Allow header.
    response = raw(client, VALID, method=method, **auth)
    assert_error_json(response, "invalid_request", 405)
    assert response["Allow"] == "POST"


def test_head(client, auth):
    # BC-02: HEAD is not POST either (no body can be checked).
    response = client.head(URL, **auth)
    assert response.status_code == 405
    assert response["Content-Type"] == "application/json"


def test_get_with_query_parameters(client, auth):
    # BC-02: parameters in a GET query string are not a backchannel request.
    response = client.get(URL, {"scope": "openid", "login_hint": "alice"}, **auth)
    assert_error_json(response, "invalid_request", 405)


# --- body encodings (BC-02, AERR-01)


def test_multipart_body(client, auth):
    # BC-02: multipart/form-data is not application/x-www-form-urlencoded.
    response = client.post(URL, {"scope": "openid", "login_hint": "alice"}, **auth)  # multipart by default
    assert_error_json(response, "invalid_request", 400)


def test_form_with_charset_parameter_accepted(client, auth):
    # BC-02: "; charset=UTF-8" on the form media type is fine.
    assert raw(client, VALID, f"{FORM}; charset=UTF-8", **auth).status_code == 200


# (raw body, or a function giving it; Content-Type; the error): every row is refused, no row stored.
MALFORMED_BODIES = [
    # BC-02: a JSON body is not a form.
    pytest.param(
        json.dumps({"scope": "openid", "login_hint": "alice"}).encode(),
        "application/json",
        "invalid_request",
        id="BC-02-json-body",
    ),
    # BC-02: no Content-Type at all.
    pytest.param(VALID, "", "invalid_request", id="BC-02-missing-content-type"),
    # BC-02: other media types.
    *(
        pytest.param(VALID, content_type, "invalid_request", id=f"BC-02-content-type-{content_type}")
        for content_type in ["text/plain", "application/octet-stream", "application/jwt", "*/*"]
    ),
    # BC-02 / AERR-01: bytes that are not UTF-8, raw or percent-encoded.
    *(
        pytest.param(body, FORM, "invalid_request", id=f"BC-02-AERR-01-invalid-utf8-{label}")
        for label, body in [
            ("raw-ff", b"scope=openid&login_hint=al\xffice"),
            ("pct-ff", b"scope=openid&login_hint=al%ffice"),
            ("pct-surrogate", b"scope=openid&login_hint=%ed%a0%80"),
            ("pct-truncated", b"scope=openid&login_hint=%c3"),
            ("raw-in-key", b"sc\xfeope=openid&login_hint=alice"),
        ]
    ),
    # AERR-01: a repeated parameter.
    pytest.param(VALID + b"&scope=openid", FORM, "invalid_request", id="AERR-01-repeated-parameter"),
    # AERR-01 / BC-07: the same hint twice.
    pytest.param(VALID + b"&login_hint=bob", FORM, "invalid_request", id="AERR-01-BC-07-repeated-hint"),
    # AERR-01: NUL characters.
    *(
        pytest.param(body, FORM, "invalid_request", id=f"AERR-01-nul-{label}")
        for label, body in [
            ("pct-nul", b"scope=openid&login_hint=ali%00ce"),
            ("raw-nul", b"scope=openid&login_hint=ali\x00ce"),
            ("nul-key", b"scope=openid&login_hint=alice&%00=x"),
        ]
    ),
    # AERR-01: an empty body (the test client then sends no Content-Type either).
    pytest.param(b"", FORM, "invalid_request", id="AERR-01-empty-body"),
    # AERR-01: a form without any parameter.
    pytest.param(b"&&&", FORM, "invalid_request", id="AERR-01-empty-form"),
    # AERR-01: a body over DATA_UPLOAD_MAX_MEMORY_SIZE is refused without reading it.
    pytest.param(
        lambda: VALID + b"&pad=" + b"a" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1),
        FORM,
        "invalid_request",
        id="AERR-01-huge-body",
    ),
    # AERR-01: an absurd number of parameters.
    pytest.param(
        VALID + b"&" + b"&".join(b"p%d=v" % i for i in range(500)),
        FORM,
        "invalid_request",
        id="AERR-01-500-parameters",
    ),
    # BC-02: "%zz" is not an escape; it is kept literally, so the hint simply names nobody.
    pytest.param(
        b"scope=openid&login_hint=%zz", FORM, "unknown_user_id", id="BC-02-garbage-percent-escape-is-literal"
    ),
]


@pytest.mark.parametrize("body, content_type, error", MALFORMED_BODIES)
def test_malformed_body(client, auth, body, content_type, error):
    body = body() if callable(body) else body
    assert_error_json(raw(client, body, content_type, **auth), error, 400)


def test_malformed_query_string_does_not_break_the_endpoint(client, auth):
    # BC-02: the URL query is not parsed as request parameters, so a broken one does no harm.
    response = client.generic("POST", f"{URL}?x=%zz&%ff", VALID, content_type=FORM, **auth)
    assert response.status_code == 200, response.content


# --- Authorization header (AERR-09)


@pytest.mark.parametrize(
    "header",
    [
        "Basic !!!",
        "Basic " + base64.b64encode(b"no-colon-here").decode(),
        "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode(),
        "Basic " + base64.b64encode(b":").decode(),
        "Basic " + base64.b64encode(b"id\x00:secret").decode(),
        "Basic",
        "Basic ",
        "basic x",
        "Bearer x",
        "Digest username=x",
        "Basic ÿÿÿÿ",
        "Basic é" + "A" * 20,
        "Basic " + "A" * 10000,
        "\x00",
    ],
    ids=[
        "bang",
        "no-colon",
        "not-utf8",
        "empty-pair",
        "nul-id",
        "bare",
        "bare-space",
        "lowercase",
        "bearer",
        "digest",
        "latin1",
        "non-ascii",
        "long",
        "nul",
    ],
)
def test_garbage_authorization(client, user, app_secret, header):
    # AERR-09: unusable credentials -> 401 invalid_client, never a 500.
    response = raw(client, VALID, HTTP_AUTHORIZATION=header)
    assert_error_json(response, "invalid_client", 401)


def test_basic_with_right_id_and_garbage_secret_encoding(client, app_secret):
    # AERR-09: percent-garbage in the secret part.
    app, _ = app_secret
    header = "Basic " + base64.b64encode(f"{app.client_id}:%zz%ff".encode()).decode()
    assert_error_json(raw(client, VALID, HTTP_AUTHORIZATION=header), "invalid_client", 401)


def test_garbage_body_is_reported_before_client_auth(client):
    # BC-02: an unparseable body is invalid_request even without credentials.
    assert_error_json(raw(client, b"\xff", FORM), "invalid_request", 400)


# --- fuzzing (hypothesis)

PARAM_NAMES = [
    "scope",
    "login_hint",
    "id_token_hint",
    "login_hint_token",
    "binding_message",
    "user_code",
    "requested_expiry",
    "acr_values",
    "client_notification_token",
    "request",
    "client_id",
    "client_secret",
    "authorization_details",
]
VALUES = st.one_of(
    st.sampled_from(["openid", "openid profile", "alice", "alice@example.com", "30", "0", "-1", "1234", ""]),
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec="ascii"), max_size=40),
)
PARAMS = st.dictionaries(
    st.one_of(st.sampled_from(PARAM_NAMES), st.text(min_size=1, max_size=12)), VALUES, max_size=8
)
# The Django test client and database are function-scoped and reused across examples on purpose;
# no example database is written into the working tree. CIBA_FUZZ_EXAMPLES sets the number of
# examples (see tests/unit/test_fuzz_endpoints.py: 100 by default, 10000 for the long run).
FUZZ = hypothesis_settings(
    max_examples=fuzz_examples(),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def assert_protocol_answer(response, rows_before: int) -> None:
    """200 with the acknowledgement (one new row) or a 4xx error JSON (no new row)."""
    body = json.loads(response.content)
    rows_after = AuthenticationRequest.objects.count()
    if response.status_code == 200:
        assert set(body) == {"auth_req_id", "expires_in", "interval"}
        assert AUTH_REQ_ID_RE.match(body["auth_req_id"])
        assert rows_after == rows_before + 1
        return
    assert response.status_code in (400, 401), (response.status_code, body)
    assert set(body) <= {"error", "error_description"}
    assert body["error"] in ERRORS
    assert DESCRIPTION_RE.match(body.get("error_description", "x"))
    assert (response.status_code == 401) == (body["error"] == "invalid_client")
    assert rows_after == rows_before  # VAL-09


@pytest.fixture(autouse=True)
def _no_abuse_limits(ciba_settings):
    """The fuzz examples share one user and client: the abuse limits (tested in test_abuse.py)
    would refuse most of them, hiding what is being fuzzed."""
    ciba_settings.set(
        **LIMITS_OFF,
    )


@FUZZ
@given(params=PARAMS)
def test_fuzz_parameter_dicts(client, auth, params):
    # BC-02 / BC-14 / AERR-01 / VAL-09: arbitrary parameter sets get the acknowledgement or an error JSON.
    before = AuthenticationRequest.objects.count()
    response = raw(client, urlencode(params).encode(), **auth)
    assert_protocol_answer(response, before)


@FUZZ
@given(suffix=st.binary(max_size=200))
def test_fuzz_raw_bodies(client, auth, suffix):
    # BC-02 / AERR-01: arbitrary bytes appended to a valid body never cause a 500.
    before = AuthenticationRequest.objects.count()
    response = raw(client, VALID + b"&" + suffix, **auth)
    assert_protocol_answer(response, before)
