"""Dynamic client registration (RFC 7591) and its management (RFC 7592): REG-01..REG-11, DISC-09."""

from __future__ import annotations

import hashlib
import json
import logging
import re
from datetime import timedelta
from io import StringIO
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.contrib.auth.hashers import check_password
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone
from oauth2_provider.models import get_application_model

from django_ciba.approval import decisions
from django_ciba.clients.registration import MAX_BODY_BYTES
from django_ciba.core import outbound
from django_ciba.core.constants import CIBA_GRANT_TYPE
from django_ciba.models import CibaClient, InitialAccessToken
from django_ciba.testing import create_ciba_client, make_client_key, poll, start_request


REGISTER = "/o/register"
DOCS = Path(__file__).resolve().parents[2] / "docs"
JSON = "application/json"
NOTIFY = "https://client.example.org/ciba/cb"
JWKS_URI = "https://keys.client.example.org/jwks.json"
SECTOR_URI = "https://sector.client.example.org/uris.json"
POLL = {"backchannel_token_delivery_mode": "poll", "grant_types": [CIBA_GRANT_TYPE], "response_types": []}
PING = {**POLL, "backchannel_token_delivery_mode": "ping", "backchannel_client_notification_endpoint": NOTIFY}
PUSH = {"backchannel_token_delivery_mode": "push", "backchannel_client_notification_endpoint": NOTIFY}


@pytest.fixture
def open_registration(ciba_settings):
    ciba_settings.set(REGISTRATION_OPEN=True)


@pytest.fixture
def rsa_jwk():
    return make_client_key("RS256", kid="rsa-1")[1]


def register(http, metadata, token=None, **extra):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    return http.post(REGISTER, data=json.dumps(metadata), content_type=JSON, **headers, **extra)


def registered(http, metadata, token=None):
    response = register(http, metadata, token)
    assert response.status_code == 201, response.content
    return response.json()


def path_of(body):
    return urlsplit(body["registration_client_uri"]).path


def manage(http, method, body, token, data=None):
    kwargs = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    if data is not None:
        kwargs.update(data=json.dumps(data), content_type=JSON)
    return getattr(http, method)(path_of(body), **kwargs)


def assert_refused(response, field, error="invalid_client_metadata"):
    assert response.status_code == 400, response.content
    assert response["Content-Type"] == JSON
    body = response.json()
    assert body["error"] == error
    assert body["error_description"].startswith(f"{field}:"), body
    return body


def assert_invalid_token(response):
    assert response.status_code == 401, response.content
    assert response.json()["error"] == "invalid_token"
    assert response["WWW-Authenticate"] == 'Bearer error="invalid_token"'


def initial_token(*args):
    out = StringIO()
    call_command("ciba_initial_access_token", *args, stdout=out)
    return json.loads(out.getvalue())


def docs_example(label):
    """The JSON code block that follows ``.. _<label>:`` in docs/registration.rst."""
    lines = (DOCS / "registration.rst").read_text().splitlines()
    start = lines.index(f".. _{label}:")
    block = next(i for i in range(start, len(lines)) if lines[i].strip() == ".. code-block:: json")
    body = []
    for line in lines[block + 1 :]:
        if line.strip() and not line.startswith(" "):
            break
        body.append(line)
    return json.loads("\n".join(body))


# --------------------------------------------------------------------------------------------
# Successful registrations


@pytest.mark.django_db
def test_poll_client_without_redirect_uris_is_201(client, open_registration):
    # REG-08: a CIBA-only client, no redirect_uris and response_types [], gets 201 + JSON.
    response = register(client, {**POLL, "client_name": "Teller"})
    assert response.status_code == 201, response.content
    assert response["Content-Type"] == JSON
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert body["backchannel_token_delivery_mode"] == "poll"  # REG-01
    assert body["grant_types"] == [CIBA_GRANT_TYPE]  # REG-03
    assert body["response_types"] == [] and body["redirect_uris"] == []
    assert body["token_endpoint_auth_method"] == "client_secret_basic"  # RFC 7591 default
    assert body["client_secret"] and body["client_secret_expires_at"] == 0
    assert isinstance(body["client_id_issued_at"], int)
    assert body["registration_client_uri"] == f"http://testserver/o/register/{body['client_id']}"
    assert body["backchannel_user_code_parameter"] is False  # REG-05 default
    Application = get_application_model()
    app = Application.objects.get(client_id=body["client_id"])
    assert app.name == "Teller"
    assert app.client_type == Application.CLIENT_CONFIDENTIAL
    assert app.authorization_grant_type == Application.GRANT_CLIENT_CREDENTIALS
    assert app.registration_source == "dcr"
    assert app.client_secret != body["client_secret"] and check_password(
        body["client_secret"], app.client_secret
    )
    ciba = app.ciba
    assert ciba.delivery_mode == "poll" and ciba.ciba_only is True
    token = body["registration_access_token"]
    assert ciba.registration_access_token_hash == hashlib.sha256(token.encode()).hexdigest()


