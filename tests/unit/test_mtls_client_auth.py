"""Mutual-TLS client authentication behind a TLS-terminating proxy (RFC 8705 §2, BC-03, TOK-02,
FAPI-12: tls_client_auth and self_signed_tls_client_auth at both endpoints).

The proxy (10.0.0.5, trusted) passes the client certificate in ``Client-Cert`` and its verdict on
the chain in ``X-SSL-Client-Verify``. ``tls_client_auth`` (§2.1) needs a verified chain and the
registered subject DN or SAN; ``self_signed_tls_client_auth`` (§2.2) needs the certificate's key
among the client's registered keys. Both endpoints use the same validator: ``endpoint`` is
parametrized as in test_private_key_jwt.py (at the token endpoint, ``authorization_pending`` proves
that the client authenticated; a failure is ``invalid_client`` with 401, AERR-09).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest
from cryptography.x509.oid import NameOID
from django.contrib.auth import get_user_model
from oauth2_provider.models import AccessToken, RefreshToken
from oauthlib.common import Request as OAuthlibRequest

from django_ciba.approval import decisions
from django_ciba.core.constants import CIBA_GRANT_TYPE
from django_ciba.core.identifiers import hash_auth_req_id, new_auth_req_id
from django_ciba.models import AuthenticationRequest, AuthMethod
from django_ciba.testing import (
    FORM,
    basic_auth,
    client_assertion,
    create_auth_request,
    create_ciba_client,
    make_client_key,
)
from django_ciba.validators import OAuth2Validator
from tests.unit.tls_certificates import (
    MTLS_SETTINGS,
    make_certificate,
    make_key,
    mtls_settings,
    proxy_meta,
    rfc9440,
)


pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _trusted_proxy():
    with mtls_settings():
        yield


BC_URL = "/o/bc-authorize"
TOKEN_URL = "/o/token/"
DN = "CN=teller,O=Example Bank,C=SE"
SUBJECT = [
    (NameOID.COUNTRY_NAME, "SE"),
    (NameOID.ORGANIZATION_NAME, "Example Bank"),
    (NameOID.COMMON_NAME, "teller"),
]
DER, KEY = make_certificate(
    subject=SUBJECT,
    dns=("teller.example.com",),
    uris=("https://teller.example.com/",),
    ips=("192.0.2.10",),
    emails=("teller@example.com",),
)
STRANGER_DER, _ = make_certificate(subject=[(NameOID.COMMON_NAME, "stranger")])
EC_KEY, EC_JWK = make_client_key("ES256", kid="tls-key")
SELF_SIGNED_DER, _ = make_certificate(EC_KEY, subject=[(NameOID.COMMON_NAME, "self")])


def post(http: Any, url: str, data: dict[str, str], **meta: Any) -> Any:
    return http.post(url, data=urlencode(data), content_type=FORM, **meta)


def assert_invalid_client(response: Any) -> None:
    assert response.status_code == 401, response.content
    assert response.json()["error"] == "invalid_client"


def pki_client(**fields: Any) -> tuple[Any, str]:
    fields = fields or {"tls_client_auth_subject_dn": DN}
    return create_ciba_client(
        "mTLS RP", auth_method=AuthMethod.TLS_CLIENT_AUTH, scope="openid offline_access", **fields
    )


def self_signed_client() -> tuple[Any, str]:
    return create_ciba_client(
        "Self-signed RP",
        auth_method=AuthMethod.SELF_SIGNED_TLS_CLIENT_AUTH,
        scope="openid offline_access",
        jwks={"keys": [EC_JWK]},
    )


class Endpoint:
    def __init__(self, http: Any, name: str) -> None:
        self.http, self.name = http, name

    def send(self, app: Any, der: bytes | None, fields: dict[str, str] | None = None, **meta: Any) -> Any:
        form = {"client_id": app.client_id, **(fields or {})}
        headers = {**proxy_meta(der), **meta}
        if self.name == "backchannel":
            return post(self.http, BC_URL, {"scope": "openid", "login_hint": "alice", **form}, **headers)
        auth_req_id = new_auth_req_id()
        user = get_user_model().objects.get(username="alice")
        create_auth_request(app, user, auth_req_id_hash=hash_auth_req_id(auth_req_id))
        form.update(grant_type=CIBA_GRANT_TYPE, auth_req_id=auth_req_id)
        return post(self.http, TOKEN_URL, form, **headers)

    def assert_accepted(self, response: Any) -> None:
        if self.name == "backchannel":
            assert response.status_code == 200, response.content
        else:
            assert response.status_code == 400, response.content
            assert response.json()["error"] == "authorization_pending"


@pytest.fixture(params=["backchannel", "token"])
def endpoint(request, client, user):
    return Endpoint(client, request.param)


@pytest.mark.parametrize(
    "fields",
    [
        {"tls_client_auth_subject_dn": DN},
        {"tls_client_auth_subject_dn": "cn=Teller,o=example bank,c=se"},
        {"tls_client_auth_san_dns": "TELLER.example.com"},
        {"tls_client_auth_san_uri": "https://teller.example.com/"},
        {"tls_client_auth_san_ip": "192.0.2.10"},
        {"tls_client_auth_san_email": "teller@EXAMPLE.com"},
    ],
    ids=["dn", "dn-rfc4514-semantics", "san-dns", "san-uri", "san-ip", "san-email"],
)
def test_rfc8705_2_1_tls_client_auth_with_the_registered_value(endpoint, fields):
    app, _ = pki_client(**fields)
    endpoint.assert_accepted(endpoint.send(app, DER))


@pytest.mark.parametrize(
    "fields",
    [
        {"tls_client_auth_subject_dn": "CN=teller,O=Other Bank,C=SE"},
        {"tls_client_auth_san_dns": "other.example.com"},
        {"tls_client_auth_san_uri": "https://teller.example.com/other"},
        {"tls_client_auth_san_ip": "192.0.2.11"},
        {"tls_client_auth_san_email": "Teller@example.com"},  # the local part keeps its case
    ],
)
def test_rfc8705_2_1_a_certificate_without_the_registered_value_is_invalid_client(endpoint, fields):
    app, _ = pki_client(**fields)
    assert_invalid_client(endpoint.send(app, DER))


def test_rfc8705_2_1_the_chain_must_be_verified_by_the_proxy(endpoint):
    app, _ = pki_client()
    endpoint.assert_accepted(endpoint.send(app, DER))
    assert_invalid_client(endpoint.send(app, DER, HTTP_X_SSL_CLIENT_VERIFY="FAILED:unable to verify"))


def test_rfc8705_2_no_certificate_or_another_certificate_is_invalid_client(endpoint):
    app, _ = pki_client()
    endpoint.assert_accepted(endpoint.send(app, DER))
    assert_invalid_client(endpoint.send(app, None))
    assert_invalid_client(endpoint.send(app, STRANGER_DER))
    assert_invalid_client(endpoint.send(app, None, HTTP_CLIENT_CERT=":garbage:"))


def test_rfc8705_2_a_certificate_header_not_from_a_trusted_proxy_is_ignored(endpoint):
    """The client cannot state its own certificate: only TRUSTED_PROXIES may (RFC 8705 §2)."""
    app, _ = pki_client()
    endpoint.assert_accepted(endpoint.send(app, DER))
    assert_invalid_client(endpoint.send(app, DER, REMOTE_ADDR="198.51.100.1"))


def test_rfc6749_2_3_certificate_plus_a_secret_or_assertion_is_invalid_client(endpoint):
    """One authentication method per request (RFC 6749 §2.3)."""
    app, secret = pki_client()
    endpoint.assert_accepted(endpoint.send(app, DER))
    assert_invalid_client(endpoint.send(app, DER, HTTP_AUTHORIZATION=basic_auth(app.client_id, secret)))
    assert_invalid_client(endpoint.send(app, DER, {"client_secret": secret}))
    key, jwk = make_client_key("ES256")
    assertion = client_assertion(app, key, audience="http://testserver/o", alg="ES256", kid=None)
    assert_invalid_client(endpoint.send(app, DER, assertion))


def test_reg07_an_mtls_client_cannot_use_its_secret_instead(endpoint):
    """The registered method holds: a secret alone does not authenticate an mTLS client."""
    app, secret = pki_client()
    if endpoint.name == "backchannel":
        response = post(
            endpoint.http,
            BC_URL,
            {"scope": "openid", "login_hint": "alice"},
            HTTP_AUTHORIZATION=basic_auth(app.client_id, secret),
        )
        assert_invalid_client(response)
    assert_invalid_client(endpoint.send(app, None, {"client_secret": secret}))


def test_rfc8705_2_2_self_signed_certificate_with_a_registered_key(endpoint):
    """The chain is not checked: no verification by the proxy is needed."""
    app, _ = self_signed_client()
    endpoint.assert_accepted(
        endpoint.send(app, SELF_SIGNED_DER, HTTP_X_SSL_CLIENT_VERIFY="FAILED:self signed")
    )
    assert_invalid_client(endpoint.send(app, STRANGER_DER))
    assert_invalid_client(endpoint.send(app, make_certificate(make_key())[0]))
    assert_invalid_client(endpoint.send(app, None))


def test_rfc8705_2_2_self_signed_with_keys_from_jwks_uri(client, user, monkeypatch):
    from django_ciba.clients import keys as client_keys

    app, _ = create_ciba_client(
        "Self-signed RP (jwks_uri)",
        auth_method=AuthMethod.SELF_SIGNED_TLS_CLIENT_AUTH,
        jwks_uri="https://rp.example.com/jwks.json",
    )
    fetched: list[bool] = []

    def fetch(url: str, *, refresh: bool = False) -> list[Any]:
        fetched.append(refresh)
        return client_keys.parse_jwks({"keys": [EC_JWK]}, strict=False)

    monkeypatch.setattr(client_keys, "fetch_jwks", fetch)
    endpoint = Endpoint(client, "backchannel")
    endpoint.assert_accepted(endpoint.send(app, SELF_SIGNED_DER))
    assert fetched == [False]
    assert_invalid_client(endpoint.send(app, STRANGER_DER))
    assert fetched == [False, False, True]  # one refetch for an unknown key (rotation)


def test_tok02_complete_flow_refresh_and_client_credentials_with_tls_client_auth(client, user):
    app, secret = pki_client()
    meta = proxy_meta(DER)
    started = post(
        client,
        BC_URL,
        {"scope": "openid offline_access", "login_hint": "alice", "client_id": app.client_id},
        **meta,
    )
    auth_req_id = started.json()["auth_req_id"]
    decisions.approve(AuthenticationRequest.objects.by_auth_req_id(auth_req_id).get(), user=user)
    grant = {"grant_type": CIBA_GRANT_TYPE, "auth_req_id": auth_req_id, "client_id": app.client_id}
    assert_invalid_client(post(client, TOKEN_URL, grant, **proxy_meta(STRANGER_DER)))
    tokens = post(client, TOKEN_URL, grant, **meta)
    assert tokens.status_code == 200, tokens.content
    refresh = {
        "grant_type": "refresh_token",
        "refresh_token": tokens.json()["refresh_token"],
        "client_id": app.client_id,
    }
    assert_invalid_client(post(client, TOKEN_URL, refresh))
    assert_invalid_client(
        post(client, TOKEN_URL, refresh, HTTP_AUTHORIZATION=basic_auth(app.client_id, secret))
    )
    assert_invalid_client(post(client, TOKEN_URL, refresh, **proxy_meta(STRANGER_DER)))
    response = post(client, TOKEN_URL, refresh, **meta)
    assert response.status_code == 200, response.content
    assert RefreshToken.objects.filter(application=app, revoked__isnull=True).count() == 1
    credentials = {"grant_type": "client_credentials", "scope": "openid", "client_id": app.client_id}
    assert_invalid_client(post(client, TOKEN_URL, credentials))
    assert post(client, TOKEN_URL, credentials, **meta).status_code == 200
    assert AccessToken.objects.filter(application=app).count() == 2


def test_an_mtls_client_is_never_treated_as_public(client):
    """DOT lets public clients refresh without authentication; an RFC 8705 client never is one."""
    app, _ = pki_client()
    app.client_type = type(app).CLIENT_PUBLIC
    app.save()
    refresh = {"grant_type": "refresh_token", "refresh_token": "unknown", "client_id": app.client_id}
    assert_invalid_client(post(client, TOKEN_URL, refresh))
    validator = OAuth2Validator()
    request = OAuthlibRequest("https://op.example/o/token/", body=urlencode(refresh), headers={})
    assert validator.client_authentication_required(request) is True
    assert validator.authenticate_client_id(app.client_id, OAuthlibRequest("https://op.example/")) is False


def test_a_disabled_mtls_registration_still_needs_its_certificate(client):
    """REG-07: the registered method holds whether the registration is enabled or not."""
    app, secret = pki_client()
    app.ciba.enabled = False
    app.ciba.save()
    credentials = {"grant_type": "client_credentials", "scope": "openid", "client_id": app.client_id}
    assert_invalid_client(
        post(client, TOKEN_URL, credentials, HTTP_AUTHORIZATION=basic_auth(app.client_id, secret))
    )


def test_the_certificate_is_kept_on_the_oauthlib_request_for_token_binding():
    """request.ciba_certificate: the token binding (RFC 8705 §3) reads it there."""
    app, _ = pki_client()
    headers = {
        "REMOTE_ADDR": "10.0.0.5",
        "HTTP_CLIENT_CERT": rfc9440(DER),
        "HTTP_X_SSL_CLIENT_VERIFY": "SUCCESS",
    }
    request = OAuthlibRequest(
        "https://op.example/o/token/",
        http_method="POST",
        body=urlencode({"client_id": app.client_id}),
        headers=headers,
    )
    assert OAuth2Validator().authenticate_client(request) is True
    assert request.client == app
    assert request.ciba_certificate.der == DER and request.ciba_certificate.verified


def test_failures_are_logged_without_the_certificate(client, caplog):
    app, _ = pki_client()
    with caplog.at_level("INFO", logger="django_ciba.clients.mtls"):
        assert_invalid_client(Endpoint(client, "backchannel").send(app, STRANGER_DER))
    assert "does not carry the registered tls_client_auth_subject_dn" in caplog.text
    assert rfc9440(STRANGER_DER)[1:40] not in caplog.text


def test_a_secret_client_is_not_affected_by_a_presented_certificate(client, user):
    """A client_secret_basic client may come through the mTLS proxy: the certificate is ignored."""
    app, secret = create_ciba_client("Secret RP", scope="openid")
    response = post(
        client,
        BC_URL,
        {"scope": "openid", "login_hint": "alice"},
        HTTP_AUTHORIZATION=basic_auth(app.client_id, secret),
        **proxy_meta(STRANGER_DER),
    )
    assert response.status_code == 200, response.content
    assert MTLS_SETTINGS["MTLS"]["TRUSTED_PROXIES"]
