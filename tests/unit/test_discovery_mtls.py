"""Discovery of mutual TLS (RFC 8705 §2.1, §2.2, §3.3, §5): only with a trusted TLS proxy."""

from __future__ import annotations

import pytest


DISCOVERY_URL = "/o/.well-known/openid-configuration"
ALIASES = {"token_endpoint": "https://mtls.op.example/o/token/"}


def document(client):
    response = client.get(DISCOVERY_URL)
    assert response.status_code == 200, response.content
    return response.json()


def test_without_a_trusted_proxy_nothing_about_mtls_is_advertised(client):
    data = document(client)
    methods = data["token_endpoint_auth_methods_supported"]
    assert "tls_client_auth" not in methods and "self_signed_tls_client_auth" not in methods
    assert "tls_client_certificate_bound_access_tokens" not in data
    assert "mtls_endpoint_aliases" not in data


def test_rfc8705_with_a_verifying_proxy_both_methods_and_bound_tokens(client, ciba_settings):
    ciba_settings.set(MTLS={"TRUSTED_PROXIES": ["10.0.0.0/24"], "VERIFIED_HEADER": "X-SSL-Client-Verify"})
    data = document(client)
    methods = data["token_endpoint_auth_methods_supported"]
    assert "tls_client_auth" in methods and "self_signed_tls_client_auth" in methods
    assert methods.count("tls_client_auth") == 1
    assert data["tls_client_certificate_bound_access_tokens"] is True
    assert "mtls_endpoint_aliases" not in data


def test_rfc8705_2_1_tls_client_auth_needs_a_proxy_that_verifies_chains(client, ciba_settings):
    ciba_settings.set(MTLS={"TRUSTED_PROXIES": ["10.0.0.0/24"]})
    methods = document(client)["token_endpoint_auth_methods_supported"]
    assert "tls_client_auth" not in methods and "self_signed_tls_client_auth" in methods


@pytest.mark.django_db
def test_rfc8705_5_mtls_endpoint_aliases(client, ciba_settings):
    """DISC-08: the aliases where the proxy asks for certificates."""
    ciba_settings.set(MTLS={"TRUSTED_PROXIES": ["10.0.0.0/24"], "ENDPOINT_ALIASES": ALIASES})
    assert document(client)["mtls_endpoint_aliases"] == ALIASES