@pytest.mark.django_db
def test_push_client_with_jwks_user_code_and_signed_requests_is_201(
    client, open_registration, rsa_jwk, ciba_settings
):
    # REG-02, REG-04, REG-05: push with an https endpoint, RS256 signed requests, user codes.
    ciba_settings.set(USER_CODE_SUPPORTED=True, USER_CODE_VERIFIER="hmac.compare_digest")
    metadata = {
        **PUSH,
        "grant_types": [CIBA_GRANT_TYPE],
        "token_endpoint_auth_method": "private_key_jwt",
        "jwks": {"keys": [rsa_jwk]},
        "backchannel_authentication_request_signing_alg": "RS256",
        "backchannel_user_code_parameter": True,
    }
    body = registered(client, metadata)
    assert "client_secret" not in body and "client_secret_expires_at" not in body
    assert body["backchannel_client_notification_endpoint"] == NOTIFY
    assert body["backchannel_authentication_request_signing_alg"] == "RS256"
    assert body["backchannel_user_code_parameter"] is True
    assert body["jwks"] == {"keys": [rsa_jwk]}
    ciba = CibaClient.objects.get(application__client_id=body["client_id"])
    assert ciba.delivery_mode == "push" and ciba.notification_endpoint == NOTIFY
    assert ciba.token_endpoint_auth_method == "private_key_jwt"
    assert ciba.request_signing_alg == "RS256" and ciba.user_code_parameter is True
    assert ciba.jwks == {"keys": [rsa_jwk]}


@pytest.mark.django_db
def test_pairwise_poll_client_with_private_key_jwt_and_jwks_uri_is_201(client, open_registration):
    # REG-06, DISC-09: a pairwise poll client's sector is the host of its jwks_uri.
    metadata = {
        **POLL,
        "token_endpoint_auth_method": "private_key_jwt",
        "token_endpoint_auth_signing_alg": "PS256",
        "jwks_uri": JWKS_URI,
        "subject_type": "pairwise",
    }
    body = registered(client, metadata)
    assert body["subject_type"] == "pairwise" and body["jwks_uri"] == JWKS_URI
    assert body["token_endpoint_auth_signing_alg"] == "PS256"
    ciba = CibaClient.objects.get(application__client_id=body["client_id"])
    assert ciba.subject_type == "pairwise" and ciba.jwks_uri == JWKS_URI
    assert ciba.token_endpoint_auth_signing_alg == "PS256"
    assert ciba.sector_identifier == "keys.client.example.org"


@pytest.mark.django_db
def test_registered_poll_client_completes_a_poll_flow(client, user, open_registration):
    # REG-08, REG-03, REG-07: the issued client_secret works with client_secret_basic at both endpoints.
    body = registered(client, {**POLL, "grant_types": [CIBA_GRANT_TYPE, "refresh_token"]})
    app = get_application_model().objects.get(client_id=body["client_id"])
    secret = body["client_secret"]
    auth_req_id, auth_request = start_request(client, app, secret, scope="openid", login_hint="alice")
    pending = poll(client, app, secret, auth_req_id)
    assert pending.status_code == 400 and pending.json()["error"] == "authorization_pending"
    decisions.approve(auth_request, user=user)
    response = poll(client, app, secret, auth_req_id)
    assert response.status_code == 200, response.content
    tokens = response.json()
    assert tokens["access_token"] and tokens["id_token"]


@pytest.mark.django_db
def test_client_credentials_grant_is_kept(client, open_registration):
    body = registered(client, {**POLL, "grant_types": [CIBA_GRANT_TYPE, "client_credentials"]})
    assert body["grant_types"] == [CIBA_GRANT_TYPE, "client_credentials"]
    ciba = CibaClient.objects.select_related("application").get(application__client_id=body["client_id"])
    assert ciba.ciba_only is False
    assert ciba.application.authorization_grant_type == get_application_model().GRANT_CLIENT_CREDENTIALS


@pytest.mark.django_db
def test_authorization_code_grant_needs_and_keeps_redirect_uris(client, open_registration):
    metadata = {
        **POLL,
        "grant_types": [CIBA_GRANT_TYPE, "authorization_code", "refresh_token"],
        "response_types": ["code"],
        "redirect_uris": ["https://client.example.org/cb"],
    }
    body = registered(client, metadata)
    assert body["grant_types"] == [CIBA_GRANT_TYPE, "authorization_code", "refresh_token"]
    assert body["response_types"] == ["code"]
    assert body["redirect_uris"] == ["https://client.example.org/cb"]
    app = get_application_model().objects.get(client_id=body["client_id"])
    assert app.authorization_grant_type == app.GRANT_AUTHORIZATION_CODE
    assert app.redirect_uris == "https://client.example.org/cb"


@pytest.mark.django_db
def test_push_client_without_grant_types_gets_the_ciba_grant(client, open_registration):
    # REG-03 asks the CIBA grant of poll and ping clients only; a push client may leave it out.
    body = registered(client, PUSH)
    assert body["grant_types"] == [CIBA_GRANT_TYPE]
    assert CibaClient.objects.get(application__client_id=body["client_id"]).ciba_only is True


@pytest.mark.django_db
def test_scope_is_stored_and_returned(client, open_registration):
    body = registered(client, {**POLL, "scope": "openid  profile openid"})
    assert body["scope"] == "openid profile"
    assert CibaClient.objects.get(application__client_id=body["client_id"]).scope == "openid profile"


