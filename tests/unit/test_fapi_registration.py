"""FAPI-CIBA at dynamic registration (RFC 7591/7592), in discovery, the system checks, the command and
the admin (FAPI-03, FAPI-06, FAPI-12, FAPI-13, FAPI-15; checks E220-E223, W220-W224)."""

from __future__ import annotations

import json
from io import StringIO
from urllib.parse import urlsplit

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.core.management import call_command

from django_ciba.admin.clients import CibaClientAdmin
from django_ciba.checks.profiles import check_profile_clients, check_profile_settings
from django_ciba.core import profiles
from django_ciba.core.constants import CIBA_GRANT_TYPE
from django_ciba.models import AuthMethod, CibaClient
from django_ciba.testing import create_ciba_client, make_client_key


REGISTER = "/o/register"
DISCOVERY_URL = "/o/.well-known/openid-configuration"
JSON = "application/json"
FAPI = profiles.FAPI_CIBA
PS256_KEY = make_client_key("PS256", kid="reg-ps256")[1]
RS256_KEY = make_client_key("RS256", kid="reg-rs256")[1]
_PEM = (
    rsa.generate_private_key(public_exponent=65537, key_size=2048)
    .private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    .decode()
)
ID_TOKEN_KEYS = [{"alg": "PS256", "key": _PEM, "kid": "op-ps256"}]
#: A registration FAPI-CIBA accepts (as the conformance suite sends it, REG-09), with DPoP-bound tokens.
FAPI_METADATA = {
    "backchannel_token_delivery_mode": "poll",
    "grant_types": [CIBA_GRANT_TYPE],
    "token_endpoint_auth_method": "private_key_jwt",
    "token_endpoint_auth_signing_alg": "PS256",
    "backchannel_authentication_request_signing_alg": "PS256",
    "jwks": {"keys": [PS256_KEY, RS256_KEY]},
    "dpop_bound_access_tokens": True,
}


def register(http, metadata):
    return http.post(REGISTER, data=json.dumps(metadata), content_type=JSON)


def assert_refused(response, field):
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["error"] == "invalid_client_metadata", body
    assert body["error_description"].startswith(f"{field}:"), body


@pytest.fixture
def fapi_op(ciba_settings):
    ciba_settings.set(REGISTRATION_OPEN=True, PROFILE=FAPI, ID_TOKEN_SIGNING_KEYS=ID_TOKEN_KEYS)


# --------------------------------------------------------------------------------------------
# Registration


@pytest.mark.django_db
def test_reg09_fapi_registration_accepted_with_ps256_id_tokens(client, fapi_op):
    # REG-09 / FAPI-13: accepted; no id_token_signed_response_alg sent -> PS256 (a key exists).
    response = register(client, FAPI_METADATA)
    assert response.status_code == 201, response.content
    ciba = CibaClient.objects.get(application__client_id=response.json()["client_id"])
    assert ciba.id_token_signed_response_alg == "PS256"
    assert ciba.profile == ""  # the OP's switch applies; the row does not need its own


@pytest.mark.parametrize(
    ("change", "field"),
    [
        # FAPI-03: no push.
        (
            {
                "backchannel_token_delivery_mode": "push",
                "backchannel_client_notification_endpoint": "https://client.example.org/cb",
            },
            "backchannel_token_delivery_mode",
        ),
        # FAPI-12 / FAPI-01: no client secret (also the default method when none is sent).
        ({"token_endpoint_auth_method": "client_secret_basic"}, "token_endpoint_auth_method"),
        ({"token_endpoint_auth_method": None}, "token_endpoint_auth_method"),
        # FAPI-13: PS256 / ES256 only.
        ({"token_endpoint_auth_signing_alg": "RS256"}, "token_endpoint_auth_signing_alg"),
        (
            {"backchannel_authentication_request_signing_alg": "RS256"},
            "backchannel_authentication_request_signing_alg",
        ),
        ({"id_token_signed_response_alg": "RS256"}, "id_token_signed_response_alg"),
        # FAPI-06: signed requests, so a request signing algorithm is required.
        (
            {"backchannel_authentication_request_signing_alg": None},
            "backchannel_authentication_request_signing_alg",
        ),
        # FAPI-15: sender-constrained tokens.
        ({"dpop_bound_access_tokens": None}, "tls_client_certificate_bound_access_tokens"),
        ({"dpop_bound_access_tokens": False}, "tls_client_certificate_bound_access_tokens"),
    ],
)
@pytest.mark.django_db
def test_fapi_registration_refusals(client, ciba_settings, change, field):
    # Each change is accepted without the profile and refused, naming the field, under it.
    metadata = {key: value for key, value in {**FAPI_METADATA, **change}.items() if value is not None}
    ciba_settings.set(REGISTRATION_OPEN=True, ID_TOKEN_SIGNING_KEYS=ID_TOKEN_KEYS)
    assert register(client, metadata).status_code == 201
    ciba_settings.set(PROFILE=FAPI)
    assert_refused(register(client, metadata), field)


