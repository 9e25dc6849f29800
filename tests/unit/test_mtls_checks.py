"""System checks of the MTLS settings (RFC 8705 behind a proxy): E210-E214, W210-W213."""

from __future__ import annotations

import pytest
from django.test import override_settings

from django_ciba.checks.mtls import check_mtls_clients, check_mtls_settings
from django_ciba.models import AuthMethod
from django_ciba.testing import create_ciba_client, make_client_key


GOOD = {"TRUSTED_PROXIES": ["10.0.0.0/24", "fd00::/8"], "VERIFIED_HEADER": "X-SSL-Client-Verify"}


def ids(mtls: dict, check=check_mtls_settings, **kwargs) -> list[str]:
    with override_settings(CIBA={"MTLS": {**GOOD, **mtls}}):
        return sorted(message.id for message in check(**kwargs))


def test_good_and_default_settings_pass():
    assert ids({}) == []
    with override_settings(CIBA={}):
        assert check_mtls_settings() == []


@pytest.mark.parametrize(
    "mtls, expected",
    [
        ({"TRUSTED_PROXIES": "10.0.0.0/24"}, "E210"),
        ({"TRUSTED_PROXIES": ["10.0.0.300/24"]}, "E210"),
        ({"TRUSTED_PROXIES": ["proxy.internal"]}, "E210"),
        ({"TRUSTED_PROXIES": [10]}, "E210"),
        ({"TRUSTED_PROXIES": ["0.0.0.0/0"]}, "W212"),
        ({"TRUSTED_PROXIES": ["::/0"]}, "W212"),
        ({"CERTIFICATE_HEADER": ""}, "E211"),
        ({"CERTIFICATE_HEADER": "Client Cert"}, "E211"),
        ({"CERTIFICATE_HEADER": None}, "E211"),
        ({"VERIFIED_HEADER": "X-Verify:"}, "E212"),
        ({"VERIFIED_HEADER": True}, "E212"),
        ({"ENDPOINT_ALIASES": ["https://mtls.example/token"]}, "E213"),
        ({"ENDPOINT_ALIASES": {"authorization_endpoint": "https://mtls.example/authorize"}}, "E213"),
        ({"ENDPOINT_ALIASES": {"token_endpoint": "http://mtls.example/token"}}, "E214"),
        ({"ENDPOINT_ALIASES": {"token_endpoint": "/token"}}, "E214"),
        ({"ENDPOINT_ALIASES": {"token_endpoint": "https://mtls.example/t"}, "TRUSTED_PROXIES": []}, "W213"),
    ],
)
def test_each_bad_mtls_setting_has_its_own_check(mtls, expected):
    """Every check ID names one problem."""
    assert ids(mtls) == [f"django_ciba.{expected}"]


def test_good_endpoint_aliases_pass():
    assert ids({"ENDPOINT_ALIASES": {"token_endpoint": "https://mtls.example/o/token/"}}) == []


@pytest.mark.django_db
def test_w210_tls_client_auth_clients_without_a_verifying_proxy():
    """RFC 8705 §2.1: the chain must be verified, which nothing does without VERIFIED_HEADER."""
    assert ids({"VERIFIED_HEADER": None}, check_mtls_clients, databases=["default"]) == []
    app, _ = create_ciba_client(
        "Teller", auth_method=AuthMethod.TLS_CLIENT_AUTH, tls_client_auth_san_dns="a.example"
    )
    assert ids({"VERIFIED_HEADER": None}, check_mtls_clients, databases=["default"]) == ["django_ciba.W210"]
    assert ids({}, check_mtls_clients, databases=["default"]) == []
    with override_settings(CIBA={"MTLS": {**GOOD, "VERIFIED_HEADER": None}}):
        assert app.client_id in check_mtls_clients(databases=["default"])[0].msg


@pytest.mark.django_db
def test_w211_mtls_clients_without_a_trusted_proxy():
    jwk = make_client_key("ES256")[1]
    assert ids({"TRUSTED_PROXIES": []}, check_mtls_clients, databases=["default"]) == []
    create_ciba_client("Bound", tls_client_certificate_bound_access_tokens=True)
    assert ids({"TRUSTED_PROXIES": []}, check_mtls_clients, databases=["default"]) == ["django_ciba.W211"]
    create_ciba_client("Self", auth_method=AuthMethod.SELF_SIGNED_TLS_CLIENT_AUTH, jwks={"keys": [jwk]})
    with override_settings(CIBA={"MTLS": {"TRUSTED_PROXIES": []}}):
        messages = check_mtls_clients(databases=["default"])
    assert [message.id for message in messages] == ["django_ciba.W211"] and "2 client(s)" in messages[0].msg
    assert ids({}, check_mtls_clients, databases=["default"]) == []