@pytest.mark.django_db
def test_informational_metadata_is_kept_and_unknown_metadata_dropped(client, open_registration):
    metadata = {
        **POLL,
        "contacts": ["ops@client.example.org"],
        "client_uri": "https://client.example.org/",
        "logo_uri": "https://client.example.org/logo.png",
        "software_id": "teller-7",
        "x_vendor_option": {"anything": True},
        "default_max_age": 60,
    }
    body = registered(client, metadata)
    assert body["contacts"] == ["ops@client.example.org"]
    assert body["client_uri"] == "https://client.example.org/"
    assert body["logo_uri"] == "https://client.example.org/logo.png"
    assert body["software_id"] == "teller-7"
    assert "x_vendor_option" not in body and "default_max_age" not in body
    ciba = CibaClient.objects.get(application__client_id=body["client_id"])
    assert "x_vendor_option" not in ciba.metadata and ciba.metadata["contacts"] == ["ops@client.example.org"]
    read = manage(client, "get", body, body["registration_access_token"]).json()
    assert read["contacts"] == ["ops@client.example.org"] and read["software_id"] == "teller-7"


@pytest.mark.django_db
def test_issued_fields_in_the_request_are_ignored(client, open_registration):
    body = registered(
        client,
        {
            **POLL,
            "client_id": "chosen-by-me",
            "client_secret": "chosen-secret-" * 3,
            "client_id_issued_at": 1,
        },
    )
    assert body["client_id"] != "chosen-by-me"
    assert body["client_secret"] != "chosen-secret-" * 3
    assert body["client_id_issued_at"] != 1


@pytest.mark.django_db
def test_docs_push_example_registers(client, open_registration):
    # REG-02, REG-04, REG-05: the documented push registration is valid as printed.
    example = docs_example("registration-example-push")
    assert example["backchannel_token_delivery_mode"] == "push"
    assert example["jwks"]["keys"][0]["kid"] == "push-client-2026"
    body = registered(client, example)
    assert body["backchannel_client_notification_endpoint"] == "https://client.example.org/ciba/push"
    assert body["token_endpoint_auth_method"] == "private_key_jwt" and "client_secret" not in body


# --------------------------------------------------------------------------------------------
# Refusals, one rule each: 400 naming the field


def without(metadata: dict, key: str) -> dict:
    return {name: value for name, value in metadata.items() if name != key}


# Any RSA public JWK: the rows only need a key to be there (or to be of the wrong type).
RSA_JWK = make_client_key("RS256", kid="rsa-1")[1]
CODE_GRANTS = {"grant_types": [CIBA_GRANT_TYPE, "authorization_code"], "response_types": ["code"]}
PKJWT = {"token_endpoint_auth_method": "private_key_jwt"}
MODE = "backchannel_token_delivery_mode"
ENDPOINT = "backchannel_client_notification_endpoint"
REQUEST_ALG = "backchannel_authentication_request_signing_alg"
ASSERTION_ALG = "token_endpoint_auth_signing_alg"
ID_TOKEN_ALG = "id_token_signed_response_alg"
USER_CODE = "backchannel_user_code_parameter"
REDIRECT = "invalid_redirect_uri"

