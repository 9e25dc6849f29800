"""System checks of CIBA["ID_TOKEN_SIGNING_KEYS"] (E200-E206) and of clients left without a key (W200)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from django.conf import settings

from django_ciba.checks.id_tokens import check_id_token_clients, check_id_token_signing_keys
from django_ciba.checks.serving import configuration_errors
from django_ciba.models import CibaClient
from django_ciba.testing import create_ciba_client
from tests.unit.test_id_token_signing import ec_pem, pem, rsa_pem


def ids() -> list[str]:
    return [message.id for message in check_id_token_signing_keys()]


def test_valid_keys_pass(ciba_settings):
    ciba_settings.set(
        ID_TOKEN_SIGNING_KEYS=[{"alg": "ES256", "key": ec_pem()}, {"alg": "PS256", "key": rsa_pem()}]
    )
    assert ids() == []


@pytest.mark.parametrize(
    ("value", "check_id"),
    [
        pytest.param({"alg": "ES256"}, "django_ciba.E200", id="E200-not-a-list"),
        pytest.param("tests.unit.nowhere.keys", "django_ciba.E200", id="E200-import-string-fails"),
        pytest.param(["a PEM"], "django_ciba.E201", id="E201-entry-not-a-dict"),
        pytest.param([{"key": "x"}], "django_ciba.E201", id="E201-entry-without-alg"),
        pytest.param(
            [{"alg": "ES256", "key": "x", "use": "sig"}], "django_ciba.E201", id="E201-unknown-member"
        ),
        pytest.param([{"alg": "HS256", "key": "x"}], "django_ciba.E202", id="E202-symmetric-alg"),
        pytest.param([{"alg": "ES384", "key": "x"}], "django_ciba.E202", id="E202-unknown-alg"),
        pytest.param([{"alg": "ES256", "key": "not a PEM"}], "django_ciba.E203", id="E203-unreadable"),
    ],
)
def test_each_problem_has_its_id(ciba_settings, value, check_id):
    ciba_settings.set(ID_TOKEN_SIGNING_KEYS=value)
    assert ids() == [check_id]


def test_e203_a_public_key_is_not_a_signing_key(ciba_settings):
    from cryptography.hazmat.primitives import serialization

    public = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode("ascii")
    )
    ciba_settings.set(ID_TOKEN_SIGNING_KEYS=[{"alg": "ES256", "key": public}])
    assert ids() == ["django_ciba.E203"]


@pytest.mark.parametrize(
    "entry",
    [
        pytest.param(lambda: {"alg": "PS256", "key": ec_pem()}, id="EC-key-for-PS256"),
        pytest.param(lambda: {"alg": "ES256", "key": rsa_pem()}, id="RSA-key-for-ES256"),
        pytest.param(
            lambda: {"alg": "ES256", "key": pem(ec.generate_private_key(ec.SECP384R1()))}, id="P-384"
        ),
        pytest.param(lambda: {"alg": "PS256", "key": rsa_pem(bits=1024)}, id="RSA-1024"),
    ],
)
def test_e204_key_does_not_fit_its_alg(ciba_settings, entry):
    ciba_settings.set(ID_TOKEN_SIGNING_KEYS=[entry()])
    assert ids() == ["django_ciba.E204"]


def test_e205_kid_used_twice(ciba_settings):
    ciba_settings.set(
        ID_TOKEN_SIGNING_KEYS=[
            {"alg": "ES256", "key": ec_pem(), "kid": "k"},
            {"alg": "PS256", "key": rsa_pem(), "kid": "k"},
        ]
    )
    assert ids() == ["django_ciba.E205"]


def test_e205_dots_own_key_listed_again(ciba_settings):
    # Its default kid is the RFC 7638 thumbprint, which DOT already publishes.
    ciba_settings.set(
        ID_TOKEN_SIGNING_KEYS=[{"alg": "RS256", "key": settings.OAUTH2_PROVIDER["OIDC_RSA_PRIVATE_KEY"]}]
    )
    assert ids() == ["django_ciba.E205"]


@pytest.mark.parametrize("kid", ["", "  ", 7])
def test_e206_kid_not_a_string(ciba_settings, kid):
    ciba_settings.set(ID_TOKEN_SIGNING_KEYS=[{"alg": "ES256", "key": ec_pem(), "kid": kid}])
    assert ids() == ["django_ciba.E206"]


def test_messages_never_quote_the_key(ciba_settings):
    secret_pem = ec_pem()
    ciba_settings.set(ID_TOKEN_SIGNING_KEYS=[{"alg": "PS256", "key": secret_pem}])
    message = check_id_token_signing_keys()[0].msg
    assert "PRIVATE KEY" not in message and secret_pem[40:80] not in message


def test_an_unusable_key_makes_the_endpoints_answer_503(ciba_settings):
    # checks.serving: the settings checks run on an endpoint failure include this one.
    ciba_settings.set(ID_TOKEN_SIGNING_KEYS=[{"alg": "ES256", "key": "x"}])
    assert "django_ciba.E203" in configuration_errors()


@pytest.mark.django_db
def test_w200_names_clients_whose_alg_has_no_key(ciba_settings):
    ciba_settings.set(ID_TOKEN_SIGNING_KEYS=[{"alg": "ES256", "key": ec_pem()}])
    kept, _ = create_ciba_client("ES256 RP", id_token_signed_response_alg="ES256")
    stranded, _ = create_ciba_client("PS256 RP")
    CibaClient.objects.filter(application=stranded).update(id_token_signed_response_alg="PS256")
    messages = check_id_token_clients(databases=["default"])
    assert [message.id for message in messages] == ["django_ciba.W200"]
    assert stranded.client_id in messages[0].msg and kept.client_id not in messages[0].msg