@pytest.mark.django_db
def test_fapi13_registration_without_an_id_token_key_refused(client, fapi_op, ciba_settings):
    # FAPI-13: no PS256/ES256 ID token key -> id_token_signed_response_alg cannot be defaulted.
    ciba_settings.set(ID_TOKEN_SIGNING_KEYS=[])
    assert_refused(register(client, FAPI_METADATA), "id_token_signed_response_alg")


@pytest.mark.django_db
def test_profile_cannot_be_chosen_by_dynamic_registration(client, ciba_settings):
    # The per-client profile is the operator's (admin, ciba_create_client); "profile" is ignored.
    ciba_settings.set(REGISTRATION_OPEN=True)
    response = register(client, {**FAPI_METADATA, "profile": FAPI})
    assert response.status_code == 201, response.content
    assert CibaClient.objects.get(application__client_id=response.json()["client_id"]).profile == ""


@pytest.mark.django_db
def test_fapi12_update_of_an_operator_fapi_client_is_held_to_the_profile(client, ciba_settings):
    # RFC 7592 update of a client the operator put under FAPI-CIBA: a secret method is refused.
    ciba_settings.set(REGISTRATION_OPEN=True, ID_TOKEN_SIGNING_KEYS=ID_TOKEN_KEYS)
    body = register(client, FAPI_METADATA).json()
    path = urlsplit(body["registration_client_uri"]).path
    auth = {"HTTP_AUTHORIZATION": f"Bearer {body['registration_access_token']}"}
    secret_update = {
        **FAPI_METADATA,
        "client_id": body["client_id"],
        "token_endpoint_auth_method": "client_secret_post",
    }
    CibaClient.objects.filter(application__client_id=body["client_id"]).update(profile=FAPI)
    response = client.put(path, data=json.dumps(secret_update), content_type=JSON, **auth)
    assert_refused(response, "token_endpoint_auth_method")
    CibaClient.objects.filter(application__client_id=body["client_id"]).update(profile="")
    response = client.put(path, data=json.dumps(secret_update), content_type=JSON, **auth)
    assert response.status_code == 200, response.content


# --------------------------------------------------------------------------------------------
# Discovery


@pytest.mark.django_db
def test_discovery_follows_the_op_profile(client, ciba_settings):
    # FAPI-03, FAPI-06, FAPI-12, FAPI-13 in the metadata; unchanged without the profile.
    plain = client.get(DISCOVERY_URL).json()
    assert "push" in plain["backchannel_token_delivery_modes_supported"]
    assert "RS256" in plain["backchannel_authentication_request_signing_alg_values_supported"]
    assert "client_secret_basic" in plain["token_endpoint_auth_methods_supported"]
    assert "require_signed_request_object" not in plain
    ciba_settings.set(PROFILE=FAPI)
    document = client.get(DISCOVERY_URL).json()
    assert document["backchannel_token_delivery_modes_supported"] == ["poll", "ping"]
    signing_lists = [name for name in document if name.endswith("_alg_values_supported")]
    assert "backchannel_authentication_request_signing_alg_values_supported" in signing_lists
    assert "id_token_signing_alg_values_supported" in signing_lists
    for name in signing_lists:
        assert set(document[name]) <= {"PS256", "ES256"}, name
    assert document["backchannel_authentication_request_signing_alg_values_supported"] == ["PS256", "ES256"]
    assert document["token_endpoint_auth_methods_supported"] == ["private_key_jwt"]
    assert document["require_signed_request_object"] is True


def test_discovery_profile_leaves_encryption_lists_and_absent_methods(ciba_settings):
    # FAPI-13 narrows JWS (signing) lists only; FAPI-12 keeps the methods that are present.
    ciba_settings.set(PROFILE=FAPI)
    document = {
        "id_token_encryption_alg_values_supported": ["RSA-OAEP"],
        "userinfo_signing_alg_values_supported": ["RS256", "ES256"],
        "token_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "tls_client_auth",
            "private_key_jwt",
        ],
    }
    result = profiles.discovery_metadata(document)
    assert result["id_token_encryption_alg_values_supported"] == ["RSA-OAEP"]
    assert result["userinfo_signing_alg_values_supported"] == ["ES256"]
    assert result["token_endpoint_auth_methods_supported"] == ["tls_client_auth", "private_key_jwt"]


# --------------------------------------------------------------------------------------------
# System checks


def ids(messages):
    return sorted(message.id.removeprefix("django_ciba.") for message in messages)


def test_e220_unknown_profile(ciba_settings):
    ciba_settings.set(PROFILE="fapi")
    assert ids(check_profile_settings()) == ["E220"]