# (metadata, the field the error_description names, error); the id starts with the requirement
# the row checks, where one is cited.
REFUSED_METADATA = [
    pytest.param(without(POLL, MODE), MODE, None, id="REG-01-delivery-mode-missing"),
    pytest.param({**POLL, MODE: "carrier-pigeon"}, MODE, None, id="REG-01-delivery-mode-unknown"),
    *(
        pytest.param({**POLL, MODE: mode}, ENDPOINT, None, id=f"REG-02-{mode}-without-endpoint")
        for mode in ("ping", "push")
    ),
    pytest.param(
        {**PUSH, ENDPOINT: "http://client.example.org/cb"}, ENDPOINT, None, id="REG-02-http-endpoint"
    ),
    # REG-02, REG-10 (SEC-01): private hosts and userinfo are refused at registration.
    *(
        pytest.param(
            {**PING, ENDPOINT: url}, ENDPOINT, None, id=f"REG-02-REG-10-SEC-01-unsafe-endpoint-{label}"
        )
        for label, url in (
            ("private-address", "https://10.0.0.7/cb"),
            ("localhost", "https://localhost/cb"),
            ("userinfo", "https://user:pw@client.example.org/"),
        )
    ),
    pytest.param(
        {**POLL, "grant_types": ["client_credentials"]},
        "grant_types",
        None,
        id="REG-03-poll-without-ciba-grant",
    ),
    pytest.param(without(PING, "grant_types"), "grant_types", None, id="REG-03-ping-without-grant-types"),
    *(
        pytest.param(
            {**POLL, "grant_types": [CIBA_GRANT_TYPE, grant]}, "grant_types", None, id=f"grant-{grant}"
        )
        for grant in (
            "implicit",
            "password",
            "urn:ietf:params:oauth:grant-type:device_code",
            "urn:example:unknown",
        )
    ),
    pytest.param(
        {
            **POLL,
            "grant_types": [CIBA_GRANT_TYPE, "client_credentials", "authorization_code"],
            "redirect_uris": ["https://client.example.org/cb"],
        },
        "grant_types",
        None,
        id="client-credentials-and-authorization-code",
    ),
    pytest.param(
        {**POLL, "grant_types": CIBA_GRANT_TYPE}, "grant_types", None, id="grant-types-not-an-array"
    ),
    pytest.param(
        {**POLL, **CODE_GRANTS}, "redirect_uris", REDIRECT, id="authorization-code-without-redirect-uris"
    ),
    *(
        pytest.param(
            {**POLL, **CODE_GRANTS, "redirect_uris": [uri]},
            "redirect_uris",
            REDIRECT,
            id=f"redirect-uri-{uri}",
        )
        for uri in ("ftp://client.example.org/cb", "https://client.example.org/cb#frag", "relative/cb")
    ),
    # REG-08: a CIBA-only client has no authorization endpoint flow.
    *(
        pytest.param(
            {**POLL, "response_types": [kind]}, "response_types", None, id=f"REG-08-response-types-{kind}"
        )
        for kind in ("code", "token", "id_token")
    ),
    # CIBA clients are confidential; DOT has no client_secret_jwt. The mTLS methods (RFC 8705 §2)
    # are refused while no trusted TLS proxy is configured (test_registration_mtls.py otherwise).
    *(
        pytest.param(
            {**POLL, "token_endpoint_auth_method": method},
            "token_endpoint_auth_method",
            None,
            id=f"auth-method-{method}",
        )
        for method in ("none", "client_secret_jwt", "bogus")
    ),
    *(
        pytest.param(
            {**POLL, "token_endpoint_auth_method": method, "jwks": {"keys": [RSA_JWK]}},
            "token_endpoint_auth_method",
            None,
            id=f"auth-method-{method}-without-a-trusted-proxy",
        )
        for method in ("self_signed_tls_client_auth", "tls_client_auth")
    ),
    pytest.param(
        {**POLL, **PKJWT}, "token_endpoint_auth_method", None, id="REG-07-private-key-jwt-without-keys"
    ),
    pytest.param(
        {**POLL, "jwks": {"keys": [RSA_JWK]}, "jwks_uri": JWKS_URI}, "jwks", None, id="jwks-and-jwks-uri"
    ),
    pytest.param(
        {**POLL, "jwks": {"keys": [{**RSA_JWK, "d": "AQAB"}]}}, "jwks", None, id="jwks-with-private-key"
    ),
    pytest.param({**POLL, "jwks": [RSA_JWK]}, "jwks", None, id="jwks-not-a-jwk-set"),
    pytest.param(
        {**POLL, **PKJWT, "jwks_uri": "http://keys.example.org/"}, "jwks_uri", None, id="http-jwks-uri"
    ),
    # REG-04: never none, never symmetric, only supported algorithms.
    *(
        pytest.param(
            {**POLL, "jwks": {"keys": [RSA_JWK]}, REQUEST_ALG: alg},
            REQUEST_ALG,
            None,
            id=f"REG-04-request-alg-{alg}",
        )
        for alg in ("none", "HS256", "RS1")
    ),
    # REG-04: an ES256 signature cannot be checked with an RSA key.
    pytest.param(
        {**POLL, "jwks": {"keys": [RSA_JWK]}, REQUEST_ALG: "ES256"},
        REQUEST_ALG,
        None,
        id="REG-04-request-alg-without-its-key",
    ),
    *(
        pytest.param(
            {**POLL, **PKJWT, "jwks_uri": JWKS_URI, ASSERTION_ALG: alg},
            ASSERTION_ALG,
            None,
            id=f"assertion-alg-{alg}",
        )
        for alg in ("HS256", "none")
    ),
    pytest.param({**POLL, ASSERTION_ALG: "PS256"}, ASSERTION_ALG, None, id="assertion-alg-without-keys"),
    pytest.param({**POLL, "subject_type": "anonymous"}, "subject_type", None, id="subject-type-unknown"),
    # REG-06, DISC-09: keys by value give no sector.
    pytest.param(
        {**POLL, **PKJWT, "jwks": {"keys": [RSA_JWK]}, "subject_type": "pairwise"},
        "subject_type",
        None,
        id="REG-06-DISC-09-pairwise-poll-without-jwks-uri",
    ),
    *(
        pytest.param({**POLL, ID_TOKEN_ALG: alg}, ID_TOKEN_ALG, None, id=f"id-token-alg-{alg}")
        for alg in ("PS256", "HS256", "none")
    ),
    # REG-09: the FAPI suite asks for it; refused while no trusted TLS proxy is configured (RFC 8705
    # §3.4; accepted with one: test_registration_mtls.py).
    pytest.param(
        {**POLL, "tls_client_certificate_bound_access_tokens": True},
        "tls_client_certificate_bound_access_tokens",
        None,
        id="REG-09-certificate-bound-tokens",
    ),
    *(
        pytest.param(
            {**POLL, USER_CODE: value},
            USER_CODE,
            None,
            id=f"REG-05-user-code-parameter-{type(value).__name__}-{value}",
        )
        for value in ("true", 1, "yes")
    ),
    *(
        pytest.param({**POLL, "client_name": name}, "client_name", None, id=f"client-name-{label}")
        for label, name in (("too-long", "x" * 256), ("number", 42), ("array", ["Teller"]))
    ),
    *(
        pytest.param({**POLL, "scope": scope}, "scope", None, id=f"scope-{label}")
        for label, scope in (("unknown", "openid admin"), ("array", ["openid"]))
    ),
    pytest.param(
        {**POLL, "software_statement": "eyJhbGciOiJSUzI1NiJ9.e30.c2ln"},
        "software_statement",
        "invalid_software_statement",
        id="software-statement",
    ),
    *(
        pytest.param({**POLL, field: value}, field, None, id=f"informational-{field}")
        for field, value in (
            ("contacts", "ops@example.org"),
            ("logo_uri", "javascript:alert(1)"),
            ("client_uri", 7),
        )
    ),
]


