"""Registration of mutual-TLS clients (RFC 8705 §2.1.2, §2.2, §3.4; REG-09): dynamic registration
and ``CibaClient.clean()`` (the admin and the management command) apply the same rules."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest
from cryptography.x509.oid import NameOID
from django.core.exceptions import ValidationError

from django_ciba.core.constants import CIBA_GRANT_TYPE
from django_ciba.models import AuthMethod, CibaClient
from django_ciba.testing import FORM, create_ciba_client, make_client_key
from tests.unit.tls_certificates import VERIFIED_HEADER, make_certificate, proxy_meta


pytestmark = pytest.mark.django_db

REGISTER = "/o/register"
POLL = {"backchannel_token_delivery_mode": "poll", "grant_types": [CIBA_GRANT_TYPE]}
TLS = {**POLL, "token_endpoint_auth_method": "tls_client_auth"}
KEY, JWK = make_client_key("PS256", kid="fapi-key")
SELF_SIGNED = {**POLL, "token_endpoint_auth_method": "self_signed_tls_client_auth", "jwks": {"keys": [JWK]}}
BOUND = "tls_client_certificate_bound_access_tokens"


@pytest.fixture(autouse=True)
def mtls_op(ciba_settings):
    ciba_settings.set(
        REGISTRATION_OPEN=True, MTLS={"TRUSTED_PROXIES": ["10.0.0.0/24"], "VERIFIED_HEADER": VERIFIED_HEADER}
    )
    return ciba_settings


def register(http, metadata):
    return http.post(REGISTER, data=json.dumps(metadata), content_type="application/json")


def assert_refused(response, field):
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["error"] == "invalid_client_metadata"
    assert body["error_description"].startswith(f"{field}:"), body


@pytest.mark.parametrize(
    "name, value, stored",
    [
        ("tls_client_auth_subject_dn", "CN=rp,O=Example,C=SE", "CN=rp,O=Example,C=SE"),
        ("tls_client_auth_san_dns", "RP.example.com", "rp.example.com"),
        ("tls_client_auth_san_uri", "https://rp.example.com/", "https://rp.example.com/"),
        ("tls_client_auth_san_ip", "2001:db8:0:0::1", "2001:db8::1"),
        ("tls_client_auth_san_email", "ops@rp.example.com", "ops@rp.example.com"),
    ],
)
def test_rfc8705_2_1_2_tls_client_auth_with_one_value_is_registered(client, name, value, stored):
    response = register(client, {**TLS, name: value, BOUND: True})
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["token_endpoint_auth_method"] == "tls_client_auth"
    assert body[name] == stored and body[BOUND] is True
    assert "client_secret" not in body  # the certificate is the credential
    ciba = CibaClient.objects.get()
    assert getattr(ciba, name) == stored and ciba.tls_client_certificate_bound_access_tokens


def test_rfc8705_2_1_2_tls_client_auth_needs_exactly_one_value(client):
    assert_refused(register(client, TLS), "token_endpoint_auth_method")
    two = {**TLS, "tls_client_auth_san_dns": "rp.example.com", "tls_client_auth_san_ip": "192.0.2.1"}
    assert_refused(register(client, two), "token_endpoint_auth_method")


@pytest.mark.parametrize(
    "name, value",
    [
        ("tls_client_auth_subject_dn", "not a dn"),
        ("tls_client_auth_subject_dn", "CN=a, O=b"),  # RFC 4514 has no space after the comma
        ("tls_client_auth_subject_dn", ""),
        ("tls_client_auth_san_dns", "bad_name!.example"),
        ("tls_client_auth_san_uri", "relative/path"),
        ("tls_client_auth_san_ip", "999.0.0.1"),
        ("tls_client_auth_san_email", "not-an-address"),
        ("tls_client_auth_san_dns", 42),
        ("tls_client_auth_san_uri", "https://" + "a" * 2000 + ".example"),
    ],
)
def test_rfc8705_2_1_2_bad_values_are_refused_naming_the_field(client, name, value):
    assert_refused(register(client, {**TLS, name: value}), name)


def test_tls_client_auth_values_go_with_tls_client_auth_only(client):
    metadata = {**POLL, "tls_client_auth_san_dns": "rp.example.com"}
    assert_refused(register(client, metadata), "tls_client_auth_san_dns")


def test_tls_client_auth_needs_a_proxy_that_verifies_chains(client, mtls_op):
    """RFC 8705 §2.1: the chain must be validated; with no VERIFIED_HEADER nobody does."""
    mtls_op.set(MTLS={"VERIFIED_HEADER": None})
    assert_refused(
        register(client, {**TLS, "tls_client_auth_san_dns": "rp.example.com"}), "token_endpoint_auth_method"
    )
    assert register(client, SELF_SIGNED).status_code == 201


def test_rfc8705_2_2_self_signed_needs_jwks_or_jwks_uri(client):
    without_keys = {**POLL, "token_endpoint_auth_method": "self_signed_tls_client_auth"}
    assert_refused(register(client, without_keys), "token_endpoint_auth_method")
    response = register(client, SELF_SIGNED)
    assert response.status_code == 201, response.content
    assert response.json()[BOUND] is False


def test_rfc8705_3_4_bound_tokens_flag_must_be_a_boolean(client):
    assert_refused(register(client, {**SELF_SIGNED, BOUND: "yes"}), BOUND)


def test_rfc8705_3_4_bound_tokens_need_a_trusted_proxy(client, mtls_op):
    mtls_op.set(MTLS={"TRUSTED_PROXIES": []})
    assert_refused(register(client, {**POLL, BOUND: True}), BOUND)


def test_reg09_the_fapi_ciba_suite_client_registers_with_self_signed_tls(client):
    metadata = {
        **SELF_SIGNED,
        "backchannel_authentication_request_signing_alg": "PS256",
        BOUND: True,
    }
    response = register(client, metadata)
    assert response.status_code == 201, response.content
    assert response.json()[BOUND] is True


def test_a_registered_tls_client_auth_client_authenticates_with_its_certificate(client, user):
    der, _ = make_certificate(subject=[(NameOID.COMMON_NAME, "rp")], dns=("rp.example.com",))
    body = register(client, {**TLS, "scope": "openid", "tls_client_auth_san_dns": "rp.example.com"}).json()
    form = {"scope": "openid", "login_hint": "alice", "client_id": body["client_id"]}
    response = client.post("/o/bc-authorize", data=urlencode(form), content_type=FORM, **proxy_meta(der))
    assert response.status_code == 200, response.content


@pytest.mark.parametrize(
    "fields, field",
    [
        ({"token_endpoint_auth_method": AuthMethod.TLS_CLIENT_AUTH}, "token_endpoint_auth_method"),
        (
            {
                "token_endpoint_auth_method": AuthMethod.TLS_CLIENT_AUTH,
                "tls_client_auth_san_dns": "a.example",
                "tls_client_auth_san_uri": "https://a.example/",
            },
            "token_endpoint_auth_method",
        ),
        (
            {"token_endpoint_auth_method": AuthMethod.TLS_CLIENT_AUTH, "tls_client_auth_subject_dn": "nope"},
            "tls_client_auth_subject_dn",
        ),
        (
            {"token_endpoint_auth_method": AuthMethod.TLS_CLIENT_AUTH, "tls_client_auth_san_ip": "1.2.3"},
            "tls_client_auth_san_ip",
        ),
        (
            {"token_endpoint_auth_method": AuthMethod.SELF_SIGNED_TLS_CLIENT_AUTH},
            "token_endpoint_auth_method",
        ),
        ({"tls_client_auth_san_dns": "a.example"}, "tls_client_auth_san_dns"),
    ],
)
def test_model_clean_applies_the_same_rules(fields, field):
    """The admin and ciba_create_client run CibaClient.clean(): RFC 8705 §2.1.2, §2.2."""
    app, _ = create_ciba_client("Plain")
    ciba = app.ciba
    for name, value in fields.items():
        setattr(ciba, name, value)
    with pytest.raises(ValidationError) as raised:
        ciba.full_clean()
    assert field in raised.value.message_dict


def test_model_clean_accepts_good_mtls_registrations():
    app, _ = create_ciba_client("Plain")
    ciba = app.ciba
    ciba.token_endpoint_auth_method = AuthMethod.TLS_CLIENT_AUTH
    ciba.tls_client_auth_subject_dn = "CN=rp,O=Example"
    ciba.full_clean()
    ciba.tls_client_auth_subject_dn = ""
    ciba.token_endpoint_auth_method = AuthMethod.SELF_SIGNED_TLS_CLIENT_AUTH
    ciba.jwks = {"keys": [JWK]}
    ciba.full_clean()


@pytest.fixture
def admin_http(client):
    from django.contrib.auth import get_user_model

    client.force_login(get_user_model().objects.create_superuser("root", "root@example.com", "pw"))
    return client


def test_admin_edits_the_mtls_fields_with_the_model_rules(admin_http):
    """The RFC 8705 fields are in the admin form (their own fieldset), checked by CibaClient.clean()."""
    app, _ = create_ciba_client("Teller")
    url = f"/admin/django_ciba/cibaclient/{app.ciba.pk}/change/"
    html = admin_http.get(url).content.decode()
    assert 'name="tls_client_auth_subject_dn"' in html and f'name="{BOUND}"' in html
    assert "Mutual TLS (RFC 8705)" in html
    inline = admin_http.get(f"/admin/oauth2_provider/application/{app.pk}/change/").content.decode()
    assert 'name="ciba-0-tls_client_auth_san_dns"' in inline
    data = {
        "application": app.pk,
        "enabled": "on",
        "delivery_mode": "poll",
        "token_endpoint_auth_method": "tls_client_auth",
        "subject_type": "public",
        BOUND: "on",
    }
    response = admin_http.post(url, data)
    assert response.status_code == 200 and "tls_client_auth needs exactly one of" in response.content.decode()
    response = admin_http.post(url, {**data, "tls_client_auth_subject_dn": "CN=teller,O=Example Bank"})
    assert response.status_code == 302, response.content
    app.ciba.refresh_from_db()
    assert app.ciba.tls_client_auth_subject_dn == "CN=teller,O=Example Bank"
    assert app.ciba.tls_client_certificate_bound_access_tokens is True


def run_create_client(*args: str) -> dict:
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("ciba_create_client", "--name", "Teller", *args, stdout=out)
    return json.loads(out.getvalue())


def test_ciba_create_client_registers_a_tls_client_auth_client(client, user):
    """RFC 8705 §2.1.2 from the command line: --auth-method, one --tls-* value, bound tokens."""
    data = run_create_client(
        "--auth-method", "tls_client_auth", "--tls-san-dns", "rp.example.com", "--certificate-bound-tokens"
    )
    assert "client_secret" not in data
    assert data["tls_client_auth_san_dns"] == "rp.example.com"
    assert data[BOUND] is True
    ciba = CibaClient.objects.get(application__client_id=data["client_id"])
    assert (
        ciba.token_endpoint_auth_method == "tls_client_auth"
        and ciba.tls_client_certificate_bound_access_tokens
    )
    der, _ = make_certificate(subject=[(NameOID.COMMON_NAME, "rp")], dns=("rp.example.com",))
    form = {"scope": "openid", "login_hint": "alice", "client_id": data["client_id"]}
    response = client.post("/o/bc-authorize", data=urlencode(form), content_type=FORM, **proxy_meta(der))
    assert response.status_code == 200, response.content


def test_ciba_create_client_applies_the_mtls_rules():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="tls_client_auth needs exactly one"):
        run_create_client("--auth-method", "tls_client_auth")
    with pytest.raises(CommandError, match="tls_client_auth_subject_dn"):
        run_create_client("--auth-method", "tls_client_auth", "--tls-subject-dn", "not a dn")
    with pytest.raises(CommandError, match="self_signed_tls_client_auth needs jwks"):
        run_create_client("--auth-method", "self_signed_tls_client_auth")
    with pytest.raises(CommandError):
        run_create_client(
            "--auth-method", "tls_client_auth", "--tls-san-dns", "a.example", "--tls-san-ip", "192.0.2.1"
        )
    assert not CibaClient.objects.exists()