def test_no_profile_no_profile_checks(ciba_settings):
    ciba_settings.set(PROFILE=None, SIGNING_ALGORITHMS=["RS256"])
    assert check_profile_settings() == []


def test_fapi_defaults_report_id_token_keys_push_and_algorithms(ciba_settings):
    # E221 (FAPI-13: no PS256/ES256 ID token key), W220 (FAPI-03: push listed), W221 (RS256 listed).
    ciba_settings.set(PROFILE=FAPI)
    assert ids(check_profile_settings()) == ["E221", "W220", "W221"]


@pytest.fixture
def fapi_settings(ciba_settings):
    """A configuration the profile checks accept."""
    ciba_settings.set(
        PROFILE=FAPI,
        ID_TOKEN_SIGNING_KEYS=ID_TOKEN_KEYS,
        DELIVERY_MODES=["poll", "ping"],
        SIGNING_ALGORITHMS=["PS256", "ES256"],
    )
    return ciba_settings


def test_fapi_clean_configuration_passes(fapi_settings):
    assert check_profile_settings() == []


def test_e222_no_way_to_bind_tokens(fapi_settings):
    # FAPI-15: neither mTLS behind a trusted proxy nor DPoP.
    fapi_settings.set(DPOP_ENABLED=False, MTLS_TRUSTED_PROXIES=[])
    assert ids(check_profile_settings()) == ["E222"]
    fapi_settings.set(MTLS_TRUSTED_PROXIES=["10.0.0.0/8"])
    assert check_profile_settings() == []


def test_e223_no_fapi_signing_algorithm(fapi_settings):
    fapi_settings.set(SIGNING_ALGORITHMS=["RS256"])
    assert ids(check_profile_settings()) == ["E223", "W221"]


@pytest.mark.parametrize(
    ("name", "check_id"), [("REQUEST_OBJECT_MAX_LIFETIME", "W222"), ("REQUEST_OBJECT_MAX_AGE", "W223")]
)
def test_w222_w223_signed_request_limits_above_60_minutes(fapi_settings, name, check_id):
    # FAPI-09: the profile caps both at 3600 seconds.
    fapi_settings.set(**{name: 3600})
    assert check_profile_settings() == []
    fapi_settings.set(**{name: 3601})
    assert ids(check_profile_settings()) == [check_id]


@pytest.mark.django_db
def test_w224_names_enabled_fapi_clients_that_break_the_profile(ciba_settings):
    # FAPI-12 / FAPI-15: a FAPI client with a secret and no bound tokens is listed; a compliant one,
    # a disabled one and a client outside the profile are not.
    breaking, _ = create_ciba_client("Breaking", profile=FAPI)
    create_ciba_client("Disabled", profile=FAPI, enabled=False)
    create_ciba_client("Outside the profile")
    create_ciba_client(
        "Compliant",
        profile=FAPI,
        auth_method=AuthMethod.PRIVATE_KEY_JWT,
        jwks={"keys": [PS256_KEY]},
        request_signing_alg="PS256",
        tls_client_certificate_bound_access_tokens=True,
    )
    messages = check_profile_clients(databases=["default"])
    assert ids(messages) == ["W224"]
    assert "1 enabled client(s)" in messages[0].msg and breaking.client_id in messages[0].msg
    ciba_settings.set(PROFILE=FAPI)  # the OP's switch puts "Outside the profile" under it too
    assert "2 enabled client(s)" in check_profile_clients(databases=["default"])[0].msg


# --------------------------------------------------------------------------------------------
# The command and the admin


@pytest.mark.django_db
def test_ciba_create_client_profile_option_sets_the_profile_and_warns():
    # The operator holds one client to FAPI-CIBA; what breaks it is reported (FAPI-12, FAPI-15).
    out, err = StringIO(), StringIO()
    call_command("ciba_create_client", "--name", "Bank app", "--profile", FAPI, stdout=out, stderr=err)
    printed = json.loads(out.getvalue())
    assert printed["profile"] == FAPI
    assert CibaClient.objects.get(application__client_id=printed["client_id"]).profile == FAPI
    assert "token_endpoint_auth_method" in err.getvalue()
    assert "tls_client_certificate_bound_access_tokens" in err.getvalue()


@pytest.mark.django_db
def test_ciba_create_client_without_profile_does_not_warn():
    out, err = StringIO(), StringIO()
    call_command("ciba_create_client", "--name", "Teller", stdout=out, stderr=err)
    assert json.loads(out.getvalue())["profile"] is None
    assert err.getvalue() == ""


def test_admin_shows_the_profile():
    from django.contrib.admin.utils import flatten_fieldsets

    assert "profile" in flatten_fieldsets(CibaClientAdmin.fieldsets)
    assert "profile" in CibaClientAdmin.list_filter