@pytest.mark.django_db
@pytest.mark.parametrize("metadata, field, error", REFUSED_METADATA)
def test_bad_metadata_is_refused_naming_the_field(client, open_registration, metadata, field, error):
    assert_refused(register(client, metadata), field, error=error or "invalid_client_metadata")
    assert not get_application_model().objects.exists()


@pytest.mark.django_db
def test_delivery_mode_not_offered_is_refused(client, open_registration, ciba_settings):
    # REG-11: an OP that removes push from DELIVERY_MODES (FAPI-CIBA) refuses push clients.
    ciba_settings.set(DELIVERY_MODES=["poll", "ping"])
    assert_refused(register(client, PUSH), "backchannel_token_delivery_mode")


@pytest.mark.django_db
def test_private_key_jwt_on_an_op_without_an_rsa_key_is_refused(client, open_registration, rsa_jwk):
    # DOT would sign this client's ID tokens HS256 with a secret the client never receives.
    from django.test import override_settings

    metadata = {**POLL, "token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [rsa_jwk]}}
    provider = {
        key: value for key, value in settings.OAUTH2_PROVIDER.items() if key != "OIDC_RSA_PRIVATE_KEY"
    }
    with override_settings(OAUTH2_PROVIDER=provider):
        body = assert_refused(register(client, metadata), "token_endpoint_auth_method")
    assert "RS256" in body["error_description"]
    assert registered(client, metadata)["token_endpoint_auth_method"] == "private_key_jwt"


@pytest.mark.django_db
def test_request_signing_alg_may_come_before_the_keys(client, open_registration):
    # REG-04: the keys may follow with an RFC 7592 update; until then request_object refuses the
    # client's requests (test_registration_examples completes such a client's flow).
    metadata = {**POLL, "backchannel_authentication_request_signing_alg": "PS256"}
    body = registered(client, metadata)
    assert body["backchannel_authentication_request_signing_alg"] == "PS256"
    ciba = CibaClient.objects.get(application__client_id=body["client_id"])
    assert ciba.request_signing_alg == "PS256" and not ciba.has_keys


@pytest.mark.django_db
def test_user_code_parameter_is_granted_false_when_the_op_has_no_user_codes(client, open_registration):
    # REG-05, RFC 7591 §3.2.1: not refused; registered and answered as false.
    body = registered(client, {**POLL, "backchannel_user_code_parameter": True})
    assert body["backchannel_user_code_parameter"] is False
    assert CibaClient.objects.get(application__client_id=body["client_id"]).user_code_parameter is False


@pytest.mark.django_db
def test_subject_type_not_offered_is_refused(client, open_registration, ciba_settings):
    ciba_settings.set(SUBJECT_TYPES_SUPPORTED=["public"])
    assert_refused(
        register(client, {**POLL, "jwks_uri": JWKS_URI, "subject_type": "pairwise"}), "subject_type"
    )


@pytest.mark.django_db
def test_pairwise_push_client_sector_is_its_notification_endpoint_host(client, open_registration):
    # REG-06
    body = registered(client, {**PUSH, "subject_type": "pairwise"})
    assert CibaClient.objects.get(application__client_id=body["client_id"]).sector_identifier == (
        "client.example.org"
    )


@pytest.mark.django_db
def test_id_token_signed_response_alg_rs256_is_accepted(client, open_registration):
    body = registered(client, {**POLL, "id_token_signed_response_alg": "RS256"})
    assert body["id_token_signed_response_alg"] == "RS256"


# --------------------------------------------------------------------------------------------
# sector_identifier_uri (REG-06): fetched at registration


@pytest.fixture
def sector_document(monkeypatch):
    """Serve SECTOR_URI from ``documents`` instead of the network; record what was fetched."""
    documents = {}
    fetched = []

    def get_document(url, *, max_bytes, accept="application/json"):
        fetched.append((url, max_bytes))
        if url not in documents:
            raise outbound.OutboundError("GET https://sector.client.example.org answered HTTP 404.")
        return documents[url]

    monkeypatch.setattr("django_ciba.core.outbound.get_document", get_document)
    return documents, fetched


@pytest.mark.django_db
def test_sector_identifier_uri_listing_the_jwks_uri_is_accepted(client, open_registration, sector_document):
    documents, fetched = sector_document
    documents[SECTOR_URI] = json.dumps([JWKS_URI, "https://other.client.example.org/jwks"]).encode()
    metadata = {
        **POLL,
        "token_endpoint_auth_method": "private_key_jwt",
        "jwks_uri": JWKS_URI,
        "subject_type": "pairwise",
        "sector_identifier_uri": SECTOR_URI,
    }
    body = registered(client, metadata)
    assert fetched == [(SECTOR_URI, 65536)]  # JWKS_MAX_BYTES
    assert body["sector_identifier_uri"] == SECTOR_URI
    ciba = CibaClient.objects.get(application__client_id=body["client_id"])
    assert ciba.sector_identifier == "sector.client.example.org"


@pytest.mark.django_db
def test_sector_identifier_uri_not_listing_the_jwks_uri_is_refused(
    client, open_registration, sector_document
):
    # REG-06
    documents, _ = sector_document
    documents[SECTOR_URI] = json.dumps(["https://other.client.example.org/jwks"]).encode()
    metadata = {
        **POLL,
        "token_endpoint_auth_method": "private_key_jwt",
        "jwks_uri": JWKS_URI,
        "subject_type": "pairwise",
        "sector_identifier_uri": SECTOR_URI,
    }
    assert_refused(register(client, metadata), "sector_identifier_uri")
    assert not CibaClient.objects.exists()


@pytest.mark.django_db
def test_push_sector_identifier_uri_must_list_the_notification_endpoint(
    client, open_registration, sector_document
):
    # REG-06: for push the listed URL is the notification endpoint.
    documents, _ = sector_document
    metadata = {**PUSH, "subject_type": "pairwise", "sector_identifier_uri": SECTOR_URI}
    documents[SECTOR_URI] = json.dumps([JWKS_URI]).encode()
    assert_refused(register(client, metadata), "sector_identifier_uri")
    documents[SECTOR_URI] = json.dumps([NOTIFY]).encode()
    body = registered(client, metadata)
    assert CibaClient.objects.get(application__client_id=body["client_id"]).sector_identifier == (
        "sector.client.example.org"
    )


@pytest.mark.django_db
def test_sector_identifier_uri_of_a_client_using_no_url_is_refused(
    client, open_registration, sector_document
):
    # REG-06, OIDC Core §8.1: a secret-based poll client has no URL the document could list, so
    # naming any sector_identifier_uri would hand it that sector's subjects.
    documents, fetched = sector_document
    documents[SECTOR_URI] = json.dumps(["https://client.example.org/"]).encode()
    body = assert_refused(
        register(client, {**POLL, "subject_type": "pairwise", "sector_identifier_uri": SECTOR_URI}),
        "sector_identifier_uri",
    )
    assert "private_key_jwt" in body["error_description"]
    assert fetched == [] and not CibaClient.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("document", [None, b"not json", b'{"uris": []}', b"[1, 2]"])
def test_unusable_sector_identifier_document_is_refused(client, open_registration, sector_document, document):
    documents, _ = sector_document
    if document is not None:
        documents[SECTOR_URI] = document
    metadata = {
        **POLL,
        "token_endpoint_auth_method": "private_key_jwt",
        "jwks_uri": JWKS_URI,
        "subject_type": "pairwise",
        "sector_identifier_uri": SECTOR_URI,
    }
    assert_refused(register(client, metadata), "sector_identifier_uri")


@pytest.mark.django_db
def test_http_sector_identifier_uri_is_refused_without_fetching(client, open_registration, sector_document):
    _, fetched = sector_document
    metadata = {**POLL, "subject_type": "pairwise", "sector_identifier_uri": "http://sector.example.org/"}
    assert_refused(register(client, metadata), "sector_identifier_uri")
    assert fetched == []


# --------------------------------------------------------------------------------------------
# Malformed requests: 400 invalid_client_metadata, never a 500


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body, content_type",
    [
        (b"{not json", JSON),
        (b"[]", JSON),
        (b'"poll"', JSON),
        (b"null", JSON),
        (b"", JSON),
        (b"\xff\xfe{}", JSON),
        (b'{"a": 1, "a": 2}', JSON),
        (b'{"backchannel_token_delivery_mode": NaN}', JSON),
        (b"[" * 50000 + b"]" * 50000, JSON),
        (json.dumps(POLL).encode(), "application/x-www-form-urlencoded"),
        (json.dumps(POLL).encode(), "text/plain"),
        (json.dumps(POLL).encode(), "application/json; charset=latin-1"),
        (b'{"client_name": "' + b"x" * MAX_BODY_BYTES + b'"}', JSON),
    ],
)
def test_malformed_body_is_invalid_client_metadata(client, open_registration, body, content_type):
    response = client.post(REGISTER, data=body, content_type=content_type)
    assert response.status_code == 400, response.content
    assert response["Content-Type"] == JSON
    assert response.json()["error"] == "invalid_client_metadata"


@pytest.mark.django_db
def test_json_with_charset_utf8_is_accepted(client, open_registration):
    response = client.post(REGISTER, data=json.dumps(POLL), content_type="application/json; charset=UTF-8")
    assert response.status_code == 201, response.content


@pytest.mark.django_db
@pytest.mark.parametrize("method", ["get", "put", "delete", "patch"])
def test_other_methods_on_the_registration_endpoint_are_405_json(client, open_registration, method):
    response = getattr(client, method)(REGISTER)
    assert response.status_code == 405
    assert response["Content-Type"] == JSON and response.json()["error"]
    assert response["Allow"] == "POST"


# --------------------------------------------------------------------------------------------
# Initial access tokens (RFC 7591 §3)


@pytest.mark.django_db
def test_registration_needs_an_initial_access_token_by_default(client):
    assert_invalid_token(register(client, POLL))
    assert not get_application_model().objects.exists()


@pytest.mark.django_db
def test_a_valid_initial_access_token_registers_and_spends_one_use(client):
    issued = initial_token("--label", "partner", "--uses", "2")
    registered(client, POLL, token=issued["initial_access_token"])
    assert InitialAccessToken.objects.get().uses_left == 1


@pytest.mark.django_db
def test_used_up_initial_access_token_is_refused(client):
    token = initial_token("--uses", "1")["initial_access_token"]
    registered(client, POLL, token=token)
    assert InitialAccessToken.objects.get().uses_left == 0
    assert_invalid_token(register(client, POLL, token=token))
    assert get_application_model().objects.count() == 1


@pytest.mark.django_db
def test_expired_initial_access_token_is_refused(client):
    token = initial_token("--expires-in", "60")["initial_access_token"]
    InitialAccessToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert_invalid_token(register(client, POLL, token=token))


@pytest.mark.django_db
def test_unlimited_initial_access_token_stays_unlimited(client):
    token = initial_token()["initial_access_token"]
    registered(client, POLL, token=token)
    registered(client, POLL, token=token)
    row = InitialAccessToken.objects.get()
    assert row.uses_left is None and row.expires_at is None


@pytest.mark.django_db
@pytest.mark.parametrize("header", ["Bearer not-a-known-token", "Basic dXNlcjpwdw==", "Bearer", "Bearer a b"])
def test_wrong_initial_access_token_is_refused(client, header):
    initial_token()
    response = client.post(REGISTER, data=json.dumps(POLL), content_type=JSON, HTTP_AUTHORIZATION=header)
    assert_invalid_token(response)


@pytest.mark.django_db
def test_refused_registration_does_not_spend_the_token(client):
    token = initial_token("--uses", "1")["initial_access_token"]
    assert_refused(register(client, {**POLL, "grant_types": []}, token=token), "grant_types")
    assert InitialAccessToken.objects.get().uses_left == 1
    registered(client, POLL, token=token)


@pytest.mark.django_db
def test_token_is_checked_before_the_body(client):
    # Without a token, even a malformed body is only told 401.
    response = client.post(REGISTER, data=b"{not json", content_type=JSON)
    assert_invalid_token(response)


@pytest.mark.django_db
def test_registration_open_needs_no_token(client, open_registration):
    registered(client, POLL)


@pytest.mark.django_db
def test_initial_access_token_command_stores_only_the_hash(client):
    issued = initial_token("--label", "onboarding", "--expires-in", "3600", "--uses", "3")
    token = issued["initial_access_token"]
    assert len(token) >= 43 and issued["label"] == "onboarding" and issued["uses"] == 3
    row = InitialAccessToken.objects.get()
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert row.label == "onboarding" and row.uses_left == 3
    assert timedelta(seconds=3590) < row.expires_at - timezone.now() <= timedelta(seconds=3600)
    assert token not in str(row)


@pytest.mark.django_db
@pytest.mark.parametrize("args", [["--uses", "0"], ["--expires-in", "0"], ["--label", "x" * 256]])
def test_initial_access_token_command_refuses_bad_arguments(args):
    with pytest.raises(CommandError):
        initial_token(*args)
    assert not InitialAccessToken.objects.exists()


# --------------------------------------------------------------------------------------------
# RFC 7592: the client configuration endpoint


@pytest.fixture
def poll_registration(client, open_registration):
    return registered(client, {**POLL, "client_name": "Teller", "contacts": ["ops@client.example.org"]})


@pytest.mark.django_db
def test_get_returns_the_current_metadata_without_the_secret(client, poll_registration):
    body = poll_registration
    response = manage(client, "get", body, body["registration_access_token"])
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    read = response.json()
    assert "client_secret" not in read
    expected = {key: value for key, value in body.items() if key != "client_secret"}
    assert read == expected


@pytest.mark.django_db
def test_get_with_a_wrong_or_missing_token_is_401(client, poll_registration):
    assert_invalid_token(manage(client, "get", poll_registration, "wrong-token"))
    assert_invalid_token(manage(client, "get", poll_registration, None))
    response = client.get(
        path_of(poll_registration), HTTP_AUTHORIZATION=f"Basic {poll_registration['client_secret']}"
    )
    assert_invalid_token(response)


@pytest.mark.django_db
def test_another_clients_token_is_401(client, poll_registration):
    other = registered(client, POLL)
    assert_invalid_token(manage(client, "get", poll_registration, other["registration_access_token"]))
    assert_invalid_token(manage(client, "delete", poll_registration, other["registration_access_token"]))
    assert get_application_model().objects.filter(client_id=poll_registration["client_id"]).exists()


@pytest.mark.django_db
def test_unknown_client_id_is_the_same_401(client, poll_registration):
    token = poll_registration["registration_access_token"]
    response = client.get("/o/register/no-such-client", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert_invalid_token(response)
    assert response.json() == manage(client, "get", poll_registration, "wrong").json()


@pytest.mark.django_db
def test_manually_created_client_has_no_registration_token(client):
    app, _ = create_ciba_client("Manual")
    response = client.get(f"/o/register/{app.client_id}", HTTP_AUTHORIZATION="Bearer anything")
    assert_invalid_token(response)
    assert CibaClient.objects.get(application=app).registration_access_token_hash == ""


@pytest.mark.django_db
def test_put_replaces_the_metadata(client, poll_registration):
    body = poll_registration
    token = body["registration_access_token"]
    update = {**PING, "client_id": body["client_id"], "scope": "openid profile"}
    response = manage(client, "put", body, token, data=update)
    assert response.status_code == 200, response.content
    assert response["Cache-Control"] == "no-store"
    updated = response.json()
    assert updated["backchannel_token_delivery_mode"] == "ping"
    assert updated["backchannel_client_notification_endpoint"] == NOTIFY
    assert updated["scope"] == "openid profile"
    # Left out: reset to defaults (RFC 7592 §2.2).
    assert "client_name" not in updated and "contacts" not in updated
    assert "client_secret" not in updated  # still the same secret, not shown again
    assert updated["registration_access_token"] == token
    ciba = CibaClient.objects.select_related("application").get(application__client_id=body["client_id"])
    assert ciba.delivery_mode == "ping" and ciba.notification_endpoint == NOTIFY
    assert ciba.application.name == "" and ciba.metadata.get("contacts") is None
    assert check_password(body["client_secret"], ciba.application.client_secret)


@pytest.mark.django_db
def test_put_of_what_get_returned_is_accepted(client, poll_registration):
    body = poll_registration
    token = body["registration_access_token"]
    read = manage(client, "get", body, token).json()
    response = manage(client, "put", body, token, data={**read, "client_secret": body["client_secret"]})
    assert response.status_code == 200, response.content
    assert response.json() == read


@pytest.mark.django_db
def test_put_needs_the_clients_own_client_id(client, poll_registration):
    body = poll_registration
    token = body["registration_access_token"]
    assert_refused(manage(client, "put", body, token, data=POLL), "client_id")
    assert_refused(manage(client, "put", body, token, data={**POLL, "client_id": "other"}), "client_id")


@pytest.mark.django_db
def test_put_with_a_wrong_client_secret_is_refused(client, poll_registration):
    body = poll_registration
    data = {**POLL, "client_id": body["client_id"], "client_secret": "not-the-secret"}
    assert_refused(manage(client, "put", body, body["registration_access_token"], data=data), "client_secret")


@pytest.mark.django_db
def test_put_with_invalid_metadata_changes_nothing(client, poll_registration):
    body = poll_registration
    data = {**POLL, "client_id": body["client_id"], "backchannel_token_delivery_mode": "push"}
    response = manage(client, "put", body, body["registration_access_token"], data=data)
    assert_refused(response, "backchannel_client_notification_endpoint")  # REG-02
    ciba = CibaClient.objects.select_related("application").get(application__client_id=body["client_id"])
    assert ciba.delivery_mode == "poll" and ciba.application.name == "Teller"


@pytest.mark.django_db
def test_put_with_a_malformed_body_is_400(client, poll_registration):
    response = client.put(
        path_of(poll_registration),
        data=b"[1,",
        content_type=JSON,
        HTTP_AUTHORIZATION=f"Bearer {poll_registration['registration_access_token']}",
    )
    assert response.status_code == 400 and response.json()["error"] == "invalid_client_metadata"


@pytest.mark.django_db
def test_put_switching_authentication_methods_retires_and_issues_secrets(client, poll_registration):
    body = poll_registration
    token = body["registration_access_token"]
    keyed = {
        **POLL,
        "client_id": body["client_id"],
        "token_endpoint_auth_method": "private_key_jwt",
        "jwks_uri": JWKS_URI,
    }
    response = manage(client, "put", body, token, data=keyed)
    assert response.status_code == 200, response.content
    assert "client_secret" not in response.json()
    app = get_application_model().objects.get(client_id=body["client_id"])
    assert not check_password(body["client_secret"], app.client_secret)  # the old secret is retired
    response = manage(client, "put", body, token, data={**POLL, "client_id": body["client_id"]})
    assert response.status_code == 200, response.content
    new_secret = response.json()["client_secret"]
    assert response.json()["client_secret_expires_at"] == 0
    app.refresh_from_db()
    assert new_secret != body["client_secret"] and check_password(new_secret, app.client_secret)


@pytest.mark.django_db
def test_delete_removes_the_application(client, poll_registration):
    body = poll_registration
    token = body["registration_access_token"]
    response = manage(client, "delete", body, token)
    assert response.status_code == 204 and response.content == b""
    assert not get_application_model().objects.filter(client_id=body["client_id"]).exists()
    assert not CibaClient.objects.exists()
    assert_invalid_token(manage(client, "get", body, token))
    assert_invalid_token(manage(client, "delete", body, token))


@pytest.mark.django_db
def test_management_endpoint_refuses_post_with_405_json(client, poll_registration):
    response = manage(client, "post", poll_registration, poll_registration["registration_access_token"])
    assert response.status_code == 405 and response.json()["error"]
    assert response["Allow"] == "GET, PUT, DELETE"


@pytest.mark.django_db
def test_credentials_are_never_logged(client, caplog, ciba_settings):
    ciba_settings.set(REGISTRATION_OPEN=False)
    caplog.set_level(logging.DEBUG)
    initial = initial_token("--uses", "5")["initial_access_token"]
    body = registered(client, POLL, token=initial)
    token = body["registration_access_token"]
    manage(client, "get", body, token)
    manage(client, "put", body, token, data={**POLL, "client_id": body["client_id"]})
    manage(client, "delete", body, token)
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "registration" in logged.lower() or body["client_id"] in logged
    for secret in (initial, token, body["client_secret"]):
        assert secret not in logged
    assert not re.search(r"[0-9a-f]{64}", logged)  # nor their hashes
